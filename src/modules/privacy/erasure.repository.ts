import type { Selectable } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import type { DB } from '../../platform/database/query-builder.js';
import type { RunDto } from '../agents/agents.dto.js';
import { toRun } from '../agents/agents.repository.js';
import { emailSubject } from './audit-sealing.js';
import { PERSONAL_DATA_CATALOG, partyTable, type PersonalDataTable, type Treatment } from './personal-data.catalog.js';
import { batchOf, inBatches, PURGE_BATCH } from '../../platform/database/batches.js';
import { normalizeEmail } from '../../platform/http/email.js';
import { UUID } from '../../platform/http/uuid.js';
import { randomUUID } from 'node:crypto';

export interface MembershipFacts {
  orgId: string;
  role: string;
  accountType: 'personal' | 'business';
  owners: number;
  members: number;
}

const quote = (column: string) => `"${column.replace(/"/g, '""')}"`;

const regexLiteral = (text: string) => text.replace(/[.\\^$|?*+()[\]{}]/g, (c) => `\\${c}`);

/**
 * A PostgreSQL regular expression (matched with ~*, case-insensitively) for any of `emails` as a whole address in a
 * text: not inside a longer one (m@x.test is not in tom@x.test, nor in m@x.test.au), yet followed by a full stop that
 * ends a sentence.
 */
export function wholeAddressPattern(emails: string[]): string {
  const literals = emails.map(regexLiteral);
  return `(?<![a-z0-9._%+-])(?:${literals.join('|')})(?![a-z0-9_%+-]|\\.[a-z0-9_%+-])`;
}

/**
 * What a value scan looks for: any of `emails` as a whole address, or `userId` as the value of a `userId` key (an event
 * about the person: a sign-in from a new device, member.* about them). Not their id as another key's value (invitedBy,
 * approvedBy, startedBy: the organization's events where they acted, kept as its books keep created_by); undefined when
 * there is nothing to look for.
 */
export function valueScanPattern(emails: string[], userId?: string): string | undefined {
  const parts = [...(emails.length ? [wholeAddressPattern(emails)] : []), ...(userId ? [`"userId": ?"${regexLiteral(userId)}"`] : [])];
  return parts.length ? parts.join('|') : undefined;
}

/**
 * The organizations that go with the person (of `memberships`, erasureRepository.memberships): their personal one, and
 * the business ones nobody else belongs to. The erasure deletes them (and their rows the catalog locates by
 * `erased-org`); the person's export holds those rows beforehand.
 */
export function organizationsErasedWith(memberships: MembershipFacts[]): string[] {
  return memberships.filter((m) => m.accountType === 'personal' || m.members === 1).map((m) => m.orgId);
}

/**
 * The statements of a person's erasure, on the privileged path privacy.erasure. The catalog-driven part builds
 * its SQL from the identifiers declared in personal-data.catalog.ts (code constants, never input); values are
 * always bound parameters.
 */
