/**
 * The client a per-address limit counts: an IPv4 address whole, an IPv6 address by its /64
 * (written `<first four groups>::/64`). One IPv6 subscriber holds at least a /64 (RFC 6177 has ISPs
 * hand out /48 to /56), so counted address by address, a single client steps through fresh
 * addresses and past every per-address limit. An IPv4 address mapped into IPv6 counts as itself.
 */
export function clientNetwork(address: string): string {
  const bare = address.startsWith('::ffff:') && address.includes('.') ? address.slice(7) : address;
  if (!bare.includes(':')) return bare;
  const [head = '', tail] = bare.split('::');
  const left = head ? head.split(':') : [];
  const right = tail ? tail.split(':') : [];
  const groups = tail === undefined ? left : [...left, ...Array<string>(Math.max(0, 8 - left.length - right.length)).fill('0'), ...right];
  return `${groups.slice(0, 4).map((g) => (Number.parseInt(g, 16) || 0).toString(16)).join(':')}::/64`;
}
