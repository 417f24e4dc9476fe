import { createSecretKey } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import { PassportStrategy } from '@nestjs/passport';
import { ExtractJwt, Strategy } from 'passport-jwt';
import type { FastifyRequest } from 'fastify';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Principal } from '../../platform/auth/principal.js';
import { OUR_ISSUER } from './external-token.js';
import { API_AUDIENCE } from './token.service.js';

export const ACCESS_COOKIE = 'omnizen_access';

const fromCookie = (req: FastifyRequest): string | null => req?.cookies?.[ACCESS_COOKIE] ?? null;

/**
 * One strategy for every bearer: our access tokens (role authenticated, aud authenticated, our
 * issuer) and the Supabase service-role key (role service_role), both HS256 with the Supabase JWT
 * secret and both with an expiry.
 */
@Injectable()
export class JwtStrategy extends PassportStrategy(Strategy, 'jwt') {
  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    super({
      jwtFromRequest: ExtractJwt.fromExtractors([ExtractJwt.fromAuthHeaderAsBearerToken(), fromCookie]),
      // A ready KeyObject (jsonwebtoken accepts one; passport-jwt's types predate that): given a
      // string, jsonwebtoken first tries it as a public key and re-derives it on every request,
      // ~0.7 ms of CPU each.
      secretOrKey: createSecretKey(Buffer.from(config.auth.supabaseJwtSecret)) as unknown as Buffer,
      algorithms: ['HS256'],
      ignoreExpiration: false,
    });
  }

  validate(payload: Record<string, any>): Principal | false {
    // jsonwebtoken checks exp only when present: a token without one would never expire
    if (typeof payload.exp !== 'number') return false;
    if (payload.role === 'service_role') {
      return { kind: 'service', name: typeof payload.service === 'string' ? payload.service : String(payload.iss ?? 'service') };
    }
    const aud = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    // Only our own access tokens: our issuer and the API's audience. App tokens (audience app:<code>)
    // open only their handshake; raw Supabase tokens (their issuer) go through /v1/auth/exchange.
    if (payload.iss !== OUR_ISSUER || !aud.includes(API_AUDIENCE) || payload.role !== 'authenticated' || !payload.sub || !payload.personal_org_id) {
      return false;
    }
    return {
      kind: 'user',
      userId: payload.sub,
      email: payload.email,
      personalOrgId: payload.personal_org_id,
      sessionId: payload.session_id,
      expiresAt: payload.exp,
    };
  }
}
