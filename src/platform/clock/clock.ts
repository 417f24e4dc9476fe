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
