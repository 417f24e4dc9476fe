import { isIPv4, isIPv6 } from 'node:net';

/**
 * The key a per-address limiter counts a client under: an IPv4 address as it is (an IPv4-mapped IPv6 one as IPv4),
 * an IPv6 address by its /64 (one host or home usually gets a whole /64: counted per address, it could rotate
 * through 2^64 of them), 'unknown' without an address.
 */
export function clientAddressKey(ip: string | undefined): string {
  if (!ip) return 'unknown';
  const address = ip.split('%')[0]; // a zone index (fe80::1%eth0) is no part of the address
  if (/^::ffff:/i.test(address) && isIPv4(address.slice(7))) return address.slice(7);
  if (!isIPv6(address)) return address;
  const [head, tail] = address.includes('::') ? address.split('::') : [address, undefined];
  const groups = (part: string | undefined) => (part ? part.split(':') : []);
  // a dotted IPv4 ending is two groups, always the last two: never within the first four
  const width = (list: string[]) => list.length + (list.at(-1)?.includes('.') ? 1 : 0);
  const first = groups(head);
  const last = groups(tail);
  const all = tail === undefined ? first : [...first, ...Array<string>(8 - width(first) - width(last)).fill('0'), ...last];
  return `${all.slice(0, 4).map((g) => parseInt(g, 16).toString(16)).join(':')}::/64`;
}