export const erasureRepository = {
  /** The person's row, locked against a concurrent erasure or sign-in change. */
  async lockUser(db: Db, userId: string): Promise<{ email: string; passwordHash: string | null } | undefined> {
    const [row] = await db.$queryRaw<{ email: string; password_hash: string | null }[]>`
      SELECT u.email, c.password_hash FROM core."User" u LEFT JOIN core.user_credentials c ON c.user_id = u.id
      WHERE u.id = ${userId} FOR UPDATE OF u`;
    return row && { email: row.email, passwordHash: row.password_hash };
  },

  /**
   * When the person signed in to start this session (password or token exchange; on the app's clock, see
   * sessionRepository.create). A refresh keeps the session, so this is their last proof of a credential, unlike a
   * refreshed access token's iat. Undefined: not their session.
   */
  async signedInAt(db: Db, sessionId: string, userId: string): Promise<Date | undefined> {
    const [row] = await db.$queryRaw<{ created_at: Date }[]>`
      SELECT created_at FROM core.sessions WHERE id = ${sessionId}::uuid AND user_id = ${userId}`;
    return row?.created_at;
  },

  /**
   * Locks, in one order, the rows the erasure ends or deletes that a request locks before it seals its audit entry under
   * the person's key: their memberships (a role change, a removal), then the invitations to their proven addresses (a
   * revoke). Taken before the keys are shredded: such a request commits first, under the still-live key (its entry then
   * reads [erased]); once the key's deletion was uncommitted it waited for the erasure, which waited for its row (40P01).
   */
  async lockRowsOf(db: Db, userId: string, emails: string[]): Promise<void> {
    await db.$queryRaw`SELECT 1 FROM core.memberships WHERE user_id = ${userId} ORDER BY org_id FOR UPDATE`;
    if (emails.length) await db.$queryRaw`SELECT 1 FROM core.invitations WHERE lower(email) = ANY(${emails}::text[]) ORDER BY org_id, id FOR UPDATE`;
  },

  /** Every live organization the person belongs to, with its owner and member counts. */
  async memberships(db: Db, userId: string): Promise<MembershipFacts[]> {
    const rows = await db.$queryRaw<{ org_id: string; role: string; account_type: 'personal' | 'business'; owners: number; members: number }[]>`
      SELECT m.org_id, m.role, o.account_type,
             (SELECT count(*)::int FROM core.memberships x WHERE x.org_id = m.org_id AND x.role = 'owner') AS owners,
             (SELECT count(*)::int FROM core.memberships x WHERE x.org_id = m.org_id) AS members
      FROM core.memberships m JOIN core.organizations o ON o.id = m.org_id AND o.deleted_at IS NULL
      WHERE m.user_id = ${userId}
      ORDER BY m.org_id`;
    return rows.map((r) => ({ orgId: r.org_id, role: r.role, accountType: r.account_type, owners: r.owners, members: r.members }));
  },

  /**
   * The e-mail addresses the person has proven to be theirs: the subjects of their keys, and what erasure and export
   * locate their rows by (invitations, e-mails, jobs naming the address). An address merely typed in (an unverified
   * registration, an e-mail change never confirmed) is not one: it may be another person's, whose rows and audit keys
   * must not go. Proven: a verified identity's e-mail (the account's current one when verified), the new address of a
   * confirmed change, and its old address when an identity had verified it at the confirmation (old_email_verified: the
   * change moved the password identity's proof to the new address; an unverified account may confirm a change too).
   * None of them that is another account's address now (core.email_of_another_account: normalizeEmail's key, in SQL) is one
   * (reviews rf1, rB): that account's invitations, mails and key are its own. A link stored such an address verified until
   * 20270211001000 (this erasure took them, the export read them), an address an identity verified may become another
   * account's later (a registration, an e-mail change), and so may a confirmed change's addresses: kept forever, the old
   * one free for anyone to register once changed away from. The check runs once per distinct address: the union is
   * materialized first (review rF: a filter on it is pushed into each branch, once per row: 875 ms against 24 ms for 10k
   * confirmed changes). Each as the app writes it, by the app's own normalizer (review rv6), not SQL's lower(): a Hub-stored
   * `ΟΔΥΣΣΕΑΣ@x`, which a mailed link copies into the password identity as it is (core.prove_user_email), is `οδυσσεας@x`
   * to normalizeEmail and `οδυσσεασ@x`, another person's, to the C library's lower() (every Σ a σ); and lower() left a
   * decomposed `ZOE\u0308@x` decomposed, where the app's invitations and key subjects hold `zoë@x` in NFC. So a stored address
   * gives its normalizeEmail form and its form lower-cased as stored (trimmed, JavaScript's toLowerCase(): emailSubject's),
   * which differ only when it is not in NFC: the rows migration 20270211000700 left decomposed (a reported pair's
   * decomposed account's invitations and key, review rn) are found by that one. Each form is checked again: a form that
   * is another account's is not the person's (the decomposed account of a pair: its NFC form is the kept account's
   * address; a Hub-stored ΟΔΥΣΣΕΑΣ@ when another account has οδυσσεασ@: its ς form has that account's key). Distinct, sorted.
   */
  async provenEmails(db: Db, userId: string): Promise<string[]> {
    const stored = await db.$queryRaw<{ email: string }[]>`
      WITH x(email) AS MATERIALIZED (
        SELECT email FROM core.user_identities WHERE user_id = ${userId} AND email_verified_at IS NOT NULL
        UNION SELECT new_email FROM core.email_change_requests WHERE user_id = ${userId} AND confirmed_at IS NOT NULL
        UNION SELECT old_email FROM core.email_change_requests WHERE user_id = ${userId} AND old_email_verified)
      SELECT x.email FROM x WHERE NOT core.email_of_another_account(${userId}, x.email)`;
    const forms = [...new Set(stored.flatMap((r) => [normalizeEmail(r.email), r.email.trim().toLowerCase()]))];
    if (!forms.length) return [];
    const rows = await db.$queryRaw<{ email: string }[]>`
      SELECT f.email FROM unnest(${forms}::text[]) AS f(email) WHERE NOT core.email_of_another_account(${userId}, f.email)`;
    return rows.map((r) => r.email).sort();
  },

  /**
   * The organizations the person is or was in (LocatedPerson.orgIds: the erasure's bound of tables with an orgColumn): those
   * they belong to (deleted ones too), those they left or were removed from (the audit entries about their membership),
   * those they acted in (the entries with them as actor: a membership deleted outside the API leaves no entry about it, but
   * what they did there does; audit_logs_actor_idx, the entries their export reads anyway), and those that invited one of
   * their proven addresses (`emails`: its invitation, or the audit entries sealed with its key, which outlive a purged
   * invitation). Before the erasure ends their memberships, deletes the invitations and shreds the keys. Each lookup has
   * an index (the invitations' on lower(email): invitations_email_idx, migration 20270211000300).
   */
  async organizationsOf(db: Db, userId: string, emails: string[]): Promise<string[]> {
    const subjects = emails.map(emailSubject);
    const rows = await db.$queryRaw<{ org_id: string }[]>`
      SELECT org_id FROM core.memberships WHERE user_id = ${userId}
      UNION SELECT org_id FROM core.audit_logs WHERE entity_type IN ('user', 'membership') AND entity_id = ${userId}
      UNION SELECT org_id FROM core.audit_logs WHERE actor_id = ${userId}
      UNION SELECT org_id FROM core.invitations WHERE lower(email) = ANY(${emails}::text[])
      UNION SELECT org_id FROM core.audit_logs WHERE entity_type = 'invitation'
        AND coalesce(after->'$sealed'->>'k', before->'$sealed'->>'k') = ANY(ARRAY(SELECT k.id::text FROM core.personal_data_keys k WHERE k.subject = ANY(${subjects}::text[])))
      ORDER BY 1`;
    return rows.map((r) => r.org_id);
  },

  /**
   * Cancels the AI runs of the person (the catalog's ai.runs: those they started, those naming them) still running or
   * waiting for their job, as the API's cancel does (cancelled, by a person; RunsService.cancel), at `now`: their executions
   * stop at their next step, and a call in flight adds only its step, without content (its run's input, '{}' once the
   * erasure commits, marks it erased). Every run of theirs is locked first, finished ones too: a late call of one waits
   * for the erasure to commit, then stores no content; one that committed before is in the erasure's statements' snapshot.
   * Called after the organizations the erasure deletes had their runs stopped (cancelRunsOfDeletedOrganization, which
   * needs their mid-call marks): their runs are no longer running here. Answers the runs cancelled, as stored, with their
   * organization, whether a call of theirs was in flight (the cancel then leaves the run's event to its execution) and
   * whether their organization is deleted (orgDeleted: before). A deleted organization gets no event: the caller emits none, and
   * its run owes none (its mark is cleared, so the sweep of owed events, agents.cancel_events, emits none either;
   * its execution can open no transaction there any more).
   */
  async cancelRuns(db: Db, person: LocatedPerson, now: Date): Promise<CancelledRun[]> {
    const t = PERSONAL_DATA_CATALOG.find((x) => x.table === 'ai.runs')!;
    // the person's: the runs of the organizations that go were their deletion's to stop (cancelRunsOfDeletedOrganization:
    // audited as the deletion's, before this), before applyCatalog takes their content
    const where = locate({ ...t, alsoErasedBy: t.alsoErasedBy?.filter((l) => l.kind !== 'erased-org') }, person)!;
    const locked = await db.$queryRawUnsafe<{ org_id: string; id: string; status: string }[]>(
      `SELECT x.org_id, x.id, x.status FROM ai.runs x WHERE ${where.sql} ORDER BY x.org_id, x.id FOR UPDATE`, ...where.values);
    return cancelLockedRuns(db, locked, now);
  },

  /**
   * Publishes the request's id to what the database audits by itself in this transaction (omnizen.request_id, local):
   * the api_key.revoked rows of the keys whose creator's memberships the erasure ends (core.revoke_api_keys_of_creator,
   * migration 20270210300100). No IP: the erasure records none.
   */
  async publishRequestId(db: Db, requestId: string): Promise<void> {
    await db.$executeRaw`SELECT set_config('omnizen.request_id', ${requestId}, true)`;
  },

  async revokeSessions(db: Db, userId: string): Promise<number> {
    const n = await db.$executeRaw`UPDATE core.sessions SET revoked_at = now(), revoked_reason = 'erased' WHERE user_id = ${userId} AND revoked_at IS NULL`;
    await db.$executeRaw`DELETE FROM core.refresh_tokens WHERE user_id = ${userId}`;
    return n;
  },

  /** Soft-deletes organizations (deleted_at): their books stay, nobody can act in them. */
  async deleteOrganizations(db: Db, orgIds: string[]): Promise<void> {
    if (orgIds.length) await db.$executeRaw`UPDATE core.organizations SET deleted_at = now() WHERE id = ANY(${orgIds}::uuid[]) AND deleted_at IS NULL`;
  },

  async endMemberships(db: Db, userId: string, orgIds: string[]): Promise<void> {
    if (orgIds.length) await db.$executeRaw`DELETE FROM core.memberships WHERE user_id = ${userId} AND org_id = ANY(${orgIds}::uuid[])`;
  },

  /**
   * The invitation mails the person sent (of invitations still on record) name them: the name, or their e-mail when
   * they had none, is cleared from the mail's data (data.inviterName null: the mail reads "You are invited"). The mail
   * stays, it is the invitee's; a queued one still goes. Before applyCatalog: the value scan would otherwise delete
   * one naming the inviter's address. An invitation deleted since (expired and replaced, or purged) is not found: its
   * mail keeps the name until the retention job purges it (30 days after sending).
   */
  async clearInviterNames(db: Db, userId: string): Promise<number> {
    return db.$executeRaw`UPDATE core.email_deliveries d SET data = jsonb_set(d.data, '{inviterName}', 'null'::jsonb)
      WHERE d.template = 'invitation' AND d.data->>'inviterName' IS NOT NULL
        AND EXISTS (SELECT 1 FROM core.invitations i WHERE i.org_id = d.org_id AND i.id::text = d.data->>'invitationId' AND i.invited_by = ${userId})`;
  },

  /**
   * The ids of the person's analytics events (the catalog's core.analytics_events rows: theirs, and those of their
   * organizations naming one of their addresses) that PostHogForwarder sent under an organization's id for someone its app
   * named, not for them: a visitor's anonymous id (an event with no user id), or an app's user id naming one of their
   * addresses (`mailto:<e-mail>`: matched as the value scan matches). Read before applyCatalog clears them: the erasure's
   * PostHog deletion names them (distinctIdsOfPerson). An event stored under another user's id is that person's.
   */
  async analyticsIdsNaming(db: Db, person: LocatedPerson): Promise<{ orgId: string; userId: string | null; anonymousId: string | null }[]> {
    const where = locate(PERSONAL_DATA_CATALOG.find((x) => x.table === 'core.analytics_events')!, person);
    if (!where) return [];
    const values = [...where.values];
    const addresses = valueScanPattern(person.emails);
    const naming = addresses ? ` OR x.user_id ~* $${values.push(addresses)}` : '';
    const rows = await db.$queryRawUnsafe<{ org_id: string; user_id: string | null; anonymous_id: string | null }[]>(
      `SELECT DISTINCT x.org_id::text AS org_id, x.user_id, x.anonymous_id FROM core.analytics_events x
       WHERE (${where.sql}) AND ((x.user_id IS NULL AND x.anonymous_id IS NOT NULL)${naming})
       ORDER BY 1, 2, 3`, ...values);
    return rows.map((r) => ({ orgId: r.org_id, userId: r.user_id, anonymousId: r.anonymous_id }));
  },

  /**
   * The person's walk of their analytics events (core.erasure_prepasses), locked until the transaction ends: a batch of it
   * and the erasure's transaction (which deletes it) one after the other, its position never going back. Undefined: none.
   */
  async analyticsWalk(db: Db, userId: string): Promise<AnalyticsWalk | undefined> {
    const [row] = await db.$queryRawUnsafe<WalkRow[]>(`SELECT ${WALK_COLUMNS} FROM core.erasure_prepasses WHERE user_id = $1 FOR UPDATE`, userId);
    return row && toWalk(row);
  },

  /**
   * Begins the person's walk of the analytics events of `orgIds` for `emails` with a fresh pseudonym, unless an erasure of
   * theirs began one before that still covers them (walkCovers: a retry resumes it, its start and pseudonym stay); one
   * that does not is started over (restartAnalyticsWalk). Answers it, locked.
   */
  async startAnalyticsWalk(db: Db, userId: string, orgIds: string[], emails: string[], occurredFrom: Date): Promise<AnalyticsWalk> {
    await db.$executeRaw`INSERT INTO core.erasure_prepasses (user_id, pseudonym, occurred_from, org_ids, emails)
      VALUES (${userId}, ${`erased-${randomUUID()}`}, ${occurredFrom}, ${[...orgIds].sort()}::uuid[], ${[...emails].sort()}::text[])
      ON CONFLICT (user_id) DO NOTHING`;
    const walk = (await this.analyticsWalk(db, userId))!;
    return walkCovers(walk, orgIds, emails) ? walk : this.restartAnalyticsWalk(db, userId, orgIds, emails, occurredFrom);
  },

  /**
   * Starts the person's walk over from the first event, now, for `orgIds` and `emails` (begins one if there is none): the
   * pseudonym stays (one erased person stays one user in the distinct counts) and so do the PostHog ids found so far (the
   * events they came from are cleared already). Answers it, locked.
   */
  async restartAnalyticsWalk(db: Db, userId: string, orgIds: string[], emails: string[], occurredFrom: Date): Promise<AnalyticsWalk> {
    const [row] = await db.$queryRawUnsafe<WalkRow[]>(
      `INSERT INTO core.erasure_prepasses (user_id, pseudonym, occurred_from, org_ids, emails) VALUES ($1, $2, $3, $4::uuid[], $5::text[])
       ON CONFLICT (user_id) DO UPDATE SET started_at = now(), occurred_from = EXCLUDED.occurred_from, org_ids = EXCLUDED.org_ids,
         emails = EXCLUDED.emails, cursor_org = NULL, cursor_at = NULL, cursor_id = NULL, done = false
       RETURNING ${WALK_COLUMNS}`, userId, `erased-${randomUUID()}`, occurredFrom, [...orgIds].sort(), [...emails].sort());
    return toWalk(row);
  },

  /**
   * One batch of the walk (in the caller's transaction, after analyticsWalk locked it): the next `batch` events of its
   * organization in primary-key order (org_id, occurred_at, id: an index range, whatever the partitions), of which the
   * person's (the catalog's condition, its value scan included) get the catalog's treatment, their PostHog ids kept in the
   * walk first (analyticsIdsNaming's); then the walk's position moves past them, to the next organization when this one is
   * done, and the walk is done after the last. Each statement reads at most `batch` events: bounded however many the
   * organizations have. Answers the walk as it now is, and how many events changed.
   */
  async eraseAnalyticsBatch(db: Db, person: LocatedPerson, walk: AnalyticsWalk, batch: number): Promise<{ walk: AnalyticsWalk; changed: number }> {
    if (walk.done || !walk.orgIds.length) return { walk: await this.finishWalk(db, person.userId, walk, null, []), changed: 0 };
    const org = walk.cursor?.org ?? walk.orgIds[0];
    // after the position (at null: from the organization's first event)
    const from = walk.cursor ?? { org, at: null, id: null };
    // where this batch ends: the batch-th event after the position (an index-only range), or the organization's end
    const [end] = await db.$queryRaw<{ occurred_at: Date; id: string }[]>`
      SELECT occurred_at, id::text AS id FROM core.analytics_events
      WHERE org_id = ${org}::uuid AND (occurred_at, id) > (coalesce(${from.at}::timestamptz, '-infinity'), coalesce(${from.id}::uuid, ${NIL_UUID}::uuid))
      ORDER BY occurred_at, id OFFSET ${batch - 1}::int LIMIT 1`;
    const t = PERSONAL_DATA_CATALOG.find((x) => x.table === ANALYTICS_EVENTS)!;
    const where = locate(t, { ...person, analyticsWalked: undefined })!;
    const values = [...where.values];
    const param = (v: unknown) => `$${values.push(v)}`;
    // (the bounds on occurred_at alone too: the partitions outside them pruned)
    const after = `coalesce(${param(from.at)}::timestamptz, '-infinity')`;
    const until = end && param(end.occurred_at);
    const window = `x.org_id = ${param(org)}::uuid AND x.occurred_at >= ${after} AND (x.occurred_at, x.id) > (${after}, coalesce(${param(from.id)}::uuid, ${param(NIL_UUID)}::uuid))${
      until ? ` AND x.occurred_at <= ${until}::timestamptz AND (x.occurred_at, x.id) <= (${until}::timestamptz, ${param(end.id)}::uuid)` : ''}`;
    const sets = setsOf(t, person, values);
    const addresses = valueScanPattern(person.emails);
    const naming = addresses ? ` OR h.u ~* ${param(addresses)}` : '';
    // one scan of the window: the rows found (their ids as they were) are then updated by primary key, and their PostHog
    // ids read from the same rows (analyticsIdsNaming's, before the treatment clears them)
    const [r] = await db.$queryRawUnsafe<{ changed: number; named: AppEventIds[] }[]>(
      `WITH h AS MATERIALIZED (
         SELECT x.org_id AS o, x.occurred_at AS a, x.id AS i, x.user_id AS u, x.anonymous_id AS n FROM ${ANALYTICS_EVENTS} x
         WHERE ${window} AND (${where.sql})),
       d AS (UPDATE ${ANALYTICS_EVENTS} x SET ${sets} FROM h WHERE x.org_id = h.o AND x.occurred_at = h.a AND x.id = h.i RETURNING 1)
       SELECT (SELECT count(*)::int FROM d) AS changed,
         coalesce((SELECT jsonb_agg(DISTINCT jsonb_build_object('orgId', h.o::text, 'userId', h.u, 'anonymousId', h.n))
           FROM h WHERE (h.u IS NULL AND h.n IS NOT NULL)${naming}), '[]'::jsonb) AS named`, ...values);
    const following = walk.orgIds[walk.orgIds.indexOf(org) + 1];
    const next = end ? { org, at: end.occurred_at, id: end.id } : following === undefined ? null : { org: following, at: null, id: null };
    return { walk: await this.finishWalk(db, person.userId, walk, next, r.named), changed: r.changed };
  },

  /** Stores the walk's new position (null: done) and the PostHog ids a batch found. */
  async finishWalk(db: Db, userId: string, walk: AnalyticsWalk, next: AnalyticsWalk['cursor'], named: AppEventIds[]): Promise<AnalyticsWalk> {
    const [row] = await db.$queryRawUnsafe<WalkRow[]>(
      `UPDATE core.erasure_prepasses SET cursor_org = $2::uuid, cursor_at = $3::timestamptz, cursor_id = $4::uuid, done = $5,
         posthog_ids = (SELECT coalesce(jsonb_agg(DISTINCT e), '[]'::jsonb) FROM jsonb_array_elements(posthog_ids || $6::jsonb) e)
       WHERE user_id = $1
       RETURNING ${WALK_COLUMNS}`, userId, next?.org ?? null, next?.at ?? null, next?.id ?? null, next === null, JSON.stringify(named));
    return row ? toWalk(row) : { ...walk, cursor: next, done: next === null };
  },

  /**
   * Applies the catalog's treatment of every table that locates the person by user id, proven e-mail or personal
   * organization. Answers the rows changed by table, and the ids of the jobs deleted from core.outbox: their copies in the
   * jobs queue (Bull, which keeps a failed one for ever) go too once this commits.
   */
  async applyCatalog(db: Db, person: LocatedPerson): Promise<{ counts: Record<string, number>; deletedJobIds: string[] }> {
    const counts: Record<string, number> = {};
    const deletedJobIds: string[] = [];
    // rows reached through another table's first (a run's steps, before the run's content that finds it goes); the user
    // row last: the other tables may locate the person by the e-mail it still holds
    const rank = (t: PersonalDataTable) => (t.person.kind === 'through' ? 0 : t.table === 'core."User"' ? 2 : 1);
    const tables = [...PERSONAL_DATA_CATALOG].sort((a, b) => rank(a) - rank(b));
    for (const t of tables) {
      const treatments = Object.entries(t.columns) as [string, Treatment][];
      if (!treatments.some(([, tr]) => CHANGED.has(tr.kind))) continue;
      const where = locate(t, person);
      if (!where) continue;
      if (treatments.some(([, tr]) => tr.kind === 'delete-row')) {
        if (t.table === 'core.outbox') {
          const jobs = await db.$queryRawUnsafe<{ id: string }[]>(`DELETE FROM core.outbox x WHERE ${where.sql} RETURNING x.id::text AS id`, ...where.values);
          deletedJobIds.push(...jobs.map((j) => j.id));
          counts[t.table] = jobs.length;
          continue;
        }
        counts[t.table] = await db.$executeRawUnsafe(`DELETE FROM ${t.table} x WHERE ${where.sql}`, ...where.values);
        continue;
      }
      const values = [...where.values];
      counts[t.table] = await db.$executeRawUnsafe(`UPDATE ${t.table} x SET ${setsOf(t, person, values)} WHERE ${where.sql}`, ...values);
    }
    return { counts, deletedJobIds };
  },

  /** Blanks a party's contact fields and pseudonymizes its name, per the catalog; false when the party is not there (or not visible). */
  async eraseParty(db: Db, party: string, orgId: string, partyId: string): Promise<boolean> {
    const t = partyTable(party);
    if (!t) throw new Error(`no party table ${party} in the personal-data catalog`);
    const sets = (Object.entries(t.columns) as [string, Treatment][]).flatMap(([column, tr]) =>
      tr.kind === 'erase' ? [`${quote(column)} = NULL`] : tr.kind === 'pseudonymize' ? [`${quote(column)} = ${tr.sql}`] : []);
    const n = await db.$executeRawUnsafe(
      `UPDATE ${t.table} SET ${sets.join(', ')} WHERE ${quote(t.person.orgColumn)} = $1::uuid AND ${quote(t.person.idColumn)} = $2::uuid`, orgId, partyId);
    return n > 0;
  },

  /**
   * A party's erasure, on the privileged path privacy.erasure (the immutability triggers' exception for run content), once
   * the party's own erasure has committed (re-runnable: it finds what is left): the AI runs of the organization that name
   * the party's id (`partyId` lower case; a tool's result lists it with its name; the model's answer then quotes the name)
   * are locked, those still running cancelled as cancelRuns cancels a person's (their execution stops at its next step; a
   * call in flight waits for the lock, then finds the input '{}' and adds its step without content), and all lose their
   * content as a person's do: every step's detail '{}' and error message NULL, the run's input '{}', output and error
   * message NULL. Answers the runs cancelled (for their audit and event) and how many runs were blanked.
   */
  async blankRunsNamingParty(db: Db, orgId: string, partyId: string, now: Date): Promise<{ cancelled: CancelledRun[]; blanked: number }> {
    const runs = await db.$queryRaw<{ org_id: string; id: string; status: string }[]>`
      SELECT r.org_id, r.id, r.status FROM ai.runs r WHERE r.org_id = ${orgId}::uuid
        AND (strpos(lower(r.input::text || coalesce(r.output, '') || coalesce(r.error_message, '')), ${partyId}) > 0
          OR EXISTS (SELECT 1 FROM ai.run_steps s WHERE s.org_id = r.org_id AND s.run_id = r.id
            AND strpos(lower(s.detail::text || coalesce(s.error_message, '')), ${partyId}) > 0))
      ORDER BY r.id FOR UPDATE OF r`;
    if (!runs.length) return { cancelled: [], blanked: 0 };
    const cancelled = await cancelLockedRuns(db, runs, now);
    const ids = runs.map((r) => r.id);
    await db.$executeRaw`UPDATE ai.run_steps SET detail = '{}'::jsonb, error_message = NULL
      WHERE org_id = ${orgId}::uuid AND run_id = ANY(${ids}::uuid[]) AND (detail <> '{}'::jsonb OR error_message IS NOT NULL)`;
    await db.$executeRaw`UPDATE ai.runs SET input = '{}'::jsonb, output = NULL, error_message = NULL
      WHERE org_id = ${orgId}::uuid AND id = ANY(${ids}::uuid[]) AND (input <> '{}'::jsonb OR output IS NOT NULL OR error_message IS NOT NULL)`;
    return { cancelled, blanked: ids.length };
  },

  async partyName(db: Db, party: string, orgId: string, partyId: string): Promise<string> {
    const t = partyTable(party)!;
    const [row] = await db.$queryRawUnsafe<{ name: string }[]>(
      `SELECT name FROM ${t.table} WHERE ${quote(t.person.orgColumn)} = $1::uuid AND ${quote(t.person.idColumn)} = $2::uuid`, orgId, partyId);
    return row.name;
  },

  async eraseAuthUser(db: Db, userId: string, pseudonym: string): Promise<void> {
    await db.$executeRaw`SELECT core.erase_auth_user(${userId}::uuid, ${pseudonym})`;
  },
};

