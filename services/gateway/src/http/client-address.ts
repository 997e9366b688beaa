import type { IncomingMessage } from 'node:http';
import proxyaddr from '@fastify/proxy-addr';

/**
 * The client's address for throttling and the audit log. X-Forwarded-For is attacker-controlled
 * unless it was written by a proxy we run, so it is only honoured hop by hop through addresses in
 * TRUSTED_PROXIES (fastify's proxy-addr does the walking, as express and fastify do).
 */
export function clientAddressResolver(trustedProxies: string[]): (remote: string, forwardedFor: string) => string {
  if (trustedProxies.length === 0) return (remote) => remote;
  const trust = proxyaddr.compile(trustedProxies);
  return (remote, forwardedFor) => {
    const req = { socket: { remoteAddress: remote }, connection: { remoteAddress: remote }, headers: { 'x-forwarded-for': forwardedFor } };
    return proxyaddr(req as unknown as IncomingMessage, trust);
  };
}

/** uWS reports IPv4 clients as IPv4-mapped IPv6 when listening dual-stack; keep the plain form. */
export function normaliseAddress(address: string): string {
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}
