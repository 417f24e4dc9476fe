import type { TenantTx } from '../../platform/database/database.service.js';
import { apiKeyRepository } from './api-key.repository.js';

/** `api_key:<key id>`, how actorOf names an API key in created_by, actor_id and the audit rows. */
const KEY_ACTOR = /^api_key:([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/**
 * The people behind an organization's actors (a user id, `service:<name>` or `api_key:<key id>`), for the four-eyes
 * rules ("you may not approve what you wrote"): an API key acts for the person who created it
 * (core.api_keys.created_by), so what a key wrote is its creator's, and a key's act its creator's, both ways.
 * A key whose creator cannot be named (created_by NULL: the creator was deleted, and the key revoked with them) stands
 * for nobody but itself: no one who can still sign in made it, so it blocks no approver (refusing would leave its
 * documents unapprovable for good). Read in the tenant transaction (core.api_key_creators, which an accountant may call
 * as well as an owner or admin).
 */
export class ActingPeople {
  private constructor(private readonly keyCreators: ReadonlyMap<string, string | null>) {}

  /** Looks up the creators of the keys among `actors` (one query; none when no key is among them). */
  static async of(tx: TenantTx, actors: readonly (string | null | undefined)[]): Promise<ActingPeople> {
    const keyIds = [...new Set(actors.map((a) => (a ? KEY_ACTOR.exec(a)?.[1]?.toLowerCase() : undefined)).filter((k): k is string => !!k))];
    const rows = await apiKeyRepository.creatorsOf(tx.db, keyIds);
    return new ActingPeople(new Map(rows.map((r) => [r.keyId.toLowerCase(), r.createdBy])));
  }

  /** The person behind `actor`: a user (or service) itself, a key's creator; null when none can be named. */
  personOf(actor: string | null | undefined): string | null {
    if (!actor) return null;
    const key = KEY_ACTOR.exec(actor)?.[1];
    return key === undefined ? actor : (this.keyCreators.get(key.toLowerCase()) ?? null);
  }

  /** Whether `a` and `b` are one actor, or two (a person and their key, two keys of one person) with one person behind. */
  same(a: string | null | undefined, b: string | null | undefined): boolean {
    if (!a || !b) return false;
    if (a === b) return true;
    const person = this.personOf(a);
    return person !== null && person === this.personOf(b);
  }

  /** How `actor` acted, for a message: '' for the person themselves, ' through the API key <id>' for their key. */
  static through(actor: string | null | undefined): string {
    const key = actor ? KEY_ACTOR.exec(actor)?.[1] : undefined;
    return key ? ` (through the API key ${key})` : '';
  }
}
