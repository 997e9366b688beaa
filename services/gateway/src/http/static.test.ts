import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveStaticPath } from './static.js';

describe('resolveStaticPath', () => {
  const root = path.resolve('/srv/web');
  it('maps paths inside the root', () => {
    expect(resolveStaticPath(root, '/assets/index-abc.js')).toBe(path.join(root, 'assets/index-abc.js'));
    expect(resolveStaticPath(root, '/a%20b.txt')).toBe(path.join(root, 'a b.txt'));
  });
  it('refuses anything that could leave the root', () => {
    for (const url of ['/../etc/passwd', '/assets/../../etc/passwd', '/%2e%2e/etc/passwd', '/..%2fetc%2fpasswd', '/a%5c..%5c..%5cx', '/x%00.js', '/%E0%A4%A.js']) {
      expect(resolveStaticPath(root, url), url).toBeNull();
    }
  });
});