/** A run an erasure cancelled (cancelRuns, blankRunsNamingParty): as stored, with its organization and how to announce it. */
type CancelledRun = { orgId: string; run: RunDto; midCall: boolean; orgDeleted: boolean };

/**
 * Cancels those of `locked` (runs the caller locked FOR UPDATE) still running, as the API's cancel does (cancelRuns; a
 * party's erasure, blankRunsNamingParty): answers them as stored, with their organization, whether a call was in flight
 * and whether their organization is deleted (no event then: its mark is cleared).
 */
async function cancelLockedRuns(db: Db, locked: { org_id: string; id: string; status: string }[], now: Date): Promise<CancelledRun[]> {
  const running = locked.filter((r) => r.status === 'running');
  if (!running.length) return [];
  const rows = await db.$queryRaw<(Selectable<DB['ai.runs']> & { mid_call: boolean; org_deleted: boolean })[]>`
    WITH target AS (
      SELECT r.org_id, r.id, (o.deleted_at IS NOT NULL) AS org_deleted
      FROM unnest(${running.map((r) => r.org_id)}::uuid[], ${running.map((r) => r.id)}::uuid[]) AS r(org_id, id)
      JOIN core.organizations o ON o.id = r.org_id)
    UPDATE ai.runs x SET status = 'cancelled', stop_reason = 'cancelled', error_class = 'cancelled', error_message = 'cancelled by a person',
      finished_at = ${now}, latency_ms = greatest(0, round(extract(epoch FROM (${now}::timestamptz - x.started_at)) * 1000))::int, lease_until = NULL,
      call_in_flight_until = CASE WHEN t.org_deleted THEN NULL ELSE x.call_in_flight_until END
    FROM target t
    WHERE x.org_id = t.org_id AND x.id = t.id AND x.status = 'running'
    RETURNING x.*, coalesce(x.call_in_flight_until > ${now}::timestamptz, false) AS mid_call, t.org_deleted`;
  return rows.map(({ mid_call, org_deleted, ...r }) => ({ orgId: r.org_id, run: toRun(r), midCall: mid_call, orgDeleted: org_deleted }));
}

