import type { Logger } from '@nestjs/common';

/**
 * After Redis did not answer a command within REDIS_COMMAND_TIMEOUT_MS, how long a feature that can count in this
 * process counts there before it asks Redis again: a hung Redis costs one command timeout per second, not one per call.
 */
export const REDIS_RETRY_MS = 1000;

/**
 * When a feature that can decide in this process instead of the shared Redis (the request limiter, the login throttle)
 * asks Redis, and what it tells the log. A Redis that is down, or not connected yet, fails a command at once (the
 * shared client queues nothing while it is not connected: RedisService); one that hangs keeps the client "ready" and
 * costs a whole command timeout, so after a timeout it is left alone REDIS_RETRY_MS. Warns once per outage, and says
 * once when Redis answers again.
 */
export class RedisFallback {
  /** Redis failed the last command */
  private down = false;
  /** after a timeout, when (clock ms) Redis may be asked again */
  private retryAt = 0;

  constructor(
    private readonly what: string,
    private readonly logger: Logger,
    private readonly now: () => number,
  ) {}

  /** Whether to ask Redis now (false within REDIS_RETRY_MS of a timeout: this process decides meanwhile). */
  mayAsk(): boolean {
    return this.now() >= this.retryAt;
  }

  /** Redis answered a command. */
  answered(): void {
    if (!this.down) return;
    this.down = false;
    this.logger.log(`${this.what}: counting in Redis again`);
  }

  /** Redis failed a command (down, or silent past the command timeout): the caller counts in this process. */
  failed(err: unknown, context: Record<string, unknown> = {}): void {
    if (err instanceof Error && err.message === 'Command timed out') this.retryAt = this.now() + REDIS_RETRY_MS;
    if (this.down) return;
    this.down = true;
    this.logger.warn({ ...context, err: err instanceof Error ? err.message : String(err) }, `${this.what}: Redis unavailable, counting in this process until it answers`);
  }
}
