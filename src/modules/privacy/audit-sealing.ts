import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { Logger } from '@nestjs/common';
import { openAesGcm, sealAesGcm } from '../../platform/crypto/aes-gcm.js';
import type { Db } from '../../platform/database/database.service.js';
import type { SecretBox } from '../integrations/secret-box.js';
import { personalDataKeyRepository } from './personal-data-key.repository.js';

/**
 * Crypto-shredding of the audit trail. The audit log is append-only, yet its before/after snapshots carry personal
 * data (`user.registered` holds the e-mail). The personal fields of a snapshot are sealed (AES-256-GCM) with the key
 * of the person the entry is about (core.personal_data_keys, one per person, wrapped by the secret box); an erasure
 * deletes that key and the fields then read as `"[erased]"`. No audit row is ever updated.
 *
 * A sealed snapshot keeps its other fields in the clear and carries `"$sealed": { k, iv, ct, tag, fields }`.
 */

/** Whose personal data a snapshot carries: the subject of a key. */
export type Subject = `${'user' | 'vendor' | 'customer' | 'email'}:${string}`;

export const userSubject = (userId: string): Subject => `user:${userId}`;
/**
 * An e-mail address that may belong to no user yet (an invitee): named by its hash, never in the clear. The address as
 * stored, not re-normalized: the app stores NFC (platform/http/email.ts) and migration 20270211000700 moved the keys of
 * the addresses it normalized to their NFC subject; an account it left decomposed (an NFC/NFD pair, reported) keeps its
 * own key, which hashing its NFC form here would make the other account's (review r8).
 */
export const emailSubject = (email: string): Subject => `email:${createHash('sha256').update(email.trim().toLowerCase()).digest('hex')}`;
/**
 * A natural-person party of an organization (a vendor, a customer): its id is unique only within the organization, so
 * the subject names both (core.shred_party_key deletes the key of the caller's organization only).
 */
export const partySubject = (party: 'vendor' | 'customer', orgId: string, partyId: string): Subject =>
  `${party}:${orgId.toLowerCase()}:${partyId.toLowerCase()}`;

interface EntryFacts {
  /** the organization whose audit log the entry is in */
  orgId: string;
  entityType: string;
  entityId: string | null;
  /** the acting user, when a person acted */
  actorUserId: string | null;
}

interface PersonalSnapshot {
  /** whose data the snapshot carries; undefined: nobody's in particular (nothing is sealed) */
  subject: (e: EntryFacts, snapshot: Record<string, unknown>) => Subject | undefined;
  /** the top-level fields that hold it (any JSON value: a list of addresses is sealed whole) */
  fields: readonly string[];
}

const PARTY_FIELDS = ['name', 'contactPerson', 'email', 'phone', 'taxId', 'billingAddress'] as const;
const byEntityUser = (e: EntryFacts) => (e.entityId ? userSubject(e.entityId) : undefined);
const byActor = (e: EntryFacts) => (e.actorUserId ? userSubject(e.actorUserId) : undefined);

/**
 * The audited entity types whose snapshots carry a person's data (declared with the personal-data catalog: the
 * same people, in the shape the services audit them). An entry of another type is written as it is.
 */
export const AUDITED_PERSONAL_DATA: Record<string, PersonalSnapshot> = {
  // emails: the addresses of the identities a user removed (auth.identity_unlinked)
  user: { subject: byEntityUser, fields: ['email', 'name', 'image', 'newEmail', 'oldEmail', 'emails'] },
  membership: { subject: byEntityUser, fields: ['email', 'name', 'image'] },
  invitation: { subject: (_e, s) => (typeof s.email === 'string' ? emailSubject(s.email) : undefined), fields: ['email'] },
  integration: { subject: byActor, fields: ['externalEmail', 'externalUsername'] },
  // the acting user's own provider page: its slug, and settings (WhatsApp number and message, CalDAV calendar URLs)
  provider: { subject: byActor, fields: ['publicSlug', 'settings'] },
  // a personal organization is named after its person at registration (a business one is nobody's in particular)
  organization: {
    subject: (_e, s) => (s.accountType === 'personal' && typeof s.ownerUserId === 'string' ? userSubject(s.ownerUserId) : undefined),
    fields: ['name', 'domain'],
  },
  vendor: { subject: (e) => (e.entityId ? partySubject('vendor', e.orgId, e.entityId) : undefined), fields: PARTY_FIELDS },
  customer: { subject: (e) => (e.entityId ? partySubject('customer', e.orgId, e.entityId) : undefined), fields: PARTY_FIELDS },
};

/** What a sealed field reads as once its person's key is gone. */
export const ERASED = '[erased]';
/** What an export shows for a sealed field of another person than the one exported. */
export const WITHHELD = '[withheld: another person\'s data]';

interface SealedPart {
  k: string;
  iv: string;
  ct: string;
  tag: string;
  fields: string[];
}

const isSealedPart = (v: unknown): v is SealedPart => {
  const s = v as SealedPart;
  return !!s && typeof s === 'object' && typeof s.k === 'string' && typeof s.ct === 'string' && Array.isArray(s.fields);
};

const aad = (keyId: string, orgId: string, e: { entityType: string; entityId: string | null }) =>
  Buffer.from(`omnizen.audit_seal.v1:${keyId}:${orgId}:${e.entityType}:${e.entityId ?? ''}`, 'utf8');

/** An unwrapped key of the table. */
export interface OpenKey {
  id: string;
  subject: string;
  key: Buffer;
}

/**
 * Seals and opens audit snapshots. Keys are wrapped with the secret box (SECRETS_KEYS); without a configured box
 * (development) they are stored unwrapped, which still allows crypto-shredding but not protection at rest: a
 * warning says so at boot (docs/privacy.md).
 */
