import { Injectable, Logger } from '@nestjs/common';
import type { NestFastifyApplication } from '@nestjs/platform-fastify';
import { stopTracing } from '../observability/tracing.js';
import { flushErrorReporting } from '../observability/error-reporting.js';
import type { FastifyInstance } from 'fastify';
import { ReplaySubject, type Observable } from 'rxjs';

/**
 * The requests the server is answering, and whether it is draining (shutting down): readiness then
 * answers 503, so a load balancer stops sending traffic, and responses close their connection.
 */
@Injectable()
export class InFlightRequests {
  private count = 0;
  private idleWaiters: (() => void)[] = [];
  private readonly closingConnections = new ReplaySubject<void>(1);
  draining = false;
  /**
   * Emits once when the server stops accepting connections (and at once to a later subscriber): a response that lasts
   * until it is ended (an event stream) ends then, so that it does not hold the drain for the whole grace period.
   */
  readonly closing: Observable<void> = this.closingConnections.asObservable();

  get size(): number {
    return this.count;
  }

  /** Counts every request from its arrival until its response is finished or its connection closed. */
  track(fastify: FastifyInstance): void {
    fastify.addHook('onRequest', (_req, reply, done) => {
      this.count += 1;
      let settled = false;
      const finish = () => {
        if (settled) return;
        settled = true;
        this.count -= 1;
        if (this.count === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      };
      reply.raw.once('close', finish);
      done();
    });
    fastify.addHook('onSend', (_req, reply, payload, done) => {
      // a keep-alive client must open a new connection for its next request, which a draining server no longer accepts
      if (this.draining) reply.header('Connection', 'close');
      done(null, payload);
    });
  }

  /** The server accepts no more connections: open streams end (`closing`). */
  closeConnections(): void {
    this.closingConnections.next();
    this.closingConnections.complete();
  }

  /** Resolves true when no request is in flight, false if that takes longer than `ms`. */
  idle(ms: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.idleWaiters = this.idleWaiters.filter((w) => w !== wake);
        resolve(false);
      }, ms);
      const wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
      this.idleWaiters.push(wake);
    });
  }
}

/** How long the shutdown waits for the error reporter to send what it has queued (ms). */
const ERROR_FLUSH_MS = 2000;

/**
 * On SIGTERM (or SIGINT): report not ready at once, and keep accepting connections for `drainDelayMs` (so a load
 * balancer that polls readiness, or an orchestrator that removes the endpoint asynchronously, stops routing here
 * before connections are refused; a second signal ends the delay at once); then stop accepting connections, let the requests in flight finish within
 * `graceMs` (those still running then are cut), then close the application: the outbox relay finishes its pass,
 * Bull's worker its jobs, and the database pools close last; the spans and error events not yet sent are flushed (2 s
 * at most for the errors). Exits 0 when nothing was cut, 1 otherwise.
 */

export function shutDownGracefullyOn(signals: NodeJS.Signals[], app: NestFastifyApplication, graceMs: number, drainDelayMs = 0): void {
  const logger = new Logger('Shutdown');
  let started = false;
  let endDrainDelay: (() => void) | undefined;
  const shutDown = async (signal: NodeJS.Signals) => {
    if (started) {
      // a second signal (an operator in a hurry): during the drain delay it ends the delay (the grace period still
      // applies); after it, the process ends at once, as a signal nobody handles would end it
      if (endDrainDelay) return endDrainDelay();
      logger.warn(`${signal} again: exiting without waiting for the requests in flight`);
      process.exit(1);
    }
    started = true;
    const requests = app.get(InFlightRequests);
    const server = app.getHttpAdapter().getInstance().server;
    // the application's own close must not hang the process for ever
    const watchdog = setTimeout(() => {
      logger.error('shutdown did not finish in time; exiting');
      process.exit(1);
    }, drainDelayMs + graceMs + 15_000).unref();
    requests.draining = true;
    if (drainDelayMs > 0) {
      logger.log(`${signal}: not ready; still accepting connections for ${drainDelayMs} ms`);
      await new Promise<void>((resolve) => {
        endDrainDelay = resolve;
        setTimeout(resolve, drainDelayMs);
      });
      endDrainDelay = undefined;
    }
    logger.log(`${signal}: draining ${requests.size} request(s) in flight (grace ${graceMs} ms)`);
    server.close(); // no new connections; idle keep-alive connections are closed (Node >= 19)
    requests.closeConnections(); // open event streams end: their clients reconnect to another instance
    const finished = await requests.idle(graceMs);
    if (!finished) {
      logger.warn(`${requests.size} request(s) still running after ${graceMs} ms: cut`);
      server.closeAllConnections();
    }
    await app.close();
    await stopTracing(); // the spans not yet exported (a no-op without tracing)
    // the error events not yet sent (Sentry sends in the background: process.exit would drop them); a no-op without SENTRY_DSN
    if (!(await flushErrorReporting(ERROR_FLUSH_MS))) logger.warn(`error events not sent within ${ERROR_FLUSH_MS} ms: dropped`);
    clearTimeout(watchdog);
    logger.log('shut down');
    process.exit(finished ? 0 : 1);
  };
  for (const signal of signals) process.on(signal, (s) => void shutDown(s).catch((err) => {
    logger.error(err);
    process.exit(1);
  }));
}
