import { Injectable } from '@nestjs/common';

/**
 * The time that windows and lockouts are measured in (login throttle, refresh grace). One
 * injectable source, so tests move time forward instead of sleeping on the wall clock.
 */
@Injectable()
export class Clock {
  /** Milliseconds since the epoch. */
  now(): number {
    return Date.now();
  }
}

/** The clock's UTC day, YYYY-MM-DD (what a date defaults to). */
export const today = (clock: Clock): string => new Date(clock.now()).toISOString().slice(0, 10);

/**
 * The timers of work in flight, each answering a function that stops it. Injected, so tests fire them when they choose
 * instead of waiting on the wall clock.
 */
@Injectable()
export class CallTimer {
  /** Cuts an outbound call after `ms` (a provider call after AI_TIMEOUT_MS, a webhook request after WEBHOOKS_TIMEOUT_MS). */
  start(ms: number, expire: () => void): () => void {
    const timer = setTimeout(expire, ms);
    return () => clearTimeout(timer);
  }

  /** Runs `tick` every `ms` while work lasts (the outbox relay renews the claim of the job it runs). */
  every(ms: number, tick: () => Promise<void>): () => void {
    const timer = setInterval(() => void tick(), ms);
    // a renewal alone never keeps the process up
    timer.unref();
    return () => clearInterval(timer);
  }
}

const wallTimer = new CallTimer();

/**
 * `promise`, or a rejection with `onTimeout()` if it has not settled within `ms` (it may still settle later; the timer
 * is cleared either way). For waits on a dependency that may never answer (a probe, a queue call); an outbound call
 * that tests cut on purpose passes its CallTimer (a test fires it instead of waiting).
 */
export function withTimeout<T>(promise: Promise<T>, ms: number, onTimeout: () => Error, timer: Pick<CallTimer, 'start'> = wallTimer): Promise<T> {
  let stop = (): void => undefined;
  const expired = new Promise<never>((_, reject) => (stop = timer.start(ms, () => reject(onTimeout()))));
  return Promise.race([promise, expired]).finally(() => stop());
}
