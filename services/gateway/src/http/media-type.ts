/**
 * Whether a request's Content-Type announces JSON, the only body the API takes (api.md:
 * "JSON bodies, UTF-8"). `application/json` and any `+json` type (RFC 6839), parameters ignored
 * except a charset, which must be UTF-8 if given.
 *
 * Why refuse the rest instead of parsing whatever arrives: a body sent as `text/plain` or a form is
 * what an HTML form on another site can make a browser send without a CORS preflight; and a client
 * that labels its body wrongly has a bug it should hear about (400 invalid_request) rather than have guessed away.
 */
export function isJsonMediaType(header: string): boolean {
  const [type = '', ...params] = header.split(';').map((part) => part.trim().toLowerCase());
  if (type !== 'application/json' && !/^application\/[a-z0-9.+-]+\+json$/.test(type)) return false;
  const charset = params.find((p) => p.startsWith('charset='))?.slice('charset='.length).replace(/"/g, '');
  return charset === undefined || charset === 'utf-8' || charset === 'utf8';
}
