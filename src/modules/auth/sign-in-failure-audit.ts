import { BeforeApplicationShutdown, Injectable, Logger } from '@nestjs/common';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import { AuditService } from '../audit/audit.service.js';
import { LoginThrottle } from './login-throttle.service.js';
import { userRepository } from './user.repository.js';
import type { ClientInfo } from './auth.service.js';

/** auth.login_failed: a wrong password; auth.locked: an attempt refused by the login limits (429). */
export type SignInFailure = 'auth.login_failed' | 'auth.locked';

/**
 * Failed sign-ins audited in the account's personal organization, when the address has an account. Written beside the
 * answer, not awaited by it: the answer must take as long for an address with an account as for one without (the
 * login's dummy hash), and a write for the first only would tell them apart. At most one row a minute per e-mail and
 * kind (LoginThrottle.reserveFailureAudit), so guesses cannot flood the log. Best effort: a write that fails is logged.
 */
@Injectable()
export class SignInFailureAudit implements BeforeApplicationShutdown {
  private readonly logger = new Logger(SignInFailureAudit.name);
  private readonly pending = new Set<Promise<void>>();

  constructor(
    private readonly privileged: PrivilegedDatabase,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditService,
  ) {}

  /** Starts the audit of a failed sign-in with `email`; `route` says where (login, link_identity...). */
  record(email: string, action: SignInFailure, route: string, client: ClientInfo): void {
    const write: Promise<void> = this.write(email, action, route, client)
      .catch((err: Error) => this.logger.warn(`auditing a failed sign-in failed: ${err.message}`))
      .finally(() => this.pending.delete(write));
    this.pending.add(write);
  }

  /** Records auth.locked when `err` is the login limits' refusal; gives `err` back to be thrown. */
  lockedOut(err: unknown, email: string, route: string, client: ClientInfo): unknown {
    if (err instanceof AppError && err.code === 'auth.locked') this.record(email, 'auth.locked', route, client);
    return err;
  }

  /** Resolves once every write started so far has ended (the tests; the shutdown, before the pools close). */
  async settled(): Promise<void> {
    while (this.pending.size) await Promise.all([...this.pending]);
  }

  /** Before any pool closes (their onApplicationShutdown). */
  async beforeApplicationShutdown(): Promise<void> {
    await this.settled();
  }

  private async write(email: string, action: SignInFailure, route: string, client: ClientInfo): Promise<void> {
    if (!(await this.throttle.reserveFailureAudit(email, action))) return;
    await this.privileged.run('auth.credentials', async (db) => {
      const user = await userRepository.findByEmail(db, email);
      if (!user?.personalOrgId) return;
      await this.audit.recordPrivileged(db, user.personalOrgId, 'system', {
        action, entityType: 'user', entityId: user.id, after: { route },
      }, { requestId: client.requestId, ip: client.ip });
    });
  }
}
