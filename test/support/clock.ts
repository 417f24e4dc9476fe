import { Clock } from '../../src/platform/clock/clock.js';

/** The system clock plus whatever a test moved it by: windows and lockouts expire without sleeping. */
export class ManualClock extends Clock {
  private offsetMs = 0;

  override now(): number {
    return Date.now() + this.offsetMs;
  }

  advance(ms: number): void {
    this.offsetMs += ms;
  }
}
