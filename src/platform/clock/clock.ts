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
