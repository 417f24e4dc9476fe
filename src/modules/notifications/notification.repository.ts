import { sql } from 'kysely';
import type { Db } from '../../platform/database/database.service.js';
import { exactInstant, qb } from '../../platform/database/query-builder.js';
import { erasedEmail } from '../auth/user.repository.js';
import type { NotificationCategory, NotificationChannel } from './notification.dto.js';

export interface RouteRow {
  eventType: string;
  recipients: 'roles' | 'person' | 'payload_roles';
  roles: string[];
  payloadField: string | null;
  category: NotificationCategory;
  title: string;
  body: string;
}

export interface Recipient {
  userId: string;
  email: string;
}

export interface NotificationRow {
  id: string;
  orgId: string;
  eventType: string;
  category: NotificationCategory;
  title: string;
  body: string;
  createdAt: Date;
  readAt: Date | null;
  archivedAt: Date | null;
}

export interface PreferenceRow {
  category: NotificationCategory;
  channel: NotificationChannel;
  enabled: boolean;
  digest: boolean;
}

/** What a notice not mailed because its recipient left the organization records (its digest, or its own e-mail's job). */
export const NOT_A_MEMBER = 'not sent: the recipient no longer belongs to the organization';
/** What a notice or digest not mailed because its recipient switched its category's e-mail off since it was queued records. */
export const SWITCHED_OFF = 'not sent: e-mail of this category was switched off by the recipient';

const NOTIFICATION_COLUMNS = [
  'n.id', 'n.org_id', 'n.event_type', 'n.category', 'n.title', 'n.body', 'n.created_at', 'n.read_at', 'n.archived_at',
] as const;

const toNotification = (r: {
  id: string; org_id: string; event_type: string; category: string; title: string; body: string; created_at: Date; read_at: Date | null; archived_at: Date | null;
}): NotificationRow => ({
  id: r.id, orgId: r.org_id, eventType: r.event_type, category: r.category as NotificationCategory, title: r.title, body: r.body,
  createdAt: r.created_at, readAt: r.read_at, archivedAt: r.archived_at,
});

/**
 * Routing and delivery (the privileged path notifications.deliver) and the user's own inbox and preferences
 * (the request transaction: policies show a user only their own rows).
 */