/** Whom erasure and export look for: the user id, and the e-mail addresses they have proven (erasureRepository.provenEmails). */
export interface LocatedPerson {
  userId: string;
  emails: string[];
  /**
   * the organizations they are or were in (erasureRepository.organizationsOf): the erasure's bound of tables with an
   * orgColumn, and of value scans with one (erasure and export)
   */
  orgIds?: string[];
  /** the organizations that go with them (organizationsErasedWith): what the `erased-org` locator finds; erasure and export give it */
  erasedOrgIds?: string[];
  /** the erasure's pseudonym (Treatment's `:pseudonym`: its walk's, AnalyticsWalk); none: a fresh one per statement */
  pseudonym?: string;
  /**
   * the analytics events its walk (eraseAnalyticsBatch) has done: of the organizations it walked, core.analytics_events'
   * value scan reads only the events received since it began, less RECEIVED_MARGIN_MS (an event of a transaction that
   * began before and committed after its batch had passed), and dated since `occurredFrom` (no event received since is
   * dated before: the other partitions pruned)
   */
  analyticsWalked?: { orgIds: string[]; receivedFrom: Date; occurredFrom: Date };
}

/** What a walk's batch, and analyticsIdsNaming, read of an event: the ids it went to PostHog under. */
export type AppEventIds = { orgId: string; userId: string | null; anonymousId: string | null };

