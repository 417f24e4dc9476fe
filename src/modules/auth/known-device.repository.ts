import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';
import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { qb } from '../../platform/database/query-builder.js';

/** The network a device signs in from: IPv4 /24, IPv6 /48 (a phone moving between cells of one provider stays known). */
export function networkPrefix(ip: string | undefined): string {
  if (!ip) return 'unknown';
  const v4 = ip.startsWith('::ffff:') && isIPv4(ip.slice(7)) ? ip.slice(7) : ip;
  if (isIPv4(v4)) return `${v4.split('.').slice(0, 3).join('.')}.0/24`;
  if (isIPv6(ip)) {
    const [head] = ip.split('::');
    const groups = head.split(':').filter(Boolean);
    while (groups.length < 3) groups.push('0');
    return `${groups.slice(0, 3).join(':')}::/48`;
  }
  return 'unknown';
}

/** What makes a device "known": SHA-256 of the user agent and the network prefix, never the raw values. */
export function deviceHash(userAgent: string | undefined, ip: string | undefined): string {
  return createHash('sha256').update(`${userAgent ?? ''}|${networkPrefix(ip)}`, 'utf8').digest('hex');
}

/** core.known_devices (privileged auth path only). */
export const knownDeviceRepository = {
  /**
   * Records the device; returns whether it is new for a user who had signed in from another device before
   * (the first device of an account is not "unknown": there is nothing to compare it with).
   */
  async record(db: Db, userId: string, hash: string): Promise<{ unknown: boolean }> {
    const [inserted] = await db.run(qb.insertInto('core.known_devices').values({ user_id: userId, device_hash: hash })
      .onConflict((oc) => oc.columns(['user_id', 'device_hash']).doUpdateSet({ last_seen_at: sql`now()` }))
      .returning(sql<boolean>`xmax = 0`.as('inserted')));
    if (!inserted.inserted) return { unknown: false };
    const [others] = await db.run(qb.selectFrom('core.known_devices').select((eb) => eb.fn.countAll<string>().as('n'))
      .where('user_id', '=', userId).where('device_hash', '<>', hash));
    return { unknown: Number(others.n) > 0 };
  },
};
