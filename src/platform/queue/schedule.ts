import type { Logger } from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { CronJob } from 'cron';

/**
 * Registers a job whose schedule comes from configuration (@Cron() takes its expression at
 * class-definition time, before config exists). The schedule module stops it at shutdown;
 * a run's failure is logged and the next tick runs again.
 */
export function scheduleFromConfig(scheduler: SchedulerRegistry, name: string, cronTime: string, run: () => Promise<unknown>, logger: Logger): void {
  scheduler.addCronJob(name, CronJob.from({
    cronTime,
    onTick: () => run().then(() => undefined, (err) => logger.error({ err }, `${name} failed`)),
    waitForCompletion: true,
    start: true,
  }));
}

/** Throws when `cronTime` is not a cron expression (used by config validation). */
export function assertCronExpression(cronTime: string): void {
  CronJob.from({ cronTime, onTick: () => undefined }).stop();
}
