import { Injectable } from '@nestjs/common';
import type { Principal } from '../../platform/auth/principal.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { sessionRepository } from './session.repository.js';

/**
 * Whether a user's access token still belongs to a live session (not revoked, not expired): the check begin_request
 * makes in every tenant transaction, for what runs without one (the auth guard on such routes, the notification
 * stream while it stays open). A token without a session (a service's, an API key's) has nothing to end.
 */
@Injectable()
export class SessionLiveness {
  constructor(private readonly privileged: PrivilegedDatabase) {}

  async isLive(principal: Principal): Promise<boolean> {
    if (principal.kind !== 'user' || !principal.sessionId) return true;
    const { sessionId, userId } = principal;
    return this.privileged.run('auth.session_check', (db) => sessionRepository.isLive(db, sessionId, userId));
  }
}
