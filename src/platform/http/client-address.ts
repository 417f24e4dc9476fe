import { createHmac } from 'node:crypto';
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

/**
 * How a limiter's counter key names a person (an e-mail, a client address) without holding it: its keyed hash,
 * HMAC-SHA-256 under a key derived from SUPABASE_JWT_SECRET, which every instance shares (so they count alike). Neither
 * Redis nor a process's memory then holds an address an erasure would have to delete (docs/privacy.md), and without the
 * secret a hash cannot be recomputed from a guessed address. Used by the login throttle and the request limiter.
 */
export class CounterPseudonyms {
  private readonly key: Buffer;

  constructor(secret: string) {
    // the label names the first user of the key: another one would start every live counter over (a lockout with it)
    this.key = createHmac('sha256', secret).update('omnizen.login_throttle_key.v1').digest();
  }

  /** `value`'s keyed hash (base64url). */
  of(value: string): string {
    return createHmac('sha256', this.key).update(value, 'utf8').digest('base64url');
  }

  /** A client address (an IPv6 one by its /64: clientAddressKey) as a key names it. */
  address(ip: string | undefined): string {
    return this.of(`ip:${clientAddressKey(ip)}`);
  }
}
