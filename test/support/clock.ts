import { Clock } from '../../src/platform/clock/clock.js';

/** The system clock plus whatever a test moved it by: windows and lockouts expire without sleeping. */
export class ManualClock extends Clock {
  private offsetMs = 0;

  override now(): number {
    return Date.now() + this.offsetMs;
  }

  /** A clock on `iso` (an instant), running on with the wall clock from there: for tests of fixed dates (2030's). */
  static at(iso: string): ManualClock {
    const clock = new ManualClock();
    clock.advance(Date.parse(iso) - clock.now());
    return clock;
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }

  /**
   * Moves the clock to 12:00 UTC of the day it is on: a test that works out "today" more than once cannot see midnight
   * pass between two of them (a CI run crossing midnight failed so).
   */
  atMidday(): this {
    const DAY = 86_400_000;
    const now = this.now();
    this.advance(now - (now % DAY) + DAY / 2 - now);
    return this;
  }
}
