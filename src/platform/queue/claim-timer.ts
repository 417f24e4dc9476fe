import { Injectable } from '@nestjs/common';

/**
 * Runs `tick` every `ms` until the answered function stops it: the outbox relay renews the claim of the job it is
 * running with it. Injected, so tests tick when they choose instead of waiting on the wall clock.
 */
@Injectable()
export class ClaimTimer {
  every(ms: number, tick: () => Promise<void>): () => void {
    const timer = setInterval(() => void tick(), ms);
    // a renewal alone never keeps the process up
    timer.unref();
    return () => clearInterval(timer);
  }
}
