/**
 * When a failed delivery is tried again (seconds after the failed attempt), Svix's schedule as the issue asks:
 * the first attempt is immediate, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h: eight attempts over ~27.6 h,
 * after which the message is `failed` (replayable). Each delay gets up to 10 % of jitter, added (never
 * earlier), so endpoints that failed together are not retried in one burst.
 */
export const RETRY_DELAYS_SECONDS = [5, 300, 1800, 7200, 18_000, 36_000, 36_000] as const;
export const MAX_ATTEMPTS = RETRY_DELAYS_SECONDS.length + 1;
export const JITTER = 0.1;

/** An endpoint failing without a single success for this long is disabled. */
export const DISABLE_AFTER_FAILING_MS = 5 * 24 * 3600 * 1000;

/** The delay before the next attempt after `attempts` failed attempts of a round, or null when the round is over. */
export function retryDelayMs(attempts: number, random: () => number = Math.random): number | null {
  const base = RETRY_DELAYS_SECONDS[attempts - 1];
  if (base === undefined) return null;
  return Math.round(base * 1000 * (1 + JITTER * random()));
}
