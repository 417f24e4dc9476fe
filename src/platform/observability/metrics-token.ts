import { createHash, timingSafeEqual } from 'node:crypto';

const digest = (s: string) => createHash('sha256').update(s, 'utf8').digest();

/**
 * METRICS_TOKEN, the operators' bearer token: it opens /metrics and the details of /health/ready. Compared by digest
 * in constant time.
 */
export class MetricsToken {
  private readonly token?: Buffer;

  constructor(token: string | undefined) {
    this.token = token ? digest(token) : undefined;
  }

  /** whether a token is configured at all */
  get configured(): boolean {
    return this.token !== undefined;
  }

  /** whether `authorization` (an Authorization header) is `Bearer <METRICS_TOKEN>`; never without a configured token */
  borneBy(authorization: string | undefined): boolean {
    const given = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
    return this.token !== undefined && given !== undefined && timingSafeEqual(digest(given), this.token);
  }
}
