import { Redis } from 'ioredis';
import type { AppConfig } from '../config/config.js';

/**
 * A new client of REDIS_URL with the options every Redis client of the app shares, so they cannot drift apart: a
 * command is retried once after a reconnect at most, and is time-boxed by REDIS_COMMAND_TIMEOUT_MS (a Redis that
 * accepts connections and never answers keeps a client "ready"; without the deadline a command would wait for ever).
 * A caller chooses only how its client connects: at once (the shared client) or on `connect()` (a subscriber), and
 * whether commands sent while it is not connected wait for the connection or fail at once. A connection being closed is
 * destroyed at once (disconnectTimeout 0, not ioredis's 2 s): ioredis arms that timer even for a connection already gone
 * (a client closed while it reconnects to a Redis that is down), nothing clears it, and it held the process 2 s after
 * shutdown. Nothing is lost: the app closes a connection after its QUIT was answered or given up on, or a subscriber's.
 */
export function createRedisClient(
  config: Pick<AppConfig, 'redisUrl' | 'redisCommandTimeoutMs'>,
  connection: { lazyConnect: boolean; enableOfflineQueue?: boolean },
): Redis {
  if (!config.redisUrl) throw new Error('REDIS_URL is not set');
  return new Redis(config.redisUrl, { ...connection, maxRetriesPerRequest: 1, commandTimeout: config.redisCommandTimeoutMs, disconnectTimeout: 0 });
}
