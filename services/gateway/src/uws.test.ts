import { describe, expect, it } from 'vitest';
import { loadNativeUws, NativeBindingError } from './uws.js';

describe('the native uWebSockets.js binding', () => {
  it('loads on this Node', () => {
    expect(typeof loadNativeUws().App).toBe('function');
  });

  it('refuses a Node it has no build for, naming the Node versions it has builds for', () => {
    const target = { platform: process.platform, arch: process.arch, modules: '999', version: 'v99.0.0' };
    expect(() => loadNativeUws(target)).toThrow(NativeBindingError);
    expect(() => loadNativeUws(target)).toThrow(/no native build for Node v99\.0\.0 .*Builds shipped for this platform: .*Node 20/);
  });

  it('refuses the JavaScript fallback when asked for it', () => {
    expect(() => loadNativeUws(undefined, { UWS_USE_FALLBACK: '1' })).toThrow(/UWS_USE_FALLBACK/);
  });
});
