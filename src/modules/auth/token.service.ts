import { createHash, createHmac, createSecretKey, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import jwt from 'jsonwebtoken';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { AppError } from '../../platform/errors/app-error.js';
import { UUID } from '../../platform/http/uuid.js';
import { OUR_ISSUER } from './external-token.js';

/** The audience of our API's access tokens (Supabase's, so PostgREST accepts them too). */
export const API_AUDIENCE = 'authenticated';
/** App tokens' audience names the app, so the API (audience `authenticated`) refuses them. */
export const appAudience = (appCode: string) => `app:${appCode}`;

export interface AccessTokenSubject {
  userId: string;
  email: string;
  personalOrgId: string;
  sessionId?: string;
  /** the organization the app works in; defaults to the personal organization */
  orgId?: string;
}

export interface AppTokenClaims {
  jti: string;
  userId: string;
  email: string;
  orgId: string;
  personalOrgId: string;
  appCode: string;
  expiresAt: Date;
  /** the session the token was minted in (absent when the minting access token had none): redeeming needs it live */
  sessionId?: string;
}

/**
 * Our access token carries Supabase's claims (sub, role, aud, email, exp) and the seeds'
 * (userId, orgId), signed HS256 with the Supabase JWT secret, so the same token works against a
 * Supabase project's own REST API. App tokens (seed 000 handshake) are signed alike but carry the
 * app's audience and a jti: only the handshake accepts them, once.
 */
@Injectable()
export class TokenService {
  private readonly signingKey: KeyObject;
  private readonly successorKey: Buffer;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.signingKey = createSecretKey(Buffer.from(config.auth.supabaseJwtSecret));
    this.successorKey = createHmac('sha256', config.auth.supabaseJwtSecret).update('omnizen refresh-token successor').digest();
  }

  issueAccessToken(s: AccessTokenSubject): { token: string; expiresIn: number } {
    const ttlSeconds = this.config.auth.accessTokenTtlSeconds;
    const token = jwt.sign({ ...userClaims(s), session_id: s.sessionId }, this.signingKey,
      { algorithm: 'HS256', audience: API_AUDIENCE, issuer: OUR_ISSUER, expiresIn: ttlSeconds });
    return { token, expiresIn: ttlSeconds };
  }

  /** Names the minting session (session_id, as our access tokens do): the handshake refuses the token once it has ended. */
  issueAppToken(s: AccessTokenSubject, appCode: string, ttlSeconds: number): { token: string; expiresIn: number } {
    const token = jwt.sign({ ...userClaims(s), appCode, session_id: s.sessionId }, this.signingKey,
      { algorithm: 'HS256', audience: appAudience(appCode), issuer: OUR_ISSUER, expiresIn: ttlSeconds, jwtid: randomUUID() });
    return { token, expiresIn: ttlSeconds };
  }

  /** Checks an app token for `appCode`: our issuer, that app's audience, an expiry, a jti and, if any, a session id (both UUIDs). */
  verifyAppToken(token: string, appCode: string): AppTokenClaims {
    let claims: jwt.JwtPayload;
    try {
      claims = jwt.verify(token, this.signingKey, { algorithms: ['HS256'], audience: appAudience(appCode), issuer: OUR_ISSUER }) as jwt.JwtPayload;
    } catch (err) {
      if (err instanceof jwt.TokenExpiredError) throw AppError.unauthorized('the app token has expired');
      throw AppError.unauthorized(`this is not a valid app token for ${appCode}`);
    }
    // both end up in uuid columns: a malformed one is an invalid token, not a database error
    const sessionId = typeof claims.session_id === 'string' && UUID.test(claims.session_id) ? claims.session_id : undefined;
    if (typeof claims.exp !== 'number' || typeof claims.jti !== 'string' || !UUID.test(claims.jti) || typeof claims.sub !== 'string'
      || (claims.session_id !== undefined && sessionId === undefined)) {
      throw AppError.unauthorized(`this is not a valid app token for ${appCode}`);
    }
    return {
      jti: claims.jti, userId: claims.sub, email: claims.email, orgId: claims.orgId, personalOrgId: claims.personal_org_id,
      appCode, expiresAt: new Date(claims.exp * 1000), sessionId,
    };
  }

  newRefreshToken(): { token: string; hash: string } {
    const token = randomBytes(32).toString('base64url');
    return { token, hash: hashToken(token) };
  }

  /**
   * The refresh token that replaces `token`, derived rather than random so that a second refresh
   * within the grace window can hand out the same one without the database ever holding it:
   * only a holder of `token` (or of the server secret) can compute it.
   */
  successorOf(token: string): { token: string; hash: string } {
    const next = createHmac('sha256', this.successorKey).update(token).digest('base64url');
    return { token: next, hash: hashToken(next) };
  }
}

/** Supabase's claims (sub, role, email) and the seeds' (userId, orgId), shared by both kinds of token. */
function userClaims(s: AccessTokenSubject) {
  return {
    sub: s.userId,
    role: 'authenticated',
    email: s.email,
    userId: s.userId,
    orgId: s.orgId ?? s.personalOrgId,
    personal_org_id: s.personalOrgId,
  };
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
