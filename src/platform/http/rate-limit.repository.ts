import type { Db } from '../database/database.service.js';

/** The request organization's requests-per-minute limit in an app (hub.request_rate_limit: override, else plan). */
export const rateLimitRepository = {
  async requestLimit(db: Db, appId: string): Promise<{ found: boolean; requestsPerMinute: number | null }> {
    const [row] = await db.$queryRaw<{ known: boolean; requests_per_minute: bigint | string | null }[]>`
      SELECT known, requests_per_minute FROM hub.request_rate_limit(${appId})`;
    return { found: row?.known ?? false, requestsPerMinute: row?.requests_per_minute == null ? null : Number(row.requests_per_minute) };
  },
};
