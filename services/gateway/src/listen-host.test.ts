import { describe, expect, it } from 'vitest';
import { DEV_GATEWAY_SIGNING_KEY, DEV_JWT_SECRET } from '@parley/config';
import { listenHost } from './listen-host.js';

const real = { JWT_SECRET: 'a-real-secret-0123456789abcdefghijklmnopqrstuvwxyz', GATEWAY_SIGNING_KEY: 'x'.repeat(43) };

describe('listenHost', () => {
  it('listens on every interface with real keys', () => {
    expect(listenHost(real)).toBe('0.0.0.0');
  });
  it('listens on loopback only while a published development key is in use', () => {
    expect(listenHost({ ...real, JWT_SECRET: DEV_JWT_SECRET })).toBe('127.0.0.1');
    expect(listenHost({ ...real, GATEWAY_SIGNING_KEY: DEV_GATEWAY_SIGNING_KEY })).toBe('127.0.0.1');
  });
});
