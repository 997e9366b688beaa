import type { HttpResponse } from 'uWebSockets.js';

/**
 * Ends a HEAD answer: GET's headers and Content-Length, no body (RFC 9110 9.3.2, api.md). With
 * Connection: close, because uWebSockets.js answers no further request on a connection after
 * endWithoutBody (a keep-alive client would hang on its next request).
 */
export function endHead(res: HttpResponse, length: number): void {
  res.endWithoutBody(length, true);
}

/** Ends an answer with `body`, or, for HEAD, with its length only (endHead). */
export function endWith(res: HttpResponse, head: boolean, body: string | Uint8Array): void {
  if (head) endHead(res, typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength);
  else res.end(body);
}
