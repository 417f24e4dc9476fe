import { createHash, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import jwt from 'jsonwebtoken';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { OUR_ISSUER } from './external-token.js';

export interface AccessTokenSubject {
  userId: string;
  email: string;
  personalOrgId: string;
  sessionId?: string;
  /** the organization the app works in; defaults to the personal organization */
  orgId?: string;
  appCode?: string;
}

/**
 * Our access token carries Supabase's claims (sub, role, aud, email, exp) and the seeds'
 * (userId, orgId, appCode), signed HS256 with the Supabase JWT secret, so the same token works
 * against a Supabase project's own REST API.
 */
@Injectable()
export class TokenService {
  private readonly signingKey: KeyObject;

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {
    this.signingKey = createSecretKey(Buffer.from(config.auth.supabaseJwtSecret));
  }

  issueAccessToken(s: AccessTokenSubject, ttlSeconds = this.config.auth.accessTokenTtlSeconds): { token: string; expiresIn: number } {
    const token = jwt.sign(
      {
        sub: s.userId,
        role: 'authenticated',
        email: s.email,
        userId: s.userId,
        orgId: s.orgId ?? s.personalOrgId,
        personal_org_id: s.personalOrgId,
        appCode: s.appCode,
        session_id: s.sessionId,
      },
      this.signingKey,
      { algorithm: 'HS256', audience: 'authenticated', issuer: OUR_ISSUER, expiresIn: ttlSeconds },
    );
    return { token, expiresIn: ttlSeconds };
  }

  newRefreshToken(): { token: string; hash: string } {
    const token = randomBytes(32).toString('base64url');
    return { token, hash: hashToken(token) };
  }
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token).digest('hex');
}