/**
 * A person's erasure's walk of the analytics events of their organizations (core.erasure_prepasses): the organizations
 * (sorted), the position after the last event done (null: none yet, or done), when it began (the database's clock) and the
 * earliest date an event received since may have (the app's), the pseudonym and the PostHog ids found so far.
 */
export interface AnalyticsWalk {
  pseudonym: string;
  startedAt: Date;
  occurredFrom: Date;
  orgIds: string[];
  /** the proven addresses it searches for (sorted) */
  emails: string[];
  cursor: { org: string; at: Date | null; id: string | null } | null;
  done: boolean;
  posthogIds: AppEventIds[];
  /** it began more than WALK_FRESH_MS ago (the database's clock) */
  stale: boolean;
}

/**
 * How long before the walk began an event counts as received since: its received_at is its transaction's start, and a
 * transaction that began before the walk may commit after the batch of its event's position (a request's: seconds).
 */
export const RECEIVED_MARGIN_MS = 3_600_000;

const ANALYTICS_EVENTS = 'core.analytics_events';
const NIL_UUID = '00000000-0000-0000-0000-000000000000';

/**
 * How long after it began a walk still serves: the erasure's transaction scans every event received since (less
 * RECEIVED_MARGIN_MS), so one left by an erasure that failed long ago would have it scan months of events (past the
 * statement timeout, every retry). Older, the walk starts over (restartAnalyticsWalk).
 */