export class AuditSealer {
  private readonly logger = new Logger(AuditSealer.name);

  constructor(private readonly box: SecretBox | undefined) {
    if (!box?.configured) this.logger.warn('SECRETS_KEYS is not set: per-person audit keys are stored unwrapped (crypto-shredding still works)');
  }

  /** Seals the personal fields of `before`/`after`; answers them unchanged when the entry carries none. */
  async seal<T>(db: Db, orgId: string, e: Omit<EntryFacts, 'orgId'>, snapshot: T): Promise<T> {
    const decl = AUDITED_PERSONAL_DATA[e.entityType];
    if (!decl || !snapshot || typeof snapshot !== 'object' || Array.isArray(snapshot)) return snapshot;
    const record = snapshot as Record<string, unknown>;
    const fields = decl.fields.filter((f) => record[f] !== undefined && record[f] !== null);
    if (!fields.length) return snapshot;
    const subject = decl.subject({ ...e, orgId }, record);
    if (!subject) return snapshot;
    const rest = Object.fromEntries(Object.entries(record).filter(([k]) => !fields.includes(k)));
    const key = await this.keyFor(db, subject);
    // the person's erasure is recorded (a change that read their data before it committed audits after it): nothing to
    // seal it with, and no new key that would keep it readable; the fields read as those of an erased key do
    if (!key) return { ...rest, ...Object.fromEntries(fields.map((f) => [f, ERASED])) } as T;
    const plain = Object.fromEntries(fields.map((f) => [f, record[f]]));
    const { iv, ciphertext, tag } = sealAesGcm(key.key, JSON.stringify(plain), aad(key.id, orgId, e));
    const sealed: SealedPart = { k: key.id, iv: iv.toString('base64'), ct: ciphertext.toString('base64'), tag: tag.toString('base64'), fields };
    return { ...rest, $sealed: sealed } as T;
  }

  /** The key ids that the snapshots of these entries were sealed with. */
  keyIds(snapshots: unknown[]): string[] {
    const ids = new Set<string>();
    for (const s of snapshots) {
      const part = s && typeof s === 'object' ? (s as Record<string, unknown>).$sealed : undefined;
      if (isSealedPart(part)) ids.add(part.k);
    }
    return [...ids];
  }

  /** The keys of these ids that still exist, unwrapped. */
  async openKeys(db: Db, ids: string[]): Promise<Map<string, OpenKey>> {
    if (!ids.length) return new Map();
    const rows = await personalDataKeyRepository.byId(db, ids);
    return new Map(rows.map((r) => [r.id, { id: r.id, subject: r.subject, key: this.unwrap(r.id, r.wrapped) }]));
  }

  /**
   * A snapshot as it reads: sealed fields opened with their key, `"[erased]"` when the key is gone, or `withheld`
   * when `allow` refuses the key's subject (an export shows only its own person's data).
   */
  open(snapshot: unknown, orgId: string, e: { entityType: string; entityId: string | null }, keys: Map<string, OpenKey>,
    allow: (subject: string) => boolean = () => true): unknown {
    if (!snapshot || typeof snapshot !== 'object' || Array.isArray(snapshot)) return snapshot;
    const { $sealed: part, ...rest } = snapshot as Record<string, unknown>;
    if (!isSealedPart(part)) return snapshot;
    const key = keys.get(part.k);
    const mark = (value: string) => Object.fromEntries(part.fields.map((f) => [f, value]));
    if (!key) return { ...rest, ...mark(ERASED) };
    if (!allow(key.subject)) return { ...rest, ...mark(WITHHELD) };
    try {
      // only the whole 16-byte tag opens (openAesGcm checks it: GCM alone checks as many bytes as it is given)
      const opened = openAesGcm(key.key, {
        iv: Buffer.from(part.iv, 'base64'), ciphertext: Buffer.from(part.ct, 'base64'), tag: Buffer.from(part.tag, 'base64'),
      }, aad(part.k, orgId, e));
      const plain = JSON.parse(opened.toString('utf8'));
      return { ...rest, ...plain };
    } catch {
      // a cut tag, tampered, or copied to another entry: it does not open
      return { ...rest, ...mark(ERASED) };
    }
  }

  /** The subject's key (made on first use); undefined once the subject is erased. */
  private async keyFor(db: Db, subject: Subject): Promise<OpenKey | undefined> {
    const fresh = randomBytes(32);
    const candidateId = randomUUID();
    const row = await personalDataKeyRepository.getOrCreate(db, candidateId, subject, this.wrap(candidateId, fresh));
    return row && { id: row.id, subject, key: this.unwrap(row.id, row.wrapped) };
  }

  /** A stored key wrapped again under the box's active key (npm run secrets:rotate); the key itself is unchanged. Throws SecretOpenError when no configured key opens it. */
  rewrap(keyId: string, wrapped: unknown): unknown {
    return this.wrap(keyId, this.unwrap(keyId, wrapped));
  }

  private wrap(keyId: string, key: Buffer): unknown {
    return this.box?.configured ? this.box.sealFor(key.toString('base64'), `personal_data_key:${keyId}`) : { unwrapped: key.toString('base64') };
  }

  private unwrap(keyId: string, wrapped: unknown): Buffer {
    const w = wrapped as { unwrapped?: string };
    if (typeof w?.unwrapped === 'string') return Buffer.from(w.unwrapped, 'base64');
    if (!this.box) throw new Error('a personal data key is wrapped but no secret box is configured (SECRETS_KEYS)');
    return Buffer.from(this.box.openFor<string>(wrapped, `personal_data_key:${keyId}`), 'base64');
  }
}
