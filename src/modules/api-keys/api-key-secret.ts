import { createHash, randomBytes } from 'node:crypto';
import type { Principal } from '../../platform/auth/principal.js';

/**
 * The secret's format: `ozk_live_<key id, 32 hex>_<43 characters of base64url: 256 random bits>`. The prefix
 * `ozk_live_<id>` is public (shown in lists, names the key); the database stores only SHA-256 of the whole secret.
 */
export const API_KEY_BEARER = /^Bearer\s+ozk_/i;
const SECRET = /^ozk_live_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$/;

export function hashApiKeySecret(secret: string): string {
  return createHash('sha256').update(secret).digest('hex');
}

const dashed = (hex: string) => `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;

/** A new key's id-bearing prefix, secret and hash (the secret is shown once, then forgotten). */
export function newApiKeySecret(keyId: string): { prefix: string; secret: string; secretHash: string } {
  const prefix = `ozk_live_${keyId.replace(/-/g, '')}`;
  const secret = `${prefix}_${randomBytes(32).toString('base64url')}`;
  return { prefix, secret, secretHash: hashApiKeySecret(secret) };
}

/** The principal of `Authorization: Bearer ozk_...`, not yet verified (the database does that); undefined when malformed. */
export function apiKeyPrincipal(authorization: string): Extract<Principal, { kind: 'apiKey' }> | undefined {
  const token = authorization.replace(/^Bearer\s+/i, '').trim();
  const m = SECRET.exec(token);
  if (!m) return undefined;
  return { kind: 'apiKey', keyId: dashed(m[1]), secretHash: hashApiKeySecret(token) };
}