export const WALK_FRESH_MS = 3_600_000;

type WalkRow = {
  pseudonym: string; started_at: Date; occurred_from: Date; org_ids: string[]; emails: string[]; cursor_org: string | null;
  cursor_at: Date | null; cursor_id: string | null; done: boolean; posthog_ids: AppEventIds[]; stale: boolean;
};
// (constants only: its staleness on the database's clock, started_at's)
const WALK_COLUMNS = `pseudonym, started_at, occurred_from, org_ids::text[] AS org_ids, emails, cursor_org::text AS cursor_org, cursor_at,
  cursor_id::text AS cursor_id, done, posthog_ids, started_at < now() - ${WALK_FRESH_MS} * interval '1 millisecond' AS stale`;

function toWalk(r: WalkRow): AnalyticsWalk {
  return {
    pseudonym: r.pseudonym, startedAt: r.started_at, occurredFrom: r.occurred_from, orgIds: r.org_ids, emails: r.emails,
    cursor: r.cursor_org === null ? null : { org: r.cursor_org, at: r.cursor_at, id: r.cursor_id },
    done: r.done, posthogIds: r.posthog_ids, stale: r.stale,
  };
}

/**
 * Whether the walk serves an erasure of the person with these organizations and proven addresses: it searches every one
 * of those addresses in every one of those organizations, and began less than WALK_FRESH_MS ago. An address proven, or an
 * organization joined, since it began: the events it passed were not searched for them.
 */
export function walkCovers(walk: AnalyticsWalk | undefined, orgIds: string[], emails: string[]): walk is AnalyticsWalk {
  return !!walk && !walk.stale && orgIds.every((o) => walk.orgIds.includes(o)) && emails.every((e) => walk.emails.includes(e));
}

/** The SET list of the catalog's treatment of `t` (its pseudonyms' parameters appended to `values`). */
function setsOf(t: PersonalDataTable, person: LocatedPerson, values: unknown[]): string {
  return (Object.entries(t.columns) as [string, Treatment][]).flatMap(([column, tr]) =>
    tr.kind === 'erase' ? [`${quote(column)} = NULL`] : tr.kind === 'pseudonymize' ? [`${quote(column)} = ${bindPerson(tr.sql, person, values)}`] : []).join(', ');
}

/** A pseudonym's SQL with its `:person`, `:addresses` and `:pseudonym` (Treatment) as parameters appended to `values`. */
function bindPerson(sql: string, person: LocatedPerson, values: unknown[]): string {
  let user: string | undefined;
  let addresses: string | undefined;
  let pseudonym: string | undefined;
  return sql
    .replace(/(?<!:):person\b/g, () => (user ??= `$${values.push(person.userId)}::text`))
    .replace(/(?<!:):addresses\b/g, () => (addresses ??= `$${values.push(valueScanPattern(person.emails) ?? null)}::text`))
    .replace(/(?<!:):pseudonym\b/g, () => (pseudonym ??= `$${values.push(person.pseudonym ?? `erased-${randomUUID()}`)}::text`));
}

/** The treatments that change a row (the others leave it as it is). */
const CHANGED = new Set<Treatment['kind']>(['erase', 'pseudonymize', 'delete-row']);

/**
 * The WHERE clause that finds the person's rows of a catalog table aliased `x`, with its parameters ($1, $2: the user id
 * and the e-mails, as the clause uses them); undefined for tables erased otherwise (parties) or never. `erasure`: the
 * table's `alsoErasedBy` locators count too (an export leaves them out: those rows are other people's records); else
 * (an export) its `alsoExportedBy` locators do (rows the erasure leaves: an organization's record they wrote; the rows
 * reached `through` such a row are not theirs by it); and a table
 * with an orgColumn is looked at in the person's organizations only (`person.orgIds`, which the erasure must give), as is a
 * value scan with one, by the export too. A person
 * with no proven address is located by nothing e-mail-based (an e-mail column matches no row; no value is scanned).
 */
export function locate(t: PersonalDataTable, person: LocatedPerson, erasure = true): { sql: string; values: unknown[] } | undefined {
  const values: unknown[] = [];
  const sql = conditionOf(t, person, erasure, 'x', { values, param: (v) => `$${values.push(v)}` }, 0);
  return sql === undefined ? undefined : { sql, values };
}

interface Params {
  values: unknown[];
  param: (v: unknown) => string;
  user?: string;
  /** the user id bound as a uuid (the uuid columns' lookups): its own parameter, the text one being typed text */
  userUuid?: string;
  emails?: string;
  orgs?: string;
}

