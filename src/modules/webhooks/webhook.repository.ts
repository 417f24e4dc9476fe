import { sql } from 'kysely';
import type { Db } from '../../platform/database/sql.js';
import { qb } from '../../platform/database/query-builder.js';
import { locks, lockId } from '../../platform/database/locks.js';
import type { SealedSecret } from '../integrations/secret-box.js';

export interface EndpointRow {
  org_id: string;
  id: string;
  url: string;
  description: string;
  event_types: string[];
  enabled: boolean;
  disabled_reason: string | null;
  disabled_at: Date | null;
  secret: unknown;
  previous_secret: unknown | null;
  previous_secret_expires_at: Date | null;
  failing_since: Date | null;
  /** who chose its URL (created it, last changed the URL, or enabled it in place of someone gone), set by the database; null: a service, a deleted user, unknown */
  url_set_by: string | null;
  /** who received its current signing secret (created it, last rotated it, or enabled it in place of someone gone), set by the database; null as url_set_by */
  secret_set_by: string | null;
  /** who received the previous signing secret (still signing during a rotation's overlap), set by the database; null when there is none, a service's, unknown */
  previous_secret_set_by: string | null;
  /** the current secret was taken on by an enabling in place of a receiver gone or unknown (set by the database, cleared by a rotation): its rotation keeps no overlap */
  secret_taken_on: boolean;
  created_at: Date;
  updated_at: Date;
}

export interface MessageRow {
  org_id: string;
  id: string;
  endpoint_id: string;
  event_id: bigint | null;
  event_type: string;
  body: unknown;
  status: string;
  attempts: number;
  next_attempt_at: Date | null;
  last_attempt_at: Date | null;
  created_at: Date;
}

export interface AttemptRow {
  id: bigint;
  message_id: string;
  endpoint_id: string;
  event_type: string;
  attempted_at: Date;
  succeeded: boolean;
  status_code: number | null;
  latency_ms: number;
  response_body: string | null;
  error: string | null;
}

/**
 * The fewest due messages the claim reads in due order before it looks per enabled endpoint (claimDue's head): a
 * disabled endpoint's backlog shorter than this costs a claim what it did before the head was bounded (1,000 due
 * messages at 20,000 enabled endpoints: ~5 ms, where the per-endpoint lookup costs ~40 ms); reading it takes a few ms.
 */
export const CLAIM_HEAD_MIN = 4096;

/** A message the worker claimed, with what it needs to send it. */
export interface ClaimedMessage {
  org_id: string;
  id: string;
  endpoint_id: string;
  event_type: string;
  body: unknown;
  attempts: number;
  url: string;
  secret: unknown;
  previous_secret: unknown | null;
  previous_secret_expires_at: Date | null;
}

export interface AttemptInsert {
  orgId: string;
  messageId: string;
  at: Date;
  succeeded: boolean;
  statusCode: number | null;
  latencyMs: number;
  responseBody: string | null;
  error: string | null;
}

const ENDPOINTS = 'core.webhook_endpoints';
const MESSAGES = 'core.webhook_messages';
const ATTEMPTS = 'core.webhook_attempts';

export interface MessageFilter {
  status?: string;
  eventType?: string;
  after?: { c: string; i: string };
  limit: number;
}

export interface AttemptFilter {
  messageId?: string;
  succeeded?: boolean;
  eventType?: string;
  afterId?: string;
  limit: number;
}

