import { Inject, Injectable } from '@nestjs/common';
import bcrypt from 'bcryptjs';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import type { Db, TenantTx } from '../../platform/database/database.service.js';
import { AppError } from '../../platform/errors/app-error.js';
import type { Principal } from '../../platform/auth/principal.js';
import { AuditService } from '../audit/audit.service.js';
import { LoginThrottle } from './login-throttle.service.js';
import { TokenService } from './token.service.js';
import { hashToken } from './token.service.js';
import { userRepository, type UserRow } from './user.repository.js';
import { sessionRepository } from './session.repository.js';
import type { AppTokenDto, TokensDto } from './auth.dto.js';
import { verifyExternalToken, type ExchangeProvider } from './external-token.js';

/** App tokens only carry the user into the app's login page (seed 000 handshake). */
export const APP_TOKEN_TTL_SECONDS = 120;

export interface ClientInfo {
  ip?: string;
  userAgent?: string;
  requestId?: string;
}

// A hash to compare against when the email is unknown, so both paths take the same time.
const DUMMY_HASH = bcrypt.hashSync('not-a-real-password', 4);

@Injectable()
export class AuthService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly privileged: PrivilegedDatabase,
    private readonly tokens: TokenService,
    private readonly throttle: LoginThrottle,
    private readonly audit: AuditService,
  ) {}

  async register(input: { email: string; password: string; name?: string }, client: ClientInfo): Promise<TokensDto> {
    const hash = await bcrypt.hash(input.password, this.config.auth.bcryptRounds);
    return this.privileged.run('auth.credentials', async (db) => {
      const existing = await userRepository.findByEmail(db, input.email);
      if (existing) throw AppError.conflict('auth.email_taken', `an account with email ${input.email} already exists`);
      const { user, personalOrgId, created } = await userRepository.upsert(db, { email: input.email, name: input.name });
      // a concurrent registration of the same email won the race: never set a password on its account
      if (!created) throw AppError.conflict('auth.email_taken', `an account with email ${input.email} already exists`);
      await userRepository.setPassword(db, user.id, hash);
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'user.registered', entityType: 'user', entityId: user.id, after: user,
      }, client);
      return this.startSession(db, user, personalOrgId, client);
    });
  }

  async login(email: string, password: string, client: ClientInfo): Promise<TokensDto> {
    await this.throttle.assertAllowed(email, client.ip);
    const found = await this.privileged.run('auth.credentials', (db) => userRepository.findByEmail(db, email));
    const ok = await bcrypt.compare(password, found?.passwordHash ?? DUMMY_HASH);
    if (!found || !found.passwordHash || !ok || !found.personalOrgId) {
      await this.throttle.recordFailure(email, client.ip);
      throw AppError.unauthorized('email or password is incorrect');
    }
    await this.throttle.recordSuccess(email);
    const personalOrgId = found.personalOrgId;
    const user: UserRow = { id: found.id, email: found.email, name: found.name, image: found.image, accountType: found.accountType };
    return this.privileged.run('auth.credentials', async (db) => {
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'auth.login', entityType: 'user', entityId: user.id,
      }, client);
      return this.startSession(db, user, personalOrgId, client);
    });
  }

  /**
   * Exchanges a Hub / NextAuth session or a Supabase access token for our tokens, creating or
   * updating the user like syncUserToDatabase (seed 000): matched by email; a new Supabase user
   * keeps its auth.users id; name and image follow the token.
   */
  async exchange(token: string, provider: ExchangeProvider | undefined, client: ClientInfo): Promise<TokensDto> {
    const identity = verifyExternalToken(this.config, token, provider);
    return this.privileged.run('auth.credentials', async (db) => {
      const existing = await userRepository.findByEmail(db, identity.email);
      const { user, personalOrgId, created } = await userRepository.upsert(db, {
        id: identity.provider === 'supabase' ? identity.subject : undefined,
        email: identity.email,
        name: identity.name,
        image: identity.image,
      });
      const before = existing && { id: existing.id, email: existing.email, name: existing.name, image: existing.image, accountType: existing.accountType };
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: created ? 'user.registered' : 'auth.exchanged', entityType: 'user', entityId: user.id,
        before: before ?? undefined, after: { ...user, provider: identity.provider },
      }, client);
      return this.startSession(db, user, personalOrgId, client);
    });
  }

  /** A short-lived token for the Hub → app handshake: the app reads `appCode` and the user's claims. */
  async appToken(tx: TenantTx, appCode: string): Promise<AppTokenDto> {
    const p = tx.principal as Extract<Principal, { kind: 'user' }>;
    const { token, expiresIn } = this.tokens.issueAccessToken(
      { userId: p.userId, email: p.email, personalOrgId: p.personalOrgId, sessionId: p.sessionId, appCode },
      APP_TOKEN_TTL_SECONDS,
    );
    await this.audit.record(tx, { action: 'auth.app_token_issued', entityType: 'app', entityId: appCode, after: { appCode, expiresIn } });
    return { accessToken: token, tokenType: 'Bearer', expiresIn, appCode, redirectQuery: `token=${encodeURIComponent(token)}` };
  }

  /**
   * Rotates a refresh token. A token that was already used means it leaked (or a client raced):
   * the whole session (the token family) is revoked.
   */
  async refresh(refreshToken: string, client: ClientInfo): Promise<TokensDto> {
    const tokenHash = hashToken(refreshToken);
    const outcome = await this.privileged.run('auth.refresh', async (db) => {
      const t = await sessionRepository.findTokenForRotation(db, tokenHash);
      if (!t) return { error: 'the refresh token is not valid' } as const;
      if (t.used_at) {
        await sessionRepository.revoke(db, t.session_id, 'refresh_token_reuse');
        const personalOrgId = await userRepository.personalOrgId(db, t.user_id);
        if (personalOrgId) {
          await this.audit.recordPrivileged(db, personalOrgId, 'system', {
            action: 'auth.refresh_token_reused', entityType: 'session', entityId: t.session_id,
          }, client);
        }
        return { error: 'the refresh token was already used; the session has been revoked' } as const;
      }
      if (t.revoked_at || t.session_expired || t.token_expired) return { error: 'the session has ended; log in again' } as const;
      await sessionRepository.markUsed(db, tokenHash);
      const next = this.tokens.newRefreshToken();
      await sessionRepository.addToken(db, t.session_id, t.user_id, next.hash, this.config.auth.refreshTokenTtlDays);
      const [user] = await db.$queryRaw<UserRow[]>`SELECT id, email, name, image, "accountType" FROM core."User" WHERE id = ${t.user_id}`;
      const personalOrgId = (await userRepository.personalOrgId(db, t.user_id))!;
      await this.audit.recordPrivileged(db, personalOrgId, this.principalOf(user, personalOrgId), {
        action: 'auth.refreshed', entityType: 'session', entityId: t.session_id,
      }, client);
      return { tokens: this.tokensFor(user, personalOrgId, t.session_id, next.token) } as const;
    });
    if ('error' in outcome) throw AppError.unauthorized(outcome.error);
    return outcome.tokens;
  }

  /** Log out: revoke the session of the calling access token. */
  async logout(tx: TenantTx): Promise<void> {
    const p = tx.principal;
    if (p.kind !== 'user' || !p.sessionId) return;
    await this.revokeSession(tx, p.sessionId);
  }

  async listSessions(tx: TenantTx) {
    const p = tx.principal as Extract<Principal, { kind: 'user' }>;
    const rows = await sessionRepository.listForUser(tx.db, p.userId);
    return rows.map((s) => ({ ...s, current: s.id === p.sessionId }));
  }

  async revokeSession(tx: TenantTx, sessionId: string): Promise<void> {
    // RLS: the update only reaches the caller's own sessions
    if (!(await sessionRepository.revoke(tx.db, sessionId, 'revoked_by_user'))) throw AppError.notFound('session', sessionId);
    await this.audit.record(tx, { action: 'auth.session_revoked', entityType: 'session', entityId: sessionId });
  }

  /** Creates a session (refresh-token family) and returns the first token pair. */
  async startSession(db: Db, user: UserRow, personalOrgId: string, client: ClientInfo, appCode?: string): Promise<TokensDto> {
    const refresh = this.tokens.newRefreshToken();
    const sessionId = await sessionRepository.create(db, {
      userId: user.id, userAgent: client.userAgent, ip: client.ip, ttlDays: this.config.auth.refreshTokenTtlDays, tokenHash: refresh.hash,
    });
    return this.tokensFor(user, personalOrgId, sessionId, refresh.token, appCode);
  }

  private tokensFor(user: UserRow, personalOrgId: string, sessionId: string, refreshToken: string, appCode?: string): TokensDto {
    const access = this.tokens.issueAccessToken({ userId: user.id, email: user.email, personalOrgId, sessionId, appCode });
    return { accessToken: access.token, tokenType: 'Bearer', expiresIn: access.expiresIn, refreshToken, user, personalOrgId };
  }

  principalOf(user: UserRow, personalOrgId: string): Principal {
    return { kind: 'user', userId: user.id, email: user.email, personalOrgId };
  }
}
