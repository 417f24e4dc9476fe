import { Inject, Injectable, OnModuleDestroy } from '@nestjs/common';
import { NEVER, Observable, Subject } from 'rxjs';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Principal } from '../../platform/auth/principal.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { sessionRepository } from './session.repository.js';

interface Watched {
  userId: string;
  ended: Subject<void>;
  watchers: number;
}

/**
 * Whether a user's access token still belongs to a live session (not revoked, not expired): the check begin_request
 * makes in every tenant transaction, for what runs without one (the auth guard on such routes, the notification
 * streams while they stay open). A token without a session (a service's, an API key's) has nothing to end.
 */
@Injectable()
export class SessionLiveness implements OnModuleDestroy {
  private readonly watched = new Map<string, Watched>();
  private timer?: NodeJS.Timeout;
  /** the check under way, if any */
  private checking?: Promise<void>;

  constructor(
    private readonly privileged: PrivilegedDatabase,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
  ) {}

  async isLive(principal: Principal): Promise<boolean> {
    if (principal.kind !== 'user' || !principal.sessionId) return true;
    const { sessionId, userId } = principal;
    return this.privileged.run('auth.session_check', (db) => sessionRepository.isLive(db, sessionId, userId));
  }

  /**
   * Emits once the token's session has ended (never for a token without one). Every STREAM_SESSION_CHECK_MS, one
   * query checks the sessions of all the watchers of this process (each open notification stream is one).
   */
  watch(principal: Principal): Observable<void> {
    if (principal.kind !== 'user' || !principal.sessionId) return NEVER;
    const { sessionId, userId } = principal;
    return new Observable<void>((subscriber) => {
      let w = this.watched.get(sessionId);
      if (!w) this.watched.set(sessionId, (w = { userId, ended: new Subject<void>(), watchers: 0 }));
      w.watchers++;
      const subscription = w.ended.subscribe(subscriber);
      // a tick while the last check still runs (a slow database) is skipped: checks never pile up on the pool
      this.timer ??= setInterval(() => {
        if (this.checking) return;
        this.checking = this.checkWatched().finally(() => (this.checking = undefined));
      }, this.config.auth.streamSessionCheckMs).unref();
      return () => {
        subscription.unsubscribe();
        if (--w.watchers === 0 && this.watched.get(sessionId) === w) this.watched.delete(sessionId);
        if (this.watched.size === 0) this.stop();
      };
    });
  }

  /** One check of every watched session; a check that fails ends nothing (the database may answer next time). */
  async checkWatched(): Promise<void> {
    const sessions = [...this.watched].map(([id, w]) => ({ id, userId: w.userId }));
    if (!sessions.length) return;
    const ended = await this.privileged.run('auth.session_check', (db) => sessionRepository.endedOf(db, sessions)).catch(() => []);
    for (const id of ended) {
      const w = this.watched.get(id);
      this.watched.delete(id);
      w?.ended.next();
      w?.ended.complete();
    }
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  onModuleDestroy(): void {
    this.stop();
  }
}