function conditionOf(t: PersonalDataTable, person: LocatedPerson, erasure: boolean, alias: string, p: Params, depth: number): string | undefined {
  const user = () => (p.user ??= p.param(person.userId));
  const userUuid = () => (p.userUuid ??= `${p.param(person.userId)}::uuid`);
  const emails = () => (p.emails ??= p.param(person.emails.map((e) => e.toLowerCase())));
  const col = (column: string) => `${alias}.${quote(column)}`;
  // a row reached through another (depth > 0) is theirs when that row is: not when the export holds that row only because
  // they wrote it into an organization that goes on (alsoExportedBy): other members' versions of a document they added
  // are the organization's, and the child table's own alsoExportedBy finds what they wrote there
  const exportedToo = depth > 0 ? [] : t.alsoExportedBy?.locators ?? [];
  const locators = [t.person, ...(t.alsoLocatedBy ?? []), ...(erasure ? t.alsoErasedBy ?? [] : exportedToo)];
  const conditions = locators.map((l): string | undefined => {
    switch (l.kind) {
      case 'user': {
        // a uuid column compared as a uuid (its index serves that, not a cast of every row's to text); a user id that is no
        // uuid (core."User".id is text) is in no such column
        const match = !l.uuid ? `${col(l.column)}::text = ${user()}` : UUID.test(person.userId) ? `${col(l.column)} = ${userUuid()}` : 'false';
        return `${match}${l.only ? ` AND ${col(l.only.column)} = ANY(${p.param(l.only.values)}::text[])` : ''}`;
      }
      case 'email':
        return person.emails.length ? `lower(${col(l.column)}) = ANY(${emails()}::text[])` : 'false';
      case 'personal-org':
        return `${col(l.column)}::text = ${user()} AND ${col('account_type')} = 'personal'`;
      case 'erased-org':
        if (!person.erasedOrgIds) throw new Error(`${t.table}: the organizations that go with the person were not given`);
        return `${col(l.column)} = ANY(${p.param(person.erasedOrgIds)}::uuid[])`;
      case 'sealed-for-email': {
        // the key ids of their addresses first (an InitPlan, once), then the entries sealed with one: an index lookup
        // (the expression of audit_logs_invitation_key_idx, migration 20270210090100)
        if (!person.emails.length) return undefined;
        const subjects = p.param(person.emails.map(emailSubject));
        return `${col('entity_type')} = ANY(${p.param(l.entityTypes)}::text[])
          AND coalesce(${alias}.after->'$sealed'->>'k', ${alias}.before->'$sealed'->>'k')
            = ANY(ARRAY(SELECT k.id::text FROM core.personal_data_keys k WHERE k.subject = ANY(${subjects}::text[])))`;
      }
      case 'value-scan': {
        // the columns the erasure changes (a job naming their e-mail goes; a run naming it loses its content)
        const changed = Object.entries(t.columns).filter(([, tr]) => CHANGED.has(tr.kind)).map(([c]) => c);
        const scanned = valueScanPattern(person.emails, l.userId ? person.userId : undefined);
        if (!changed.length || !scanned) return undefined;
        const pattern = p.param(scanned);
        let scan = changed.map((c) => `${col(c)}::text ~* ${pattern}`).join(' OR ');
        if (l.only) {
          // literals, not parameters: the partial index on them (a digest's) then serves a generic plan too
          if (l.only.values.some((v) => !/^[a-z0-9_.-]+$/i.test(v))) throw new Error(`${t.table}: a value scan's only.values must be plain words`);
          scan = `${col(l.only.column)} IN (${l.only.values.map((v) => `'${v}'`).join(', ')}) AND (${scan})`;
        }
        if (!l.orgColumn) return scan;
        if (!person.orgIds) throw new Error(`${t.table}: its value scan looks only in the person's organizations; none given`);
        const walked = t.table === ANALYTICS_EVENTS ? person.analyticsWalked : undefined;
        if (walked) {
          // what its walk did not read: the events received since it began, and every event of an organization it did not
          // walk (one they joined since); the same bound for every organization it walked lets the partitions be pruned
          const since = `${col('received_at')} >= ${p.param(walked.receivedFrom)}::timestamptz AND ${col('occurred_at')} >= ${p.param(walked.occurredFrom)}::timestamptz`;
          const unwalked = person.orgIds.filter((o) => !walked.orgIds.includes(o));
          const fresh = unwalked.length ? `(${since} OR ${col(l.orgColumn)} = ANY(${p.param(unwalked)}::uuid[]))` : since;
          scan = `${fresh} AND (${scan})`;
        }
        return `${col(l.orgColumn)} = ANY(${(p.orgs ??= p.param(person.orgIds))}::uuid[]) AND (${scan})`;
      }
      case 'through': {
        const parent = PERSONAL_DATA_CATALOG.find((x) => x.table === l.table);
        if (!parent || depth > 2) throw new Error(`${t.table}: no catalog table ${l.table} to locate its rows through`);
        const inner = `p${depth}`;
        const found = conditionOf(parent, person, erasure, inner, p, depth + 1);
        if (!found) return undefined;
        // the parent's values of a column first (an InitPlan, once), then this table's rows by them: an index lookup even as
        // one arm of an OR, where an EXISTS is a filter on every row (hub."BillingEvent" by its subscription or its
        // organization, the knowledge versions through their document or by their author, read their table whole)
        const values = ([mine, theirs]: readonly [string, string]) =>
          `${col(mine)} = ANY(ARRAY(SELECT DISTINCT ${inner}.${quote(theirs)} FROM ${parent.table} ${inner} WHERE ${found}))`;
        if (l.columns.length === 1) return values(l.columns[0]);
        const join = l.columns.map(([mine, theirs]) => `${inner}.${quote(theirs)} = ${col(mine)}`).join(' AND ');
        const exists = `EXISTS (SELECT 1 FROM ${parent.table} ${inner} WHERE ${join} AND (${found}))`;
        // alone, the EXISTS is a join (the parent's rows, then this table's by its index); or'ed with other locators, each
        // column's values bound it to an index (their combinations a superset), the EXISTS pairs them. Only then: each
        // evaluates the parent's condition again (an erasure's value scan of the parent's rows, ai.run_steps')
        return locators.length === 1 ? exists : `${l.columns.map(values).join(' AND ')} AND ${exists}`;
      }
      case 'party':
        return undefined;
    }
  }).filter((c): c is string => !!c);
  if (!conditions.length) return undefined;
  const any = conditions.length === 1 ? conditions[0] : conditions.map((c) => `(${c})`).join(' OR ');
  if (!erasure || !t.orgColumn) return any;
  // only in their organizations: an index on the organization column, not the whole table's rows
  if (!person.orgIds) throw new Error(`${t.table}: the erasure looks only in the person's organizations; none given`);
  const orgs = (p.orgs ??= p.param(person.orgIds));
  return `${col(t.orgColumn)} = ANY(${orgs}::uuid[]) AND (${any})`;
}

/** Rows a purge deleted in one organization (null: rows of no organization's, a person's digests without a personal one). */
export interface PurgedInOrg {
  orgId: string | null;
  count: number;
}

type OrgCountRow = { org_id: string | null; count: number };
const perOrg = (rows: OrgCountRow[]): PurgedInOrg[] => rows.map((r) => ({ orgId: r.org_id, count: r.count }));

/**
 * The retention job's statements: each deletes one data class older than its cutoff (computed from the injected clock)
 * and answers the rows it deleted per organization (RetentionJob audits each organization's).
 */
