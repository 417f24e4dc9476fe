import type { LookupAddress, LookupOptions } from 'node:dns';
import { Resolver } from 'node:dns/promises';
import { BlockList, isIP } from 'node:net';
import { Agent, buildConnector, fetch as undiciFetch } from 'undici';

/**
 * Outbound HTTP to addresses a user chose (a CalDAV server URL): without a guard the API would make
 * requests for anyone into its own network (server-side request forgery) — databases, admin ports, the
 * cloud metadata service at 169.254.169.254. `outboundFetch(false)` refuses to connect to loopback,
 * private, link-local, carrier-grade NAT and other non-public addresses. The check runs when the
 * connection is made, on the addresses DNS actually answered (a name that resolves to 10.0.0.5 is
 * refused, and so is one that resolved to a public address a moment earlier: no rebinding window), and
 * for every hop of a redirect.
 */
// two lists: a BlockList also matches IPv4 addresses against IPv4-mapped IPv6 rules
const NON_PUBLIC_V4 = new BlockList();
const NON_PUBLIC_V6 = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.0.2.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['198.51.100.0', 24], ['203.0.113.0', 24],
  ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NON_PUBLIC_V4.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of [
  // forms that embed an IPv4 address are refused whole, as they can carry any, private ones included: IPv4-compatible
  // (::/96, with :: and ::1), IPv4-mapped, IPv4-translated (::ffff:0:0:0/96), NAT64, 6to4 (2002::/16), Teredo (2001::/32)
  ['::', 96], ['::ffff:0:0', 96], ['::ffff:0:0:0', 96], ['64:ff9b::', 96], ['64:ff9b:1::', 48], ['2002::', 16], ['2001::', 32],
  ['100::', 64], ['2001:db8::', 32], ['fc00::', 7], ['fec0::', 10], ['fe80::', 10], ['ff00::', 8],
] as const) NON_PUBLIC_V6.addSubnet(net, prefix, 'ipv6');

/** Whether `ip` (v4 or v6) is an address outbound requests must not reach. */
export function isNonPublicAddress(ip: string): boolean {
  const family = isIP(ip);
  if (family === 0) return true; // not an address at all: refuse rather than guess
  return family === 4 ? NON_PUBLIC_V4.check(ip, 'ipv4') : NON_PUBLIC_V6.check(ip, 'ipv6');
}

/** Whether a URL's host is itself an address (`10.0.0.5`, `[::1]`) that is not public; names are checked when connecting. */
export function isNonPublicAddressLiteral(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '');
  return isIP(host) !== 0 && isNonPublicAddress(host);
}

/**
 * A URL a tenant chose for the API to call (a webhook endpoint, an AI provider's base URL), checked when it is stored:
 * absolute, https (or http unless `httpsOnly`), without credentials, and not a non-public address literal unless
 * private networks are allowed (a name is checked when connecting, outboundFetch). `fail` makes the caller's error
 * (`invalid` or `not_public`) from the message, which names `field`.
 */
export function checkOutboundUrl(
  raw: string,
  o: { field: string; example: string; httpsOnly: boolean; allowPrivateNetworks: boolean; credentialsHint?: string },
  fail: (kind: 'invalid' | 'not_public', message: string) => Error,
): URL {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw fail('invalid', `${o.field} must be an absolute URL like ${o.example}`);
  }
  if (url.protocol !== 'https:' && (o.httpsOnly || url.protocol !== 'http:')) {
    throw fail('invalid', `${o.field} must use https${o.httpsOnly ? '' : ' or http'}, got ${url.protocol}`);
  }
  if (url.username || url.password) throw fail('invalid', `${o.field} must not carry credentials${o.credentialsHint ? ` (${o.credentialsHint})` : ''}`);
  if (!o.allowPrivateNetworks && isNonPublicAddressLiteral(url.hostname)) {
    throw fail('not_public', `${o.field} names ${url.hostname}, which is not a public address`);
  }
  return url;
}

export class OutboundAddressRefused extends Error {
  constructor(readonly host: string, readonly address: string) {
    super(`refused to connect to ${host}: ${address} is not a public address`);
  }

  /**
   * What a tenant may be told: the host's name, never the address it resolved to (that is our network's). Used where
   * the error is shown to an organization (a webhook's attempt log, an agent run's error).
   */
  get forTenant(): string {
    return this.host === this.address ? `${this.host} is not a public address: the connection was refused`
      : `${this.host} resolves to a non-public address: the connection was refused`;
  }
}

/** The OutboundAddressRefused an error was caused by (a fetch or SDK error wraps it), if any. */
export function outboundRefusal(err: unknown): OutboundAddressRefused | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof OutboundAddressRefused) return e;
  }
  return undefined;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;

/**
 * How the guard's resolver gives up on a name server that does not answer: 2 s a try, 2 tries a server (a few seconds
 * in all, whatever the name's owner makes its DNS do). It asks over c-ares, off libuv's thread pool: dns.lookup
 * (getaddrinfo) would hold one of the pool's 4 threads per lookup until the system resolver gives up (~10 s a try),
 * whatever the request's own timeout, so a few lookups of a name whose DNS never answers would stall every other user
 * of the pool (file reads, crypto, zlib, other organizations' lookups).
 */
