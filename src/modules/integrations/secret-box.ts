import { AesGcmOpenError, openAesGcm, sealAesGcm } from '../../platform/crypto/aes-gcm.js';
import { IntegrationsErrors } from './integrations.errors.js';

/** What integration_secrets.secret holds: AES-256-GCM output (base64) and the id of the key that sealed it. */
export interface SealedSecret {
  ciphertext: string;
  iv: string;
  tag: string;
  kid: string;
}

/** The row a secret belongs to; bound into the ciphertext as associated data. */
export interface SecretOwner {
  integrationId: string;
  userId: string;
}

/** A secret could not be opened. The message never carries key material or plaintext. */
export class SecretOpenError extends Error {
  constructor(reason: string) {
    super(`integration secret could not be opened: ${reason}`);
  }
}

const aad = (o: SecretOwner) => Buffer.from(`omnizen.integration_secret.v1:${o.integrationId.toLowerCase()}:${o.userId.toLowerCase()}`, 'utf8');

export function isSealedSecret(v: unknown): v is SealedSecret {
  const s = v as SealedSecret;
  return !!s && typeof s === 'object' && ['ciphertext', 'iv', 'tag', 'kid'].every((k) => typeof (s as any)[k] === 'string');
}

/**
 * Seals and opens integration secrets with a key set from configuration (SECRETS_KEYS) and one
 * active key (SECRETS_ACTIVE_KEY). New writes use the active key; older keys only open what they
 * sealed until `npm run secrets:rotate` has re-sealed it, after which they can be retired.
 * The integration id and user id are associated data: a ciphertext copied to another row fails to open.
 */
export class SecretBox {
  constructor(
    private readonly keys: Record<string, Buffer>,
    readonly activeKeyId: string | undefined,
  ) {}

  get configured(): boolean {
    return !!this.activeKeyId && !!this.keys[this.activeKeyId];
  }

  seal(value: unknown, owner: SecretOwner): SealedSecret {
    return this.sealWith(value, aad(owner));
  }

  open<T = unknown>(sealed: unknown, owner: SecretOwner): T {
    return this.openWith<T>(sealed, aad(owner));
  }

  /**
   * Seals a secret of another module's row (e.g. a webhook endpoint's signing secret): `context` names the row
   * (`webhook_endpoint:<org>:<id>`) and is bound as associated data, so the ciphertext opens only for that row.
   */
  sealFor(value: unknown, context: string): SealedSecret {
    return this.sealWith(value, Buffer.from(`omnizen.${context}`, 'utf8'));
  }

  openFor<T = unknown>(sealed: unknown, context: string): T {
    return this.openWith<T>(sealed, Buffer.from(`omnizen.${context}`, 'utf8'));
  }

  private sealWith(value: unknown, associatedData: Buffer): SealedSecret {
    if (!this.configured) {
      throw IntegrationsErrors.error('secrets.not_configured', 'no encryption key for secrets is configured on this server (SECRETS_KEYS)');
    }
    const kid = this.activeKeyId!;
    const { ciphertext, iv, tag } = sealAesGcm(this.keys[kid], JSON.stringify(value), associatedData);
    return { ciphertext: ciphertext.toString('base64'), iv: iv.toString('base64'), tag: tag.toString('base64'), kid };
  }

  private openWith<T>(sealed: unknown, associatedData: Buffer): T {
    if (!isSealedSecret(sealed)) throw new SecretOpenError('not a sealed secret');
    const key = this.keys[sealed.kid];
    if (!key) throw new SecretOpenError(`key "${sealed.kid}" is not configured`);
    let plain: Buffer;
    try {
      plain = openAesGcm(key, {
        iv: Buffer.from(sealed.iv, 'base64'), ciphertext: Buffer.from(sealed.ciphertext, 'base64'), tag: Buffer.from(sealed.tag, 'base64'),
      }, associatedData);
    } catch (e) {
      // a tag or IV of the wrong size, or authentication failed: wrong key, tampered data, or sealed for another row
      throw new SecretOpenError(e instanceof AesGcmOpenError ? e.reason : 'authentication failed');
    }
    try {
      return JSON.parse(plain.toString('utf8')) as T;
    } catch {
      throw new SecretOpenError('authentication failed');
    }
  }

  /** Whether a stored secret should be re-sealed under the active key. */
  isStale(sealed: unknown): boolean {
    return !isSealedSecret(sealed) || sealed.kid !== this.activeKeyId;
  }
}

export const SECRET_BOX = Symbol('SECRET_BOX');
