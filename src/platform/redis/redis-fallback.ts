import { Injectable, Logger } from '@nestjs/common';
import { CallTimer, Clock } from '../clock/clock.js';
import { RedisService } from './redis.service.js';

/**
 * After Redis did not answer a command within REDIS_COMMAND_TIMEOUT_MS, how long a feature that can count in this
 * process counts there before it asks Redis again: a hung Redis costs one command timeout per second, not one per call.
 */
export const REDIS_RETRY_MS = 1000;

/**
 * How long calls that must not count apart from the other instances (the login throttle) wait for the shared client
 * while it is not connected, from the moment its connection was lost (or, never connected yet, from boot): a reconnect
 * (a connection reset, a Redis restart, a deploy's first seconds) is waited for; a longer outage is not.
 */
export const REDIS_RECONNECT_WAIT_MS = 2000;

/**
 * When a feature that can decide in this process instead of the shared Redis (the request limiter, the login throttle)
 * asks Redis, and what it tells the log. One for the process (a provider next to RedisService), so what one feature
 * learnt holds for the others: a login during a hang pays one command timeout, not one per feature.
 *
 * - A Redis that is down, or not connected yet, fails a command at once (the shared client queues nothing while it is
 *   not connected: RedisService). A caller that must not count apart meanwhile awaits `whenConnected()` first: one wait
 *   per lost connection, shared by every call, that ends when the client is ready again, or closed, or
 *   REDIS_RECONNECT_WAIT_MS after the connection was lost; from then on, until the client is ready again, no call
 *   waits (a long outage costs no call a wait).
 * - One that hangs keeps the client "ready" and costs a whole command timeout, so after a timeout it is left alone
 *   REDIS_RETRY_MS (`mayAsk`).
 * Warns once per outage and feature, and says once when Redis answers that feature again.
 */
@Injectable()
export class RedisFallback {
  private readonly logger = new Logger(RedisFallback.name);
  /** the features whose last command Redis failed */
  private readonly down = new Set<string>();
  /** after a timeout, when (clock ms) Redis may be asked again */
  private retryAt = 0;
  /** since when (clock ms) the client has not been connected; undefined while it is (or has been closed for good) */
  private lostAt?: number;
  /** the window of the current loss is over: no call waits until the client is ready again */
  private waitedEnough = false;
  /** the calls' one wait for the current loss, and how to end it */
  private reconnect?: { promise: Promise<void>; end: () => void };

  constructor(
    private readonly redis: RedisService,
    private readonly clock: Clock,
    private readonly timer: CallTimer,
  ) {
    const client = redis.client;
    if (!client) return;
    // a client that is down now but was connected before lost its connection at a moment unknown here: no wait
    if (client.status !== 'ready') {
      if (redis.readyOnce) this.waitedEnough = true;
      else this.lostAt = clock.now();
    }
    client.on('close', () => { this.lostAt ??= this.clock.now(); });
    client.on('ready', () => this.settle());
    // closed for good (shutdown): nothing to wait for
    client.on('end', () => this.settle());
  }

  /**
   * Undefined when a command may be sent now (the client is connected, or has been lost longer than
   * REDIS_RECONNECT_WAIT_MS, or is closed, or there is none); else the one wait for the reconnection, which resolves
   * (never rejects) when the client is ready or the window is over. The wait goes through the injected CallTimer.
   */
  whenConnected(): Promise<void> | undefined {
    const status = this.redis.client?.status;
    if (status === undefined || status === 'ready' || status === 'end' || this.waitedEnough) return undefined;
    if (this.reconnect) return this.reconnect.promise;
    // the 'close' event comes a tick after the status: the loss is counted from now at the latest
    const lostAt = (this.lostAt ??= this.clock.now());
    const remaining = lostAt + REDIS_RECONNECT_WAIT_MS - this.clock.now();
    if (remaining <= 0) {
      this.waitedEnough = true;
      return undefined;
    }
    let resolve!: () => void;
    let stop = (): void => undefined;
    const promise = new Promise<void>((r) => (resolve = r));
    const reconnect = {
      promise,
      end: () => {
        stop();
        resolve();
      },
    };
    this.reconnect = reconnect;
    stop = this.timer.start(remaining, () => {
      if (this.reconnect !== reconnect) return; // a wait already over
      this.reconnect = undefined;
      this.waitedEnough = true;
      reconnect.end();
    });
    return promise;
  }

  /** The client is ready (or closed for good): the calls waiting go on, and the next loss starts a new window. */
  private settle(): void {
    this.lostAt = undefined;
    this.waitedEnough = false;
    const reconnect = this.reconnect;
    this.reconnect = undefined;
    reconnect?.end();
  }

  /** Whether to ask Redis now (false within REDIS_RETRY_MS of a timeout: this process decides meanwhile). */
  mayAsk(): boolean {
    return this.clock.now() >= this.retryAt;
  }

  /** Redis answered a command of `what` (a feature's name in the log). */
  answered(what: string): void {
    if (this.down.delete(what)) this.logger.log(`${what}: counting in Redis again`);
  }

  /** Redis failed a command of `what` (down, or silent past the command timeout): the caller counts in this process. */
  failed(what: string, err: unknown, context: Record<string, unknown> = {}): void {
    if (err instanceof Error && err.message === 'Command timed out') this.retryAt = this.clock.now() + REDIS_RETRY_MS;
    if (this.down.has(what)) return;
    this.down.add(what);
    this.logger.warn({ ...context, err: err instanceof Error ? err.message : String(err) }, `${what}: Redis unavailable, counting in this process until it answers`);
  }
}
