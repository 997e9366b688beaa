import { existsSync, statSync } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { HttpRequest, HttpResponse } from 'uWebSockets.js';
import type { Logger } from '@parley/log';

/**
 * Serves the built web client (clients/web/dist) at `/`. Paths under `/api/` and `/ws` are not
 * ours: the handler yields, so the API and WebSocket routes registered after it take them.
 * A path whose last segment has no dot is a client-side route and gets index.html; a path with a
 * dot is a file, or 404. Vite puts content-hashed files under /assets/, cached for a year;
 * everything else must be revalidated so a new build is picked up at once.
 */

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

/** The page may load only its own files and talk only to its own origin (HTTP and WebSocket). */
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'";

const notFound = JSON.stringify({ error: { code: 'not_found', message: 'Not found' } });
const notBuilt = JSON.stringify({ error: { code: 'not_found', message: 'The web client is not built (run npm run build)' } });

/**
 * Not the client's: the API, the socket, and the ops paths (which live on the metrics port; a
 * probe or scraper pointed at the client port by mistake should get a 404, not index.html).
 */
const RESERVED = new Set(['/metrics', '/healthz', '/readyz']);
function isApiPath(url: string): boolean {
  return url === '/api' || url.startsWith('/api/') || url === '/ws' || url.startsWith('/ws/') || RESERVED.has(url);
}

/**
 * Maps a URL path to a file inside `root`, or null when it would leave it (`..`, encoded
 * separators, NUL) or cannot be decoded.
 */
export function resolveStaticPath(root: string, url: string): string | null {
  let decoded: string;
  try {
    decoded = decodeURIComponent(url);
  } catch {
    return null;
  }
  if (decoded.includes('\0') || decoded.includes('\\')) return null;
  const segments = decoded.split('/');
  if (segments.some((s) => s === '..')) return null;
  const file = path.resolve(root, `.${path.posix.normalize(decoded)}`);
  return file === root || file.startsWith(root + path.sep) ? file : null;
}

export function staticHandler(deps: { dir: string; log: Logger }) {
  const root = path.resolve(deps.dir);
  const built = existsSync(path.join(root, 'index.html')) && statSync(root).isDirectory();
  if (built) deps.log.info({ dir: root }, 'serving the web client at /');
  else deps.log.warn({ dir: root }, 'web client not found (WEB_CLIENT_DIR): / answers 404; run `npm run build` to build it');

  return (res: HttpResponse, req: HttpRequest): void => {
    const url = req.getUrl();
    if (isApiPath(url)) {
      req.setYield(true);
      return;
    }
    const state = { aborted: false };
    res.onAborted(() => {
      state.aborted = true;
    });
    const send = (status: string, body: string | Buffer, headers: Record<string, string>) => {
      if (state.aborted) return;
      res.cork(() => {
        res.writeStatus(status);
        res.writeHeader('x-content-type-options', 'nosniff');
        for (const [k, v] of Object.entries(headers)) res.writeHeader(k, v);
        res.end(body);
      });
    };
    const json404 = (body: string) => send('404 Not Found', body, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' });
    if (!built) return json404(notBuilt);

    const last = url.slice(url.lastIndexOf('/') + 1);
    const file = last.includes('.') ? resolveStaticPath(root, url) : path.join(root, 'index.html');
    if (!file) return json404(notFound);
    void (async () => {
      try {
        if (!(await stat(file)).isFile()) return json404(notFound);
        const body = await readFile(file);
        const ext = path.extname(file).toLowerCase();
        const immutable = file.startsWith(path.join(root, 'assets') + path.sep);
        send('200 OK', body, {
          'content-type': TYPES[ext] ?? 'application/octet-stream',
          'cache-control': immutable ? 'public, max-age=31536000, immutable' : 'no-cache',
          ...(ext === '.html' ? { 'content-security-policy': CSP, 'referrer-policy': 'no-referrer' } : {}),
        });
      } catch {
        json404(notFound);
      }
    })();
  };
}
