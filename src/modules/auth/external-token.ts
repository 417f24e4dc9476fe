import jwt from 'jsonwebtoken';
import { AppError } from '../../platform/errors/app-error.js';
import type { AppConfig } from '../../platform/config/config.js';
import { UUID } from '../../platform/http/uuid.js';
import { normalizeEmail } from '../../platform/http/email.js';

export const EXCHANGE_PROVIDERS = ['nextauth', 'supabase'] as const;
export type ExchangeProvider = (typeof EXCHANGE_PROVIDERS)[number];

/** The identity an outside session vouches for, in the shape syncUserToDatabase (seed 000) takes. */
export interface ExternalIdentity {
  provider: ExchangeProvider;
  /** Supabase: auth.users id, which becomes core."User".id for a new user when free. NextAuth: the Hub's user id. */
  subject: string;
  email: string;
  /**
   * Whether the token itself vouches that the e-mail is the user's: a top-level `email_verified: true`
   * claim (the Hub adds it for addresses it verified; a Supabase project can add it with a custom access
   * token hook). Never `user_metadata`, which a Supabase user edits at will, and never for anonymous
   * users. Without the claim, the exchange asks the Supabase project (SupabaseEmailCheck); with or without it,
   * nothing of a project that auto-confirms e-mail sign-ups counts as verified.
   */
  emailVerified: boolean;
  name?: string;
  image?: string;
}

export const OUR_ISSUER = 'omnizen';
const LABEL: Record<ExchangeProvider, string> = { nextauth: 'NextAuth', supabase: 'Supabase' };

const text = (v: unknown): string | undefined => (typeof v === 'string' && v.trim() ? v.trim().slice(0, 2000) : undefined);

function secretOf(config: AppConfig, provider: ExchangeProvider): string | undefined {
  return provider === 'nextauth' ? config.auth.nextAuthSecret : config.auth.supabaseJwtSecret;
}

/** Why a token was refused, in words a client developer can act on. */
function reason(provider: ExchangeProvider, err: unknown): string {
  const label = LABEL[provider];
  if (err instanceof jwt.TokenExpiredError) return `the ${label} token expired at ${err.expiredAt.toISOString()}`;
  if (err instanceof jwt.NotBeforeError) return `the ${label} token is not valid before ${err.date.toISOString()}`;
  if (err instanceof jwt.JsonWebTokenError) {
    if (err.message.startsWith('jwt audience invalid')) return `the ${label} token's audience must be "authenticated"`;
    if (err.message === 'invalid signature') return `the token's signature does not match the ${label} secret`;
    return `the ${label} token is not a valid HS256 JWT (${err.message})`;
  }
  return `the ${label} token could not be verified`;
}

function verifyAs(config: AppConfig, provider: ExchangeProvider, token: string): ExternalIdentity {
  const secret = secretOf(config, provider);
  if (!secret) throw AppError.unauthorized(`${LABEL[provider]} tokens are not accepted here: NEXTAUTH_SECRET is not configured`);
  let claims: jwt.JwtPayload;
  try {
    claims = jwt.verify(token, secret, {
      algorithms: ['HS256'],
      ...(provider === 'supabase' ? { audience: 'authenticated' } : {}),
    }) as jwt.JwtPayload;
  } catch (err) {
    throw Object.assign(AppError.unauthorized(reason(provider, err)), { signatureMismatch: err instanceof jwt.JsonWebTokenError && err.message === 'invalid signature' });
  }
  if (typeof claims !== 'object' || claims.exp === undefined) {
    throw AppError.unauthorized(`the ${LABEL[provider]} token has no expiry (exp); refusing a token that never expires`);
  }
  const claimed = text(claims.email);
  const email = claimed === undefined ? undefined : normalizeEmail(claimed);
  if (!email || !email.includes('@')) throw AppError.unauthorized(`the ${LABEL[provider]} token carries no email claim`);
  if (provider === 'supabase') {
    // our own access tokens share the Supabase secret; exchanging one (e.g. a 120 s app token)
    // would turn it into a fresh long-lived session
    if (claims.iss === OUR_ISSUER) throw AppError.unauthorized('this is an OmniZen access token, not a Supabase session; use /v1/auth/refresh to renew a session');
    if (claims.role !== 'authenticated') throw AppError.unauthorized(`the Supabase token's role must be "authenticated", got "${String(claims.role)}"`);
    if (!UUID.test(String(claims.sub ?? ''))) throw AppError.unauthorized('the Supabase token\'s sub must be the auth.users id (a UUID)');
    const meta = (claims.user_metadata ?? {}) as Record<string, unknown>;
    return {
      provider, subject: String(claims.sub).toLowerCase(), email,
      emailVerified: claims.is_anonymous !== true && claims.email_verified === true,
      name: text(meta.full_name) ?? text(meta.name), image: text(meta.avatar_url) ?? text(meta.picture),
    };
  }
  if (!text(claims.sub)) throw AppError.unauthorized('the NextAuth token carries no sub claim');
  return { provider, subject: String(claims.sub), email, emailVerified: claims.email_verified === true, name: text(claims.name), image: text(claims.picture) };
}

/**
 * Verifies a Hub / NextAuth session JWT or a Supabase access token (both HS256, each with its own
 * secret). Without a provider, the token's signature decides which one it is.
 */
export function verifyExternalToken(config: AppConfig, token: string, provider?: ExchangeProvider): ExternalIdentity {
  const decoded = jwt.decode(token, { complete: true });
  if (!decoded) throw AppError.unauthorized('the token is not a JWT');
  if (decoded.header.alg !== 'HS256') throw AppError.unauthorized(`the token must be signed with HS256, not ${decoded.header.alg}`);
  if (provider) return verifyAs(config, provider, token);
  const errors: AppError[] = [];
  for (const candidate of EXCHANGE_PROVIDERS) {
    if (!secretOf(config, candidate)) continue;
    try {
      return verifyAs(config, candidate, token);
    } catch (err) {
      // a signature that matched tells us the provider: report that provider's problem
      if (!(err as { signatureMismatch?: boolean }).signatureMismatch) throw err;
      errors.push(err as AppError);
    }
  }
  throw AppError.unauthorized(
    errors.length
      ? 'the token\'s signature matches neither the NextAuth nor the Supabase secret'
      : 'no token provider is configured',
  );
}