export const retentionRepository = {
  /**
   * Attempts go with their message (ON DELETE CASCADE); pending messages are still being delivered, unless their
   * endpoint has been disabled since before the cutoff (they wait for it to be enabled again: not that long). A
   * delivery's age counts from its last attempt: a message replayed by hand keeps its fresh attempts. In batches of
   * `batch` messages, each walking an index from where the previous one stopped (webhook_messages_finished_idx; the
   * disabled endpoints' webhook_endpoints_disabled_idx, then each one's pending messages): rows this transaction deleted
   * stay in the indexes until it ends, and a batch restarting from the beginning would walk them all again.
   */
  async purgeWebhookDeliveries(db: Db, cutoff: Date, batch = PURGE_BATCH): Promise<PurgedInOrg[]> {
    // finished messages (succeeded, failed) by the age of their last attempt
    type After = { at: string; org: string; id: string };
    const finished = await inBatches(async (after: After | null) => batchOf(await db.$queryRaw<(OrgCountRow & { last: After | null })[]>`WITH b AS (
        SELECT m.org_id, m.id, coalesce(m.last_attempt_at, m.created_at) AS at FROM core.webhook_messages m
        WHERE m.status <> 'pending' AND coalesce(m.last_attempt_at, m.created_at) < ${cutoff}
          AND (${after === null}::boolean OR (coalesce(m.last_attempt_at, m.created_at), m.org_id, m.id)
            > (${after?.at ?? null}::timestamptz, ${after?.org ?? null}::uuid, ${after?.id ?? null}::uuid))
        ORDER BY coalesce(m.last_attempt_at, m.created_at), m.org_id, m.id LIMIT ${batch}::int),
      d AS (
        DELETE FROM core.webhook_messages m USING b WHERE m.org_id = b.org_id AND m.id = b.id AND m.status <> 'pending'
        RETURNING m.org_id)
      SELECT org_id::text, count(*)::int AS count, NULL::jsonb AS last FROM d GROUP BY org_id
      UNION ALL
      SELECT NULL, NULL, (SELECT jsonb_build_object('at', at, 'org', org_id, 'id', id) FROM b ORDER BY at DESC, org_id DESC, id DESC LIMIT 1)`, 'org_id'));
    // pending messages of endpoints disabled since before the cutoff, one endpoint after another, each in due order
    // (webhook_messages_endpoint_due_idx)
    type Place = { org: string; endpoint: string; due: string | null; id: string | null };
    const pending = await inBatches(async (at: Place | null) => batchOf(await db.$queryRaw<(OrgCountRow & { last: Place | null })[]>`WITH e AS (
        SELECT e.org_id, e.id FROM core.webhook_endpoints e
        WHERE NOT e.enabled AND e.disabled_at < ${cutoff}
          AND (${at === null}::boolean OR (e.org_id, e.id) >= (${at?.org ?? null}::uuid, ${at?.endpoint ?? null}::uuid))
        ORDER BY e.org_id, e.id LIMIT 2),
      b AS (
        SELECT m.org_id, m.id, m.endpoint_id, m.next_attempt_at FROM core.webhook_messages m
        WHERE m.org_id = (SELECT e.org_id FROM e ORDER BY e.org_id, e.id LIMIT 1) AND m.endpoint_id = (SELECT e.id FROM e ORDER BY e.org_id, e.id LIMIT 1)
          AND m.status = 'pending' AND coalesce(m.last_attempt_at, m.created_at) < ${cutoff}
          AND (${at?.due ?? null}::timestamptz IS NULL OR (m.next_attempt_at, m.id) > (${at?.due ?? null}::timestamptz, ${at?.id ?? null}::uuid))
        ORDER BY m.next_attempt_at, m.id LIMIT ${batch}::int),
      d AS (
        DELETE FROM core.webhook_messages m USING b WHERE m.org_id = b.org_id AND m.id = b.id AND m.status = 'pending' RETURNING m.org_id)
      SELECT org_id::text, count(*)::int AS count, NULL::jsonb AS last FROM d GROUP BY org_id
      UNION ALL
      -- where the next batch starts: after this batch's last message while it was full, else the next endpoint
      SELECT NULL, NULL, CASE
        WHEN (SELECT count(*) FROM b) >= ${batch}::int THEN
          (SELECT jsonb_build_object('org', b.org_id, 'endpoint', b.endpoint_id, 'due', b.next_attempt_at, 'id', b.id) FROM b ORDER BY b.next_attempt_at DESC, b.id DESC LIMIT 1)
        ELSE (SELECT jsonb_build_object('org', e.org_id, 'endpoint', e.id, 'due', NULL, 'id', NULL) FROM e ORDER BY e.org_id, e.id OFFSET 1 LIMIT 1) END`, 'org_id'));
    const counts = new Map<string, number>();
    for (const r of [...finished, ...pending]) counts.set(r.org_id!, (counts.get(r.org_id!) ?? 0) + r.count);
    return [...counts].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)).map(([orgId, count]) => ({ orgId, count }));
  },

  async purgeProcessedJobs(db: Db, cutoff: Date): Promise<PurgedInOrg[]> {
    return perOrg(await db.$queryRaw<OrgCountRow[]>`WITH d AS (
      DELETE FROM core.outbox WHERE processed_at IS NOT NULL AND processed_at < ${cutoff} RETURNING org_id)
      SELECT org_id::text, count(*)::int AS count FROM d GROUP BY org_id ORDER BY org_id`);
  },

  /**
   * Notifications' receipts of routed events (they keep an event from being routed twice): one whose event is no
   * longer waiting in the outbox can never be routed again.
   */
  async purgeEventReceipts(db: Db, cutoff: Date): Promise<PurgedInOrg[]> {
    return perOrg(await db.$queryRaw<OrgCountRow[]>`WITH d AS (
      DELETE FROM core.notification_event_receipts r WHERE r.routed_at < ${cutoff}
        AND NOT EXISTS (SELECT 1 FROM core.outbox o WHERE o.org_id = r.org_id AND o.id = r.event_id AND o.processed_at IS NULL)
      RETURNING r.org_id)
      SELECT org_id::text, count(*)::int AS count FROM d GROUP BY org_id ORDER BY org_id`);
  },

  /**
   * Finished e-mail deliveries (sent, failed for good, not sent, summarized in a digest), counted from when they
   * were sent or else made, then the sent digests none of the kept deliveries points to (a person's, of no
   * organization: counted in their personal one). Queued, sending and digest-pending ones are still in flight.
   */
  async purgeEmailDeliveries(db: Db, cutoff: Date): Promise<{ deliveries: PurgedInOrg[]; digests: PurgedInOrg[] }> {
    const deliveries = perOrg(await db.$queryRaw<OrgCountRow[]>`WITH d AS (
      DELETE FROM core.email_deliveries WHERE status IN ('sent', 'failed', 'not_sent', 'digested') AND coalesce(sent_at, created_at) < ${cutoff}
      RETURNING org_id)
      SELECT org_id::text, count(*)::int AS count FROM d GROUP BY org_id ORDER BY org_id`);
    const digests = perOrg(await db.$queryRaw<OrgCountRow[]>`WITH d AS (
      DELETE FROM core.email_digests g WHERE g.sent_at < ${cutoff}
        AND NOT EXISTS (SELECT 1 FROM core.email_deliveries d WHERE d.digest_id = g.id)
      RETURNING g.user_id)
      SELECT o.id::text AS org_id, count(*)::int AS count
      FROM d LEFT JOIN core.organizations o ON o.owner_user_id = d.user_id AND o.account_type = 'personal'
      GROUP BY o.id ORDER BY o.id`);
    return { deliveries, digests };
  },

  /**
   * The walks of erasures that never committed (refused after their walk: a sole owner, a credential that no longer
   * holds; or never retried), begun before the cutoff: their row links the person's user id to the pseudonym their
   * events now carry and keeps the PostHog ids of events it cleared. A retry begins a fresh walk (a fresh pseudonym).
   */
  async purgeErasureWalks(db: Db, cutoff: Date): Promise<number> {
    return db.$executeRaw`DELETE FROM core.erasure_prepasses WHERE started_at < ${cutoff}`;
  },
};