export const notificationRepository = {
  // ------------------------------------------------------------------ routing (privileged)

  /** Marks a domain event as routed; false when it was routed before (the subscriber runs at least once). */
  async receipt(db: Db, orgId: string, eventId: string, eventType: string): Promise<boolean> {
    const rows = await db.run(qb.insertInto('core.notification_event_receipts')
      .values({ org_id: orgId, event_id: BigInt(eventId), event_type: eventType })
      .onConflict((oc) => oc.columns(['org_id', 'event_id']).doNothing()).returning('event_id'));
    return rows.length === 1;
  },

  async routes(db: Db, eventType: string): Promise<RouteRow[]> {
    const rows = await db.run(qb.selectFrom('core.notification_routes').selectAll().where('event_type', '=', eventType));
    return rows.map((r) => ({
      eventType: r.event_type, recipients: r.recipients as RouteRow['recipients'], roles: r.roles, payloadField: r.payload_field,
      category: r.category as NotificationCategory, title: r.title, body: r.body,
    }));
  },

  /** The event types some route notifies about (the routes are data of the migrations: no route changes at run time). */
  async routedEventTypes(db: Db): Promise<string[]> {
    const rows = await db.run(qb.selectFrom('core.notification_routes').select('event_type').distinct());
    return rows.map((r) => r.event_type);
  },

  async orgName(db: Db, orgId: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.organizations').select('name').where('id', '=', orgId));
    return row?.name;
  },

  async membersWithRoles(db: Db, orgId: string, roles: string[]): Promise<Recipient[]> {
    const rows = await db.run(qb.selectFrom('core.memberships as m').innerJoin('core.User as u', 'u.id', 'm.user_id')
      .select(['u.id', 'u.email']).where('m.org_id', '=', orgId).where('m.role', '=', sql<string>`any(${roles})`).orderBy('u.id'));
    return rows.map((r) => ({ userId: r.id, email: r.email }));
  },

  async users(db: Db, ids: string[]): Promise<Recipient[]> {
    if (ids.length === 0) return [];
    const rows = await db.run(qb.selectFrom('core.User as u').select(['u.id', 'u.email']).where('u.id', '=', sql<string>`any(${ids})`).orderBy('u.id'));
    return rows.map((r) => ({ userId: r.id, email: r.email }));
  },

  async userById(db: Db, id: string): Promise<Recipient | undefined> {
    return (await this.users(db, [id]))[0];
  },

  /** The user's e-mail address now; undefined when the user is gone or erased. */
  async currentAddress(db: Db, userId: string): Promise<string | undefined> {
    const [row] = await db.run(qb.selectFrom('core.User').select('email').where('id', '=', userId));
    return row && row.email !== erasedEmail(userId) ? row.email : undefined;
  },

  /** The stored preferences of `userIds` in `category` (absent rows: the defaults, see notifications.service.ts). */
  async preferencesOf(db: Db, userIds: string[], category: string): Promise<Map<string, PreferenceRow[]>> {
    const byUser = new Map<string, PreferenceRow[]>();
    if (userIds.length === 0) return byUser;
    const rows = await db.run(qb.selectFrom('core.notification_preferences').select(['user_id', 'category', 'channel', 'enabled', 'digest'])
      .where('user_id', '=', sql<string>`any(${userIds})`).where('category', '=', category));
    for (const r of rows) {
      const list = byUser.get(r.user_id) ?? [];
      list.push({ category: r.category as NotificationCategory, channel: r.channel as NotificationChannel, enabled: r.enabled, digest: r.digest });
      byUser.set(r.user_id, list);
    }
    return byUser;
  },

  /**
   * One inbox row per (event, recipient); undefined when it exists already. `toPerson`: addressed to them in person (a
   * person route), kept when they leave the organization; other notices show only while they belong to it (policy).
   */
  async insertNotification(db: Db, n: { orgId: string; userId: string; eventId: string; eventType: string; category: string; title: string; body: string; toPerson: boolean }): Promise<NotificationRow | undefined> {
    const [row] = await db.run(qb.insertInto('core.notifications')
      .values({ org_id: n.orgId, user_id: n.userId, event_id: BigInt(n.eventId), event_type: n.eventType, category: n.category, title: n.title, body: n.body, to_person: n.toPerson })
      .onConflict((oc) => oc.columns(['org_id', 'event_id', 'user_id']).doNothing())
      .returning(['id', 'org_id', 'event_type', 'category', 'title', 'body', 'created_at', 'read_at', 'archived_at']));
    return row && toNotification(row);
  },

  // ------------------------------------------------------------------ e-mail deliveries (privileged)

  async insertDelivery(db: Db, d: {
    orgId: string; userId: string | null; to: string; template: string; category: string; data: Record<string, unknown>; eventId?: string;
    status: 'queued' | 'digest_pending' | 'not_sent'; toPerson?: boolean;
    /** why a delivery inserted not_sent is not sent */
    smtpResponse?: string;
  }): Promise<string> {
    const [row] = await db.run(qb.insertInto('core.email_deliveries')
      .values({
        org_id: d.orgId, user_id: d.userId, to_address: d.to, template: d.template, category: d.category, data: JSON.stringify(d.data),
        event_id: d.eventId === undefined ? null : BigInt(d.eventId), status: d.status, to_person: d.toPerson ?? false,
        ...(d.smtpResponse !== undefined ? { smtp_response: d.smtpResponse } : {}),
      }).returning('id'));
    return row.id;
  },

  /**
   * A delivery's template and user, read without a lock (both are set when it is queued and never change): what its
   * job must lock before the delivery's row (EmailLinks, lockUser).
   */
  async deliveryRecipient(db: Db, orgId: string, id: string): Promise<{ template: string; user_id: string | null } | undefined> {
    const [row] = await db.run(qb.selectFrom('core.email_deliveries').select(['template', 'user_id']).where('org_id', '=', orgId).where('id', '=', id));
    return row;
  },

  /** Locks one delivery for its sending job. */
  async lockDelivery(db: Db, orgId: string, id: string) {
    const [row] = await db.run(qb.selectFrom('core.email_deliveries').selectAll().where('org_id', '=', orgId).where('id', '=', id).forUpdate());
    return row;
  },

  /**
   * Whether the delivery's recipient may still read the notice it mails, as their inbox decides it (core.notifications'
   * restrictive policy): addressed to them in person, or they still belong to the organization.
   */
  async recipientMayRead(db: Db, d: { org_id: string; user_id: string | null; to_person: boolean }): Promise<boolean> {
    if (d.to_person || d.user_id === null) return true;
    const [row] = await db.run(qb.selectFrom('core.memberships').select('user_id').where('org_id', '=', d.org_id).where('user_id', '=', d.user_id));
    return !!row;
  },

  /**
   * `attempt`: an attempt begins now (counted, its start `sendingSince` kept as the lease of the 'sending' row), `to` the
   * address it is sent to.
   */
  async setDelivery(db: Db, orgId: string, id: string, change: {
    status: string; smtpResponse?: string | null; messageId?: string | null; sent?: boolean; attempt?: { at: Date; to?: string };
  }): Promise<void> {
    await db.run(qb.updateTable('core.email_deliveries')
      .set((eb) => ({
        status: change.status,
        ...(change.attempt?.to !== undefined ? { to_address: change.attempt.to } : {}),
        ...(change.smtpResponse !== undefined ? { smtp_response: change.smtpResponse } : {}),
        ...(change.messageId !== undefined ? { message_id: change.messageId } : {}),
        ...(change.sent ? { sent_at: sql<Date>`now()` } : {}),
        ...(change.attempt ? { attempts: eb('attempts', '+', 1), sending_since: change.attempt.at } : {}),
      }))
      .where('org_id', '=', orgId).where('id', '=', id));
  },

  /**
   * Opens the digest of (user, category) for the hour of `at`, or finds it open: the unique key makes
   * concurrent events agree on one digest. Returns its id.
   */
  async openDigest(db: Db, userId: string, category: string, at: Date): Promise<string> {
    const window = sql<Date>`date_trunc('hour', ${at}::timestamptz)`;
    const [opened] = await db.run(qb.insertInto('core.email_digests')
      .values({ user_id: userId, category, window_start: window, due_at: sql<Date>`${window} + interval '1 hour'` })
      .onConflict((oc) => oc.columns(['user_id', 'category', 'window_start']).doNothing()).returning('id'));
    if (opened) return opened.id;
    // a concurrent event opened it: the insert waited for that transaction, so this new statement sees its row.
    // FOR SHARE: a flush (FOR UPDATE SKIP LOCKED) leaves it until this transaction's pending row is committed.
    const [open] = await db.run(qb.selectFrom('core.email_digests').select(['id', 'sent_at'])
      .where('user_id', '=', userId).where('category', '=', category).where('window_start', '=', window).forShare());
    // flushed meanwhile (this event's hour just ended): the next hour's digest takes it
    if (open.sent_at) return this.openDigest(db, userId, category, new Date(at.getTime() + 3_600_000));
    return open.id;
  },

  /** Digests whose hour is over, locked for one flush (a concurrent flush skips them). */
  async dueDigests(db: Db, now: Date, limit: number) {
    return db.run(qb.selectFrom('core.email_digests').select(['id', 'user_id', 'category', 'window_start'])
      .where('sent_at', 'is', null).where('due_at', '<=', now).orderBy('due_at').limit(limit).forUpdate().skipLocked());
  },

  /**
   * The pending notices of (user, category) from organizations the user no longer belongs to, not addressed to them in
   * person: marked not_sent, so no digest mails them (their inbox no longer shows them either). Returns how many.
   */
  async dropDigestItemsOfFormerOrgs(db: Db, userId: string, category: string): Promise<number> {
    return db.runCount(qb.updateTable('core.email_deliveries as d')
      .set({ status: 'not_sent', smtp_response: NOT_A_MEMBER })
      .where('d.user_id', '=', userId).where('d.category', '=', category).where('d.status', '=', 'digest_pending').where('d.to_person', '=', false)
      .where(({ not, exists, selectFrom }) => not(exists(selectFrom('core.memberships as m').select('m.user_id')
        .whereRef('m.org_id', '=', 'd.org_id').where('m.user_id', '=', userId)))));
  },

  /** The pending notices of (user, category), marked not_sent with `reason`: no digest mails them. Returns how many. */
  async dropDigestItems(db: Db, userId: string, category: string, reason: string): Promise<number> {
    return db.runCount(qb.updateTable('core.email_deliveries').set({ status: 'not_sent', smtp_response: reason })
      .where('user_id', '=', userId).where('category', '=', category).where('status', '=', 'digest_pending'));
  },

  /** The pending deliveries a digest summarizes, marked digested. */
  async takeDigestItems(db: Db, userId: string, category: string, digestId: string) {
    return db.run(qb.updateTable('core.email_deliveries').set({ status: 'digested', digest_id: digestId })
      .where('user_id', '=', userId).where('category', '=', category).where('status', '=', 'digest_pending')
      .returning(['org_id', 'data', 'created_at']));
  },

  async closeDigest(db: Db, id: string): Promise<void> {
    await db.run(qb.updateTable('core.email_digests').set({ sent_at: sql<Date>`now()` }).where('id', '=', id));
  },

  // ------------------------------------------------------------------ the user's inbox (request transaction)

  /** Newest first, keyset on (created_at, id); `position` is each row's created_at at full precision. */
  async list(db: Db, userId: string, q: { limit: number; unread?: boolean; archived: boolean; category?: string; orgId?: string; after?: [string, string] }) {
    let query = qb.selectFrom('core.notifications as n')
      .select([...NOTIFICATION_COLUMNS, exactInstant('n.created_at').as('position')])
      .where('n.user_id', '=', userId)
      .where('n.archived_at', q.archived ? 'is not' : 'is', null);
    if (q.unread) query = query.where('n.read_at', 'is', null);
    if (q.category) query = query.where('n.category', '=', q.category);
    if (q.orgId) query = query.where('n.org_id', '=', q.orgId);
    if (q.after) {
      const [at, id] = q.after;
      query = query.where(sql<boolean>`(n.created_at, n.id) < (${at}::timestamptz, ${id}::uuid)`);
    }
    const rows = await db.run(query.orderBy('n.created_at', 'desc').orderBy('n.id', 'desc').limit(q.limit));
    return rows.map((r) => ({ notification: toNotification(r), key: [r.position, r.id] as [string, string] }));
  },

  /** Counted, never stored: it cannot drift from the rows. */
  async unreadCounts(db: Db, userId: string): Promise<{ category: string; count: number }[]> {
    const rows = await db.run(qb.selectFrom('core.notifications').select(['category', (eb) => eb.fn.countAll<string>().as('n')])
      .where('user_id', '=', userId).where('read_at', 'is', null).where('archived_at', 'is', null).groupBy('category'));
    return rows.map((r) => ({ category: r.category, count: Number(r.n) }));
  },

  async get(db: Db, userId: string, id: string): Promise<NotificationRow | undefined> {
    const [row] = await db.run(qb.selectFrom('core.notifications as n').select([...NOTIFICATION_COLUMNS]).where('n.user_id', '=', userId).where('n.id', '=', id));
    return row && toNotification(row);
  },

  async markRead(db: Db, userId: string, id: string): Promise<void> {
    await db.run(qb.updateTable('core.notifications').set({ read_at: sql<Date>`now()` })
      .where('user_id', '=', userId).where('id', '=', id).where('read_at', 'is', null));
  },

  /** Returns how many changed. */
  async markAllRead(db: Db, userId: string, filter: { category?: string; orgId?: string }): Promise<number> {
    let query = qb.updateTable('core.notifications').set({ read_at: sql<Date>`now()` })
      .where('user_id', '=', userId).where('read_at', 'is', null).where('archived_at', 'is', null);
    if (filter.category) query = query.where('category', '=', filter.category);
    if (filter.orgId) query = query.where('org_id', '=', filter.orgId);
    return db.runCount(query);
  },

  async archive(db: Db, userId: string, id: string): Promise<void> {
    await db.run(qb.updateTable('core.notifications').set({ archived_at: sql<Date>`now()`, read_at: sql<Date>`coalesce(read_at, now())` })
      .where('user_id', '=', userId).where('id', '=', id).where('archived_at', 'is', null));
  },

  // ------------------------------------------------------------------ preferences (request transaction)

  async preferences(db: Db, userId: string): Promise<PreferenceRow[]> {
    const rows = await db.run(qb.selectFrom('core.notification_preferences').select(['category', 'channel', 'enabled', 'digest']).where('user_id', '=', userId));
    return rows.map((r) => ({ category: r.category as NotificationCategory, channel: r.channel as NotificationChannel, enabled: r.enabled, digest: r.digest }));
  },

  async setPreference(db: Db, userId: string, p: PreferenceRow): Promise<void> {
    await db.run(qb.insertInto('core.notification_preferences')
      .values({ user_id: userId, category: p.category, channel: p.channel, enabled: p.enabled, digest: p.digest })
      .onConflict((oc) => oc.columns(['user_id', 'category', 'channel'])
        .doUpdateSet({ enabled: p.enabled, digest: p.digest, updated_at: sql<Date>`now()` })));
  },
};
