import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';

/**
 * AES-256-GCM with associated data: the one implementation behind the integrations' secret box and the audit log's
 * sealed snapshots. Each caller keeps its own stored shape (base64 fields of its own names); this answers raw bytes.
 */

/** GCM's recommended IV size: a fresh random one for every seal (GCM must never reuse an IV under one key). */
export const AES_GCM_IV_BYTES = 12;
/** GCM's full authentication tag (what getAuthTag gives when sealing): nothing shorter opens. */
export const AES_GCM_TAG_BYTES = 16;

export interface AesGcmSealed {
  iv: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
}

/** A value did not open. `reason` names the check that refused it, never key material or plaintext. */
export class AesGcmOpenError extends Error {
  constructor(readonly reason: string) {
    super(`AES-GCM value could not be opened: ${reason}`);
  }
}

export function sealAesGcm(key: Buffer, plaintext: string | Buffer, associatedData: Buffer): AesGcmSealed {
  const iv = randomBytes(AES_GCM_IV_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, iv, { authTagLength: AES_GCM_TAG_BYTES });
  cipher.setAAD(associatedData);
  const ciphertext = Buffer.concat([typeof plaintext === 'string' ? cipher.update(plaintext, 'utf8') : cipher.update(plaintext), cipher.final()]);
  return { iv, ciphertext, tag: cipher.getAuthTag() };
}

/** The plaintext; throws AesGcmOpenError when the IV or tag has the wrong size or authentication fails. */
export function openAesGcm(key: Buffer, sealed: AesGcmSealed, associatedData: Buffer): Buffer {
  // the whole tag, as sealAesGcm makes it: GCM checks only as many bytes as it is given, and a 4-byte tag is forged in
  // about 2^32 tries
  if (sealed.tag.length !== AES_GCM_TAG_BYTES) throw new AesGcmOpenError(`the authentication tag is not ${AES_GCM_TAG_BYTES} bytes`);
  if (sealed.iv.length !== AES_GCM_IV_BYTES) throw new AesGcmOpenError(`the IV is not ${AES_GCM_IV_BYTES} bytes`);
  try {
    const decipher = createDecipheriv('aes-256-gcm', key, sealed.iv, { authTagLength: AES_GCM_TAG_BYTES });
    decipher.setAAD(associatedData);
    decipher.setAuthTag(sealed.tag);
    return Buffer.concat([decipher.update(sealed.ciphertext), decipher.final()]);
  } catch {
    // wrong key (or not a 32-byte one), tampered data, or sealed with other associated data
    throw new AesGcmOpenError('authentication failed');
  }
}