/** Endpoints, messages and attempts. The API's calls run in the tenant transaction; fanOut, claimDue and record* on the privileged path webhooks.delivery. */
export const webhookRepository = {
  // ---------------------------------------------------------------- endpoints (tenant)
  /** The organization's endpoints, counted under a lock that concurrent creations take too (so none passes the cap). */
  async countEndpointsLocked(db: Db, orgId: string): Promise<number> {
    await locks.exclusive(db, `core.webhook_endpoints:${lockId(orgId)}`);
    const [r] = await db.run(qb.selectFrom(ENDPOINTS).select((s) => s.fn.countAll<string>().as('n')).where('org_id', '=', orgId));
    return Number(r.n);
  },

  async insertEndpoint(db: Db, row: { orgId: string; id: string; url: string; description: string; eventTypes: string[]; enabled: boolean; secret: SealedSecret }): Promise<EndpointRow> {
    const [r] = await db.run(qb.insertInto(ENDPOINTS).values({
      org_id: row.orgId, id: row.id, url: row.url, description: row.description, event_types: row.eventTypes, enabled: row.enabled,
      secret: JSON.stringify(row.secret),
    }).returningAll());
    return r as EndpointRow;
  },

  async listEndpoints(db: Db, orgId: string): Promise<EndpointRow[]> {
    return (await db.run(qb.selectFrom(ENDPOINTS).selectAll().where('org_id', '=', orgId).orderBy('created_at').orderBy('id'))) as EndpointRow[];
  },

  /**
   * The request's person (null for a service) with their user row and membership locked, as the endpoints' trigger
   * locks them (core.webhook_endpoint_configurer: 403 forbidden.role unless owner or admin): taken before the endpoint's
   * lock, in the order a demotion, removal or erasure takes them, so such a change waits for this transaction or this
   * one for it (it then sees the demotion), rather than the two deadlocking on the endpoint.
   */
  async lockActingPerson(db: Db, orgId: string): Promise<string | null> {
    const [r] = await db.$queryRaw<{ person: string | null }[]>`SELECT core.webhook_endpoint_configurer(${orgId}::uuid) AS person`;
    return r.person;
  },

  /** Locks the user rows and memberships of `people` (one by one, by id) as lockActingPerson does: the trigger then reads their roles as they stay. */
  async lockPeople(db: Db, orgId: string, people: string[]): Promise<void> {
    for (const person of [...new Set(people)].sort()) {
      await db.$queryRaw`SELECT core.webhook_endpoint_person_answers(${orgId}::uuid, ${person}::text)`;
    }
  },

  /** `lock`: true (or 'update') to change the row; 'share' to keep it as read (enabled) until the transaction ends. */
  async getEndpoint(db: Db, orgId: string, id: string, lock: boolean | 'update' | 'share' = false): Promise<EndpointRow | undefined> {
    const q = qb.selectFrom(ENDPOINTS).selectAll().where('org_id', '=', orgId).where('id', '=', id);
    const [r] = await db.run(lock === 'share' ? q.forShare() : lock ? q.forUpdate() : q);
    return r as EndpointRow | undefined;
  },

  async updateEndpoint(db: Db, orgId: string, id: string, patch: { url?: string; description?: string; eventTypes?: string[]; enabled?: boolean }): Promise<EndpointRow> {
    const [r] = await db.run(qb.updateTable(ENDPOINTS).set({
      ...(patch.url !== undefined ? { url: patch.url } : {}),
      ...(patch.description !== undefined ? { description: patch.description } : {}),
      ...(patch.eventTypes !== undefined ? { event_types: patch.eventTypes } : {}),
      // enabling by hand clears what the worker recorded; a new run of failures starts from scratch
      ...(patch.enabled !== undefined ? { enabled: patch.enabled, disabled_reason: null, disabled_at: patch.enabled ? null : sql<Date>`now()`, failing_since: null } : {}),
      updated_at: sql<Date>`now()`,
    }).where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return r as EndpointRow;
  },

  /**
   * Locks the endpoint's messages (FOR UPDATE, as their deletion would: the API may not delete them itself, the cascade
   * does), in id order, the order the worker's insertAttempts key-share locks them in.
   */
  async lockEndpointMessages(db: Db, orgId: string, endpointId: string): Promise<void> {
    await db.$queryRaw`
      SELECT count(*)::int AS n FROM (SELECT 1 FROM core.webhook_messages
        WHERE org_id = ${orgId}::uuid AND endpoint_id = ${endpointId}::uuid ORDER BY id FOR UPDATE) locked`;
  },

  /** Deletes the endpoint (its messages and their attempts with it); answers the row deleted, undefined when it was gone. */
  async deleteEndpoint(db: Db, orgId: string, id: string): Promise<EndpointRow | undefined> {
    const [r] = await db.run(qb.deleteFrom(ENDPOINTS).where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return r as EndpointRow | undefined;
  },

  async rotateSecret(db: Db, orgId: string, id: string, secret: SealedSecret, previous: SealedSecret | null, previousExpiresAt: Date | null): Promise<EndpointRow> {
    const [r] = await db.run(qb.updateTable(ENDPOINTS).set({
      secret: JSON.stringify(secret), previous_secret: previous ? JSON.stringify(previous) : null, previous_secret_expires_at: previousExpiresAt, updated_at: sql<Date>`now()`,
    }).where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return r as EndpointRow;
  },

  // ---------------------------------------------------------------- messages and log (tenant)
  async insertMessage(db: Db, row: { orgId: string; endpointId: string; eventType: string; body: unknown; now: Date }): Promise<MessageRow> {
    const [r] = await db.run(qb.insertInto(MESSAGES).values({
      org_id: row.orgId, endpoint_id: row.endpointId, event_id: null, event_type: row.eventType, body: JSON.stringify(row.body),
      next_attempt_at: row.now, created_at: row.now,
    }).returningAll());
    return r as MessageRow;
  },

  async listMessages(db: Db, orgId: string, endpointId: string, f: MessageFilter): Promise<MessageRow[]> {
    let q = qb.selectFrom(MESSAGES).selectAll().where('org_id', '=', orgId).where('endpoint_id', '=', endpointId);
    if (f.status) q = q.where('status', '=', f.status);
    if (f.eventType) q = q.where('event_type', '=', f.eventType);
    if (f.after) q = q.where(sql<boolean>`(created_at, id) < (${f.after.c}::timestamptz, ${f.after.i}::uuid)`);
    return (await db.run(q.orderBy('created_at', 'desc').orderBy('id', 'desc').limit(f.limit + 1))) as MessageRow[];
  },

  async getMessage(db: Db, orgId: string, endpointId: string, id: string, lock = false): Promise<MessageRow | undefined> {
    const q = qb.selectFrom(MESSAGES).selectAll().where('org_id', '=', orgId).where('endpoint_id', '=', endpointId).where('id', '=', id);
    const [r] = await db.run(lock ? q.forUpdate() : q);
    return r as MessageRow | undefined;
  },

  async listAttempts(db: Db, orgId: string, endpointId: string, f: AttemptFilter): Promise<AttemptRow[]> {
    let q = qb.selectFrom(`${ATTEMPTS} as a`)
      .innerJoin(`${MESSAGES} as m`, (j) => j.onRef('m.org_id', '=', 'a.org_id').onRef('m.id', '=', 'a.message_id'))
      .select(['a.id', 'a.message_id', 'a.endpoint_id', 'm.event_type', 'a.attempted_at', 'a.succeeded', 'a.status_code', 'a.latency_ms', 'a.response_body', 'a.error'])
      .where('a.org_id', '=', orgId).where('a.endpoint_id', '=', endpointId);
    if (f.messageId) q = q.where('a.message_id', '=', f.messageId);
    if (f.succeeded !== undefined) q = q.where('a.succeeded', '=', f.succeeded);
    if (f.eventType) q = q.where('m.event_type', '=', f.eventType);
    if (f.afterId) q = q.where('a.id', '<', BigInt(f.afterId));
    return (await db.run(q.orderBy('a.id', 'desc').limit(f.limit + 1))) as AttemptRow[];
  },

  /** A new round of attempts for one message (replay): due now, the schedule from its start. */
  async replayMessage(db: Db, orgId: string, id: string, now: Date): Promise<MessageRow> {
    const [r] = await db.run(qb.updateTable(MESSAGES).set({ status: 'pending', attempts: 0, next_attempt_at: now })
      .where('org_id', '=', orgId).where('id', '=', id).returningAll());
    return r as MessageRow;
  },

  /**
   * Locks the endpoint's messages failed since `since` (FOR UPDATE, as a single replay's getMessage does), in id order:
   * the order an endpoint's deletion (lockEndpointMessages) and the worker's recording (insertAttempts) lock messages in.
   * Not FOR NO KEY UPDATE, which the recording's KEY SHARE does not wait for: it would then lock the endpoint and wait
   * for the message, while this transaction waits for the endpoint (a deadlock). Answers their ids.
   */
  async lockFailedSince(db: Db, orgId: string, endpointId: string, since: Date): Promise<string[]> {
    const rows = await db.run(qb.selectFrom(MESSAGES).select('id').where('org_id', '=', orgId).where('endpoint_id', '=', endpointId)
      .where('status', '=', 'failed').where('created_at', '>=', since).orderBy('id').forUpdate());
    return rows.map((r) => r.id as string);
  },

  /** A new round of attempts for those of the messages (locked: lockFailedSince) still failed; answers how many. */
  async replayFailed(db: Db, orgId: string, ids: string[], now: Date): Promise<number> {
    if (!ids.length) return 0;
    // one array parameter, however many messages failed (a list of parameters stops at 65,535)
    return Number(await db.$executeRaw`
      UPDATE core.webhook_messages SET status = 'pending', attempts = 0, next_attempt_at = ${now}::timestamptz
      WHERE org_id = ${orgId}::uuid AND id = ANY(${ids}::uuid[]) AND status = 'failed'`);
  },

  // ---------------------------------------------------------------- fan-out and delivery (privileged: webhooks.delivery)
  /**
   * One message per enabled endpoint of the event's organization that takes its type, for many events in one
   * statement; an event fanned out twice adds nothing. A deleted organization's events (its organization.deleted, the
   * subscription.canceled that follows) add none: it sends nothing more. Answers how many messages are new.
   */
  async fanOut(db: Db, events: { orgId: string; eventId: string; type: string; body: unknown; now: Date }[]): Promise<number> {
    if (!events.length) return 0;
    const rows = events.map((e) => ({ org: e.orgId, event: e.eventId, type: e.type, body: e.body, at: e.now.toISOString() }));
    return Number(await db.$executeRaw`
      INSERT INTO core.webhook_messages (org_id, endpoint_id, event_id, event_type, body, next_attempt_at, created_at)
      SELECT e.org_id, e.id, v.event, v.type, v.body, v.at, v.at
      FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS v(org uuid, event bigint, type text, body jsonb, at timestamptz)
      JOIN core.webhook_endpoints e ON e.org_id = v.org AND e.enabled AND (cardinality(e.event_types) = 0 OR v.type = ANY(e.event_types))
      JOIN core.organizations o ON o.id = e.org_id AND o.deleted_at IS NULL
      ORDER BY v.event, e.id
      ON CONFLICT (org_id, endpoint_id, event_id) DO NOTHING`);
  },

  /**
   * Claims up to `limit` due messages of enabled endpoints, of every organization: each is due again at
   * `leaseUntil` (past the send timeout), so one whose outcome is never recorded is sent again. A due message already
   * claimed `maxAttempts` times is not claimed but failed (`exhausted`): its last claim ran out unrecorded (the
   * process died, or the outcome could not be written), and it must not be sent forever. Committed at once.
   * Fair between endpoints and between organizations: at most `perEndpoint` messages of one endpoint and
   * `perOrganization` of one organization, less what the worker still sends to them (`sending`: endpoint id → sends in
   * flight; `sendingByOrg`: organization id → sends in flight), and the first due message of each endpoint before the
   * second of any (among those, each organization's first before its second). Looked for first in the head of the due
   * order (webhook_messages_due_idx): its 32 × `limit` (at least CLAIM_HEAD_MIN) oldest due messages whatever their endpoint, of which the first
   * 8 × `limit` of enabled endpoints and of endpoints and organizations below their caps are the oldest candidates.
   * They are the answer when the head held every due message, or when all 8 × `limit` were found and hold `limit`
   * organizations' first messages (the claim takes those, nothing later: a prefix of the due order, filtered, is a prefix
   * of the eligible due order; the rest are spares for rows another worker holds locked).
   * Else (a few organizations' backlog fills them, or messages the claim does not take fill the head: a disabled
   * endpoint's backlog, which stays due until it is enabled again, or a capped endpoint's) looked for per enabled
   * endpoint with room, its own oldest due messages (webhook_messages_endpoint_due_idx): one endpoint's or
   * organization's backlog, however old, is not in the way of another's message, and a claim reads no more of it than
   * the head, however long it is. The head's size (32 × `limit`, at least CLAIM_HEAD_MIN: a few ms of index reads at
   * most) lets three in four of its messages be ones the claim does not take before the claim looks per endpoint, which
   * costs about 2 µs per enabled endpoint (bench/webhook-claim.bench.ts): a backlog shorter than the head costs what it
   * did before, however many endpoints there are. Bitmap scans and sorts are off for the rest of the transaction (below): run
   * it alone in one. A message claimed or settled by another worker after this statement's snapshot is skipped, not
   * claimed again (the locking step re-checks the row's lease and attempts).
   * A deleted organization's messages are not claimed, from the deletion's commit on (before organizationDeleted has
   * disabled its endpoints).
   */
  async claimDue(db: Db, now: Date, leaseUntil: Date, limit: number, maxAttempts: number,
    fair: { perEndpoint: number; perOrganization: number; sending: Map<string, number>; sendingByOrg: Map<string, number> }):
    Promise<{ claimed: ClaimedMessage[]; exhausted: { org_id: string; id: string; endpoint_id: string }[] }> {
    const room = (sending: Map<string, number>, cap: number) => Object.fromEntries([...sending].map(([id, n]) => [id, Math.max(0, cap - n)]));
    const capped = (sending: Map<string, number>, cap: number) => [...sending].filter(([, n]) => n >= cap).map(([id]) => id);
    const endpointRoom = JSON.stringify(room(fair.sending, fair.perEndpoint));
    const orgRoom = JSON.stringify(room(fair.sendingByOrg, fair.perOrganization));
    const head = Math.max(limit * 32, CLAIM_HEAD_MIN);
    // The head is read in due order and no further (an index scan stopping at its end), not as a bitmap of every due
    // message sorted after: status = 'pending' and next_attempt_at <= now go together (a CHECK), but the planner
    // multiplies their selectivities, counts a fraction of the due messages (at 10% pending, a tenth) and then reads
    // them all (10,402 rows for a head of 1,600 in bench/webhook-claim.bench.ts). Off to the end of the transaction: the
    // worker runs each claim in its own.
    // Sorts are off too (the sorts the statement needs are in every plan of it, so its other choices stay as they were):
    // the per-endpoint lookup's only plan without one is its range of webhook_messages_endpoint_due_idx (below). With
    // sorts on, the planner, counting about one due message per endpoint, costed any index of the endpoint's messages
    // read in full and sorted about as the range (8.47 against 8.43), and the partial index's statistics decided: every
    // claim read every message of every enabled endpoint (603,143 rows, 1-1.7 s, at 2,010 endpoints × 300 delivered;
    // review rE M2; test/webhooks/claim-stale-statistics.test.ts).
    await db.$queryRaw`SELECT set_config('enable_bitmapscan', 'off', true), set_config('enable_sort', 'off', true), set_config('enable_incremental_sort', 'off', true)`;
    const rows = await db.$queryRaw<(ClaimedMessage & { exhausted: boolean })[]>`
      WITH oldest AS (
        SELECT h.org_id, h.id, h.endpoint_id, h.next_attempt_at, h.attempts, h.attempts >= ${maxAttempts}::int AS exhausted
        -- the head of the due order, whatever fills it: the oldest are looked for no further down it (read as far as
        -- they need: a claim among enabled endpoints' messages reads 8 × limit of it)
        FROM (SELECT m.org_id, m.id, m.endpoint_id, m.next_attempt_at, m.attempts FROM core.webhook_messages m
              WHERE m.status = 'pending' AND m.next_attempt_at <= ${now}::timestamptz
              ORDER BY m.next_attempt_at, m.id LIMIT ${head}::int) h
        WHERE NOT (h.endpoint_id = ANY(${capped(fair.sending, fair.perEndpoint)}::uuid[]))
          AND NOT (h.org_id = ANY(${capped(fair.sendingByOrg, fair.perOrganization)}::uuid[]))
          -- looked up per message in due order (a subplan: a join may be hashed, reading the whole head first)
          AND (SELECT true FROM core.webhook_endpoints e JOIN core.organizations o ON o.id = e.org_id AND o.deleted_at IS NULL
               WHERE e.org_id = h.org_id AND e.id = h.endpoint_id AND e.enabled)
        ORDER BY h.next_attempt_at, h.id LIMIT ${limit * 8}::int),
      -- the oldest are the answer: 8 × limit of them with the first messages of limit organizations, or every due message
      -- of the endpoints with room (fewer than 8 × limit, and the head held every due message: counted only then)
      oldest_suffice AS (
        -- 8 × limit of them, as the claim before the head had (the spares stand in for rows another worker holds locked:
        -- fewer, with limit organizations' firsts among them, a concurrent claim took none of them; review rE)
        SELECT CASE WHEN count(*) >= ${limit * 8}::int THEN count(DISTINCT o.org_id) >= ${limit}::int
          ELSE (SELECT count(*) FROM (SELECT FROM core.webhook_messages m WHERE m.status = 'pending' AND m.next_attempt_at <= ${now}::timestamptz
            ORDER BY m.next_attempt_at, m.id LIMIT ${head}::int) h) < ${head}::int END AS yes
        FROM oldest o),
      endpoints AS (
        SELECT * FROM (
          SELECT e.org_id, e.id,
            least(${limit}::int, coalesce((${endpointRoom}::jsonb ->> e.id::text)::int, ${fair.perEndpoint}::int),
              coalesce((${orgRoom}::jsonb ->> e.org_id::text)::int, ${fair.perOrganization}::int)) AS room
          FROM core.webhook_endpoints e
          JOIN core.organizations o ON o.id = e.org_id AND o.deleted_at IS NULL
          WHERE e.enabled) e
        WHERE e.room > 0),
      candidates AS (
        SELECT o.* FROM oldest o WHERE (SELECT yes FROM oldest_suffice)
        UNION ALL
        -- not run when the oldest suffice
        SELECT c.* FROM endpoints e CROSS JOIN LATERAL (
          SELECT m.org_id, m.id, m.endpoint_id, m.next_attempt_at, m.attempts, m.attempts >= ${maxAttempts}::int AS exhausted
          FROM core.webhook_messages m
          -- the endpoint's due range of webhook_messages_endpoint_due_idx, in its order, its first room, the only plan of
          -- the lookup without a sort (sorts are off: above). The organization is an array of one, not an equality: the
          -- planner drops an ORDER BY column equal to a value, and with org_id and endpoint_id dropped the order left,
          -- (next_attempt_at, id), is webhook_messages_due_idx's too, read from the oldest due message filtering for the
          -- endpoint: the blow-up back. (org_id, next_attempt_at, id) is this index's order alone. To the btree scan the
          -- array is an equality, so all three bounds end it: at the endpoint's first entry not due (bounds in row form
          -- end a scan only on their first column on PostgreSQL 15: from (org_id, ...) on, every pending entry after the
          -- endpoint in its organization was read, from (endpoint_id, ...) on, its own not due; review of 8f632d5, HIGH;
          -- test/webhooks/claim-future-retries.test.ts)
          WHERE m.status = 'pending' AND m.org_id = ANY(ARRAY[e.org_id]) AND m.endpoint_id = e.id AND m.next_attempt_at <= ${now}::timestamptz
          ORDER BY m.org_id, m.endpoint_id, m.next_attempt_at, m.id LIMIT e.room) c
        WHERE NOT (SELECT yes FROM oldest_suffice)),
      ranked AS (
        SELECT c.*, row_number() OVER (PARTITION BY c.endpoint_id ORDER BY c.next_attempt_at, c.id) AS n FROM candidates c),
      -- each organization's sendable candidates, its endpoints' first messages first (an exhausted one is failed, not sent)
      org_ranked AS (
        SELECT r.*, row_number() OVER (PARTITION BY r.org_id, r.exhausted ORDER BY r.n, r.next_attempt_at, r.id) AS k FROM ranked r
        -- an endpoint's room (the per-endpoint lookup took no more)
        WHERE r.n <= least(${limit}::int, coalesce((${endpointRoom}::jsonb ->> r.endpoint_id::text)::int, ${fair.perEndpoint}::int),
          coalesce((${orgRoom}::jsonb ->> r.org_id::text)::int, ${fair.perOrganization}::int))),
      -- in claiming order; eight times as many as the claim takes, for those another worker holds locked (SKIP LOCKED)
      picked AS (
        SELECT r.* FROM org_ranked r WHERE r.exhausted OR r.k <= coalesce((${orgRoom}::jsonb ->> r.org_id::text)::int, ${fair.perOrganization}::int)
        ORDER BY r.n, r.k, r.next_attempt_at LIMIT ${limit * 8}),
      due AS (
        SELECT m.org_id, m.id, r.exhausted FROM core.webhook_messages m
        JOIN picked r ON r.org_id = m.org_id AND r.id = m.id
        -- the row as the candidates saw it: when another worker's claim (or an outcome) committed after this
        -- statement's snapshot, the lock re-checks these on the new version (READ COMMITTED) and skips the row
        WHERE m.status = 'pending' AND m.next_attempt_at = r.next_attempt_at AND m.attempts = r.attempts
        ORDER BY r.n, r.k, r.next_attempt_at LIMIT ${limit} FOR UPDATE OF m SKIP LOCKED),
      failed AS (
        UPDATE core.webhook_messages m SET status = 'failed', next_attempt_at = NULL
        FROM due WHERE due.exhausted AND m.org_id = due.org_id AND m.id = due.id
        RETURNING m.org_id, m.id, m.endpoint_id),
      claimed AS (
        UPDATE core.webhook_messages m SET next_attempt_at = ${leaseUntil}::timestamptz, attempts = m.attempts + 1
        FROM due, core.webhook_endpoints e
        WHERE NOT due.exhausted AND m.org_id = due.org_id AND m.id = due.id AND e.org_id = m.org_id AND e.id = m.endpoint_id
        RETURNING m.org_id, m.id, m.endpoint_id, m.event_type, m.body, m.attempts, e.url, e.secret, e.previous_secret, e.previous_secret_expires_at)
      SELECT c.*, false AS exhausted FROM claimed c
      UNION ALL
      SELECT f.org_id, f.id, f.endpoint_id, NULL, NULL, NULL, NULL, NULL, NULL, NULL, true FROM failed f`;
    return {
      claimed: rows.filter((r) => !r.exhausted).map(({ exhausted: _, ...m }) => m),
      exhausted: rows.filter((r) => r.exhausted).map((r) => ({ org_id: r.org_id, id: r.id, endpoint_id: r.endpoint_id })),
    };
  },

  /**
   * The attempts of one worker batch, in one statement. An attempt whose message is
   * gone (its endpoint was deleted while it was being sent) is skipped: the messages are read under KEY SHARE, so a
   * deletion committing meanwhile cannot fail the foreign key either. Locked in id order, the order an endpoint's
   * deletion locks its messages in (lockEndpointMessages): two statements locking the same rows in different orders
   * could deadlock.
   */
  async insertAttempts(db: Db, attempts: AttemptInsert[]): Promise<void> {
    if (!attempts.length) return;
    await db.$executeRaw`
      INSERT INTO core.webhook_attempts (org_id, message_id, endpoint_id, attempted_at, succeeded, status_code, latency_ms, response_body, error)
      SELECT m.org_id, m.id, m.endpoint_id, v.at, v.succeeded, v."statusCode", v."latencyMs", v."responseBody", v.error
      FROM jsonb_to_recordset(${JSON.stringify(attempts)}::jsonb)
        AS v("orgId" uuid, "messageId" uuid, at timestamptz, succeeded boolean, "statusCode" int, "latencyMs" int, "responseBody" text, error text)
      JOIN core.webhook_messages m ON m.org_id = v."orgId" AND m.id = v."messageId"
      ORDER BY m.id
      FOR KEY SHARE OF m`;
  },

  /**
   * Each message's next state after its attempt (succeeded, failed for good, or due again), in one statement, only
   * while the message is in the claim the attempt was sent under (`attempts` as claimed). A late outcome (its claim ran
   * out, or claimDue failed the message as exhausted meanwhile) does not undo a replay made since (a new round, attempts
   * 0) or a later claim's outcome: the message keeps its newer state, the attempt is logged all the same.
   */
  async settleMessages(db: Db, settled: { orgId: string; id: string; attempts: number; status: 'pending' | 'succeeded' | 'failed'; at: Date; next: Date | null }[]): Promise<void> {
    if (!settled.length) return;
    await db.$executeRaw`
      UPDATE core.webhook_messages m SET status = v.status, next_attempt_at = v.next, last_attempt_at = v.at
      FROM jsonb_to_recordset(${JSON.stringify(settled)}::jsonb) AS v("orgId" uuid, id uuid, attempts int, status text, at timestamptz, next timestamptz)
      WHERE m.org_id = v."orgId" AND m.id = v.id AND m.attempts = v.attempts`;
  },

  /**
   * Locks the endpoints a batch's recording updates (its health, or its disabling), in (org_id, id) order, before any
   * of them is updated: two workers' recordings updating the same endpoints in their batches' orders (one's succeeded
   * endpoint is the other's failed one) would deadlock each other.
   */
  async lockEndpoints(db: Db, endpoints: { orgId: string; id: string }[]): Promise<void> {
    if (!endpoints.length) return;
    await db.$queryRaw`
      SELECT count(*)::int AS n FROM (SELECT 1 FROM core.webhook_endpoints e
        JOIN jsonb_to_recordset(${JSON.stringify(endpoints)}::jsonb) AS v("orgId" uuid, id uuid) ON e.org_id = v."orgId" AND e.id = v.id
        ORDER BY e.org_id, e.id FOR NO KEY UPDATE OF e) locked`;
  },

  /** Endpoints that answered 2xx are no longer failing (locked first: lockEndpoints). */
  async endpointsSucceeded(db: Db, endpoints: { orgId: string; id: string }[]): Promise<void> {
    if (!endpoints.length) return;
    await db.$executeRaw`
      UPDATE core.webhook_endpoints e SET failing_since = NULL
      FROM jsonb_to_recordset(${JSON.stringify(endpoints)}::jsonb) AS v("orgId" uuid, id uuid)
      WHERE e.org_id = v."orgId" AND e.id = v.id AND e.failing_since IS NOT NULL`;
  },

  /** Records failures (the endpoints locked first: lockEndpoints); answers since when each endpoint has been failing (this failure if it is the first). */
  async endpointsFailed(db: Db, endpoints: { orgId: string; id: string; at: Date }[]): Promise<Map<string, Date>> {
    if (!endpoints.length) return new Map();
    const rows = await db.$queryRaw<{ id: string; failing_since: Date }[]>`
      UPDATE core.webhook_endpoints e SET failing_since = coalesce(e.failing_since, v.at)
      FROM jsonb_to_recordset(${JSON.stringify(endpoints)}::jsonb) AS v("orgId" uuid, id uuid, at timestamptz)
      WHERE e.org_id = v."orgId" AND e.id = v.id
      RETURNING e.id, e.failing_since`;
    return new Map(rows.map((r) => [r.id, new Date(r.failing_since)]));
  },

  /** Disables an enabled endpoint; answers it when this call disabled it (once, however many workers notice). */
  async disableEndpoint(db: Db, orgId: string, id: string, reason: 'gone' | 'failing', at: Date): Promise<EndpointRow | undefined> {
    const [r] = await db.run(qb.updateTable(ENDPOINTS).set({ enabled: false, disabled_reason: reason, disabled_at: at, updated_at: sql<Date>`now()` })
      .where('org_id', '=', orgId).where('id', '=', id).where('enabled', '=', true).returningAll());
    return r as EndpointRow | undefined;
  },

  /**
   * Disables the enabled endpoints of an organization that is deleted (reason organization_deleted), locked in id order
   * before any is updated, as lockEndpoints locks them; answers those this call disabled (none when the organization is
   * not deleted, or once they are).
   */
  async disableEndpointsOfDeletedOrg(db: Db, orgId: string, at: Date): Promise<{ id: string }[]> {
    // only the endpoints are locked, not the organization
    return db.$queryRaw`
      WITH locked AS (
        SELECT e.org_id, e.id FROM core.webhook_endpoints e
        WHERE e.org_id = ${orgId}::uuid AND e.enabled
          AND EXISTS (SELECT 1 FROM core.organizations o WHERE o.id = e.org_id AND o.deleted_at IS NOT NULL)
        ORDER BY e.id FOR NO KEY UPDATE OF e)
      UPDATE core.webhook_endpoints e SET enabled = false, disabled_reason = 'organization_deleted', disabled_at = ${at}::timestamptz, updated_at = now()
      FROM locked WHERE e.org_id = locked.org_id AND e.id = locked.id
      RETURNING e.id`;
  },

  /**
   * Disables the enabled endpoints of organizations a claimed account keeps alone, and those whose URL or secret the
   * account set (url_set_by, secret_set_by) in any other organization, as its API keys are revoked everywhere (reason
   * account_claimed, see auth/account-claim.service.ts); in every endpoint, enabled or not, names the account no more as
   * their URL's or secret's person (it stays owner or admin, now the address's real owner's, who chose neither: a
   * service could have enabled one again; a person enabling it takes it on) and ends the overlap of the previous secret
   * it holds (previous_secret_set_by). Locked in (org, id) order before any is updated, as lockEndpoints locks them;
   * answers the endpoints changed, with what this call did and who was named before.
   */
  async disableEndpointsOfClaimedAccount(db: Db, orgIds: string[], userId: string, at: Date): Promise<ClaimedAccountEndpoint[]> {
    return db.$queryRaw`
      WITH locked AS (
        SELECT e.org_id, e.id, e.url_set_by, e.secret_set_by, e.previous_secret_set_by, e.previous_secret_expires_at,
          e.enabled AND (e.org_id = ANY(${orgIds}::uuid[]) OR e.url_set_by = ${userId} OR e.secret_set_by = ${userId}) IS TRUE AS disabled,
          (e.previous_secret_set_by = ${userId}) IS TRUE AS previous_secret_cleared
        FROM core.webhook_endpoints e
        WHERE (e.org_id = ANY(${orgIds}::uuid[]) AND e.enabled)
          OR e.url_set_by = ${userId} OR e.secret_set_by = ${userId} OR e.previous_secret_set_by = ${userId}
        ORDER BY e.org_id, e.id FOR NO KEY UPDATE OF e)
      UPDATE core.webhook_endpoints e SET
        enabled = e.enabled AND NOT l.disabled,
        disabled_reason = CASE WHEN l.disabled THEN 'account_claimed' ELSE e.disabled_reason END,
        disabled_at = CASE WHEN l.disabled THEN ${at}::timestamptz ELSE e.disabled_at END,
        url_set_by = nullif(e.url_set_by, ${userId}),
        secret_set_by = nullif(e.secret_set_by, ${userId}),
        previous_secret = CASE WHEN l.previous_secret_cleared THEN NULL ELSE e.previous_secret END,
        previous_secret_expires_at = CASE WHEN l.previous_secret_cleared THEN NULL ELSE e.previous_secret_expires_at END,
        previous_secret_set_by = CASE WHEN l.previous_secret_cleared THEN NULL ELSE e.previous_secret_set_by END,
        updated_at = now()
      FROM locked l WHERE e.org_id = l.org_id AND e.id = l.id
      RETURNING e.org_id, e.id, l.url_set_by, l.secret_set_by, l.previous_secret_set_by, l.previous_secret_expires_at, l.disabled, l.previous_secret_cleared`;
  },

  /** Forgets the previous secrets whose overlap has ended (they sign nothing more); answers the endpoints cleared. */
  async clearExpiredPreviousSecrets(db: Db, now: Date): Promise<{ org_id: string; id: string; previous_secret_expires_at: Date }[]> {
    return db.$queryRaw`
      UPDATE core.webhook_endpoints e SET previous_secret = NULL, previous_secret_expires_at = NULL
      FROM (SELECT org_id, id, previous_secret_expires_at FROM core.webhook_endpoints
            WHERE previous_secret_expires_at <= ${now}::timestamptz FOR UPDATE SKIP LOCKED) x
      WHERE e.org_id = x.org_id AND e.id = x.id
      RETURNING e.org_id, e.id, x.previous_secret_expires_at`;
  },

  // ---------------------------------------------------------------- key rotation (privileged: secrets.rotate)
  /** Endpoints whose secret (or previous secret) is not sealed under the active key. */
  async countStaleSecrets(db: Db, activeKid: string): Promise<number> {
    const [r] = await db.run(qb.selectFrom(ENDPOINTS).select((s) => s.fn.countAll<string>().as('n'))
      .where(sql<boolean>`(secret->>'kid' IS DISTINCT FROM ${activeKid} OR (previous_secret IS NOT NULL AND previous_secret->>'kid' IS DISTINCT FROM ${activeKid}))`));
    return Number(r.n);
  },

  /** The next batch of such endpoints after `after` (org, id), locked; rows a request is writing are skipped (it seals under the active key). */
  async lockStaleSecrets(db: Db, activeKid: string, after: { orgId: string; id: string }, limit: number) {
    return db.run(qb.selectFrom(ENDPOINTS).select(['org_id', 'id', 'secret', 'previous_secret'])
      .where(sql<boolean>`(secret->>'kid' IS DISTINCT FROM ${activeKid} OR (previous_secret IS NOT NULL AND previous_secret->>'kid' IS DISTINCT FROM ${activeKid}))`)
      .where(sql<boolean>`(org_id, id) > (${after.orgId}::uuid, ${after.id}::uuid)`)
      .orderBy('org_id').orderBy('id').limit(limit).forUpdate().skipLocked());
  },

  async resealSecrets(db: Db, orgId: string, id: string, secret: SealedSecret, previous: SealedSecret | null): Promise<void> {
    await db.run(qb.updateTable(ENDPOINTS).set({ secret: JSON.stringify(secret), previous_secret: previous ? JSON.stringify(previous) : null })
      .where('org_id', '=', orgId).where('id', '=', id));
  },
};

/** An endpoint a path with no person disabled, with the people answerable for it (for its audit row). */
export interface DisabledEndpoint { org_id: string; id: string; url_set_by: string | null; secret_set_by: string | null }

/** An endpoint an account claim changed: the people named before it, and what it did (disabled it, ended its previous secret's overlap; else only names the account no more). */
export interface ClaimedAccountEndpoint extends DisabledEndpoint {
  previous_secret_set_by: string | null;
  previous_secret_expires_at: Date | null;
  disabled: boolean;
  previous_secret_cleared: boolean;
}