export const OUTBOUND_RESOLVER_OPTIONS = { timeout: 2000, tries: 2, maxTimeout: 2000 } as const;

/** Where the guard's lookups go: the system's name servers (resolv.conf), or `servers` (tests: a double on 127.0.0.1). */
export interface OutboundDnsOptions {
  servers?: string[];
}

/** RFC 6761 §6.3: `localhost` and names under it are loopback, never asked of DNS. */
const isLocalhostName = (name: string): boolean => name === 'localhost' || name.endsWith('.localhost');

const LOOPBACK: LookupAddress[] = [{ address: '127.0.0.1', family: 4 }, { address: '::1', family: 6 }];

/** A name's A and AAAA answers (those of `family` alone when it is 4 or 6), as dns.lookup({ all: true }) answers. */
async function resolveAddresses(resolver: Resolver, hostname: string, family: number): Promise<LookupAddress[]> {
  const name = hostname.replace(/^\[|\]$/g, '').replace(/\.$/, '').toLowerCase();
  const wanted = (a: LookupAddress) => family !== 4 && family !== 6 ? true : a.family === family;
  const literal = isIP(name);
  if (literal) return [{ address: name, family: literal }].filter(wanted);
  if (isLocalhostName(name)) return LOOPBACK.filter(wanted);
  const [v4, v6] = await Promise.allSettled([
    family === 6 ? Promise.resolve([]) : resolver.resolve4(name),
    family === 4 ? Promise.resolve([]) : resolver.resolve6(name),
  ]);
  const addresses = [
    ...(v4.status === 'fulfilled' ? v4.value.map((address) => ({ address, family: 4 })) : []),
    ...(v6.status === 'fulfilled' ? v6.value.map((address) => ({ address, family: 6 })) : []),
  ];
  if (addresses.length) return addresses;
  // no address: the failure that says most (a timeout or a refusal rather than "no AAAA record")
  const errors = [v4, v6].flatMap((r) => (r.status === 'rejected' ? [r.reason as NodeJS.ErrnoException] : []));
  const telling = errors.find((e) => e.code !== 'ENODATA' && e.code !== 'ENOTFOUND') ?? errors[0];
  if (telling) throw telling;
  throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${name}`), { code: 'ENOTFOUND', hostname: name });
}

/**
 * The connector's lookup (dns.lookup's signature) through `resolver`: fails when any answer is a non-public address.
 * Address literals need no lookup; `localhost` and names under it are loopback (refused).
 */
export function publicOnlyLookup(resolver: Resolver): (hostname: string, options: LookupOptions, callback: LookupCallback) => void {
  return (hostname, options, callback) => {
    resolveAddresses(resolver, hostname, Number(options.family === 'IPv4' ? 4 : options.family === 'IPv6' ? 6 : options.family ?? 0)).then((addresses) => {
      const refused = addresses.find((a) => isNonPublicAddress(a.address));
      if (refused) return callback(new OutboundAddressRefused(hostname, refused.address), []);
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    }, (err: NodeJS.ErrnoException) => callback(err, []));
  };
}

/** The guard's resolver (OUTBOUND_RESOLVER_OPTIONS), asking `servers` when given. */
export function outboundResolver(dns: OutboundDnsOptions = {}): Resolver {
  const resolver = new Resolver(OUTBOUND_RESOLVER_OPTIONS);
  if (dns.servers?.length) resolver.setServers(dns.servers);
  return resolver;
}

/** Connection reuse of a dedicated agent (e.g. the webhook worker's: one TLS handshake per receiver, not per delivery). */
export interface OutboundAgentOptions {
  /** how long an idle connection is kept open for the next request (ms) */
  keepAliveTimeoutMs?: number;
  /** most connections open to one origin at once */
  connectionsPerOrigin?: number;
}

/**
 * The fetch to use for user-chosen URLs. With `allowNonPublic` (development and tests, whose doubles
 * listen on 127.0.0.1; OUTBOUND_ALLOW_PRIVATE_NETWORKS) no address is refused. With `agent`, requests go
 * through an agent of their own that keeps connections alive as told; without, the global fetch's (or the
 * guard's) defaults. The guard resolves names itself (outboundResolver; `dns` says where it asks).
 */
export function outboundFetch(allowNonPublic: boolean, agent?: OutboundAgentOptions, dns?: OutboundDnsOptions): typeof fetch {
  const pooling = agent ? { keepAliveTimeout: agent.keepAliveTimeoutMs, connections: agent.connectionsPerOrigin } : {};
  if (allowNonPublic && !agent) return fetch;
  const connect = allowNonPublic ? undefined : buildConnector({ lookup: publicOnlyLookup(outboundResolver(dns)) } as buildConnector.BuildOptions);
  const dispatcher = new Agent({
    ...pooling,
    ...(connect ? {
      connect: (options: buildConnector.Options, callback: buildConnector.Callback) => {
        // an address literal is never looked up: check it here (a redirect to one included)
        if (isNonPublicAddressLiteral(options.hostname)) return callback(new OutboundAddressRefused(options.hostname, options.hostname), null);
        return connect(options, callback);
      },
    } : {}),
  });
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) =>
    undiciFetch(input as never, { ...(init as object), dispatcher })) as unknown as typeof fetch;
}
