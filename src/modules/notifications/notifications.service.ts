import { Injectable, OnModuleInit } from '@nestjs/common';
import { Clock } from '../../platform/clock/clock.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { PrivilegedDatabase } from '../../platform/database/privileged.service.js';
import { PlatformErrors } from '../../platform/errors/platform.errors.js';
import { DomainEvents, type DomainEvent } from '../../platform/events/events.js';
import { decodeCursor, isKeysetPosition, page } from '../../platform/http/pagination.js';
import { UUID } from '../../platform/http/uuid.js';
import { AuditService } from '../audit/audit.service.js';
import { renderRouteText } from './email-templates.js';
import { queueEmail } from './email-delivery.service.js';
import { NotificationStream } from './notification-stream.js';
import { effectivePreference } from './notification-preferences.js';
import { notificationRepository as repo, type NotificationRow, type Recipient, type RouteRow } from './notification.repository.js';
import {
  NOTIFICATION_CATEGORIES, NOTIFICATION_CHANNELS, type MarkAllReadDto, type MarkedReadDto, type NotificationCategory,
  type NotificationDto, type NotificationPage, type NotificationQuery, type PreferencesDto, type UnreadCountDto, type UpdatePreferencesDto,
} from './notification.dto.js';
import { NotificationErrors } from './notifications.errors.js';

/** How long the set of routed event types is kept (see NotificationsService.routedTypes). */
const ROUTED_TYPES_TTL_MS = 60_000;

const toDto = (n: NotificationRow): NotificationDto => ({ ...n });

function userOf(tx: TenantTx): string {
  if (tx.principal.kind !== 'user') throw PlatformErrors.error('auth.user_required', 'this route acts for a signed-in user; a service key cannot call it');
  return tx.principal.userId;
}

/**
 * Routes domain events to people (core.notification_routes: roles of the organization, the roles a payload
 * field lists, or the person a payload field names), into their inbox and their mail (each as their preferences say), and serves the
 * inbox and the preferences.
 */
@Injectable()
export class NotificationsService implements OnModuleInit {
  constructor(
    private readonly privileged: PrivilegedDatabase,
    private readonly events: DomainEvents,
    private readonly stream: NotificationStream,
    private readonly audit: AuditService,
    private readonly clock: Clock,
  ) {}

  onModuleInit(): void {
    this.events.subscribe('notifications', (event) => this.route(event));
  }

  /**
   * The event types any route names, read at most once a minute: most events (a journal entry posted) notify nobody,
   * and skipping them here spares each its own transaction. The routes are written by migrations only (the service
   * role may only read them); a route a new migration adds is used within a minute.
   */
  private routed?: { types: Promise<Set<string>>; until: number };

  private routedTypes(): Promise<Set<string>> {
    const now = this.clock.now();
    if (!this.routed || this.routed.until <= now) {
      const types = this.privileged.run('notifications.deliver', (db) => repo.routedEventTypes(db)).then((t) => new Set(t));
      this.routed = { types, until: now + ROUTED_TYPES_TTL_MS };
      // a failed read is not kept: the next event reads again
      types.catch(() => { if (this.routed?.types === types) this.routed = undefined; });
    }
    return this.routed.types;
  }

  /** The subscriber: once per event id (a receipt row), in one transaction; then the pushes to open streams. */
  async route(event: DomainEvent): Promise<void> {
    if (!(await this.routedTypes()).has(event.type)) return;
    const created = await this.privileged.run('notifications.deliver', async (db) => {
      const routes = await repo.routes(db, event.type);
      if (routes.length === 0) return [];
      if (!(await repo.receipt(db, event.orgId, event.id, event.type))) return [];
      const orgName = (await repo.orgName(db, event.orgId)) ?? 'your organization';
      const data = { ...event.payload, orgName };
      const seen = new Set<string>();
      const pushed: { userId: string; notification: NotificationRow }[] = [];
      for (const route of routes) {
        const recipients = (await this.recipientsOf(db, event, route)).filter((r) => !seen.has(r.userId));
        recipients.forEach((r) => seen.add(r.userId));
        if (recipients.length === 0) continue;
        // about the person it names (their role, their removal, their sign-in): theirs after they leave the organization
        const toPerson = route.recipients === 'person';
        const title = renderRouteText(route.title, data).slice(0, 300);
        const body = renderRouteText(route.body, data).slice(0, 2000);
        const prefs = await repo.preferencesOf(db, recipients.map((r) => r.userId), route.category);
        for (const r of recipients) {
          if (effectivePreference(prefs.get(r.userId), route.category, 'in_app').enabled) {
            const n = await repo.insertNotification(db, {
              orgId: event.orgId, userId: r.userId, eventId: event.id, eventType: event.type, category: route.category, title, body, toPerson,
            });
            if (n) pushed.push({ userId: r.userId, notification: n });
          }
          const email = effectivePreference(prefs.get(r.userId), route.category, 'email');
          if (!email.enabled) continue;
          const mail = { userId: r.userId, to: r.email, template: 'notice' as const, category: route.category, data: { title, body, eventType: event.type }, eventId: event.id, toPerson };
          if (email.digest) {
            await repo.openDigest(db, r.userId, route.category, new Date(this.clock.now()));
            await repo.insertDelivery(db, { orgId: event.orgId, ...mail, status: 'digest_pending' });
          } else {
            await queueEmail({ db, orgId: event.orgId }, mail);
          }
        }
      }
      return pushed;
    });
    for (const p of created) await this.stream.publish(p.userId, toDto(p.notification));
  }

  private async recipientsOf(db: Parameters<typeof repo.routes>[0], event: DomainEvent, route: RouteRow): Promise<Recipient[]> {
    if (route.recipients === 'roles') return repo.membersWithRoles(db, event.orgId, route.roles);
    const value = event.payload[route.payloadField!];
    const values = (Array.isArray(value) ? value : [value]).filter((v): v is string => typeof v === 'string' && v.length > 0);
    if (route.recipients === 'payload_roles') return values.length ? repo.membersWithRoles(db, event.orgId, values) : [];
    return repo.users(db, values);
  }

  // ------------------------------------------------------------------ inbox

  async list(tx: TenantTx, q: NotificationQuery): Promise<NotificationPage> {
    const userId = userOf(tx);
    const after = decodeCursor<[string, string]>(q.cursor, isKeysetPosition(UUID));
    const limit = q.limit ?? 50;
    const rows = await repo.list(tx.db, userId, {
      limit: limit + 1, unread: q.unread, archived: q.archived ?? false, category: q.category, orgId: q.orgId, after,
    });
    const { items, nextCursor } = page(rows, limit, (r) => r.key);
    return { items: items.map((r) => toDto(r.notification)), nextCursor };
  }

  async unreadCount(tx: TenantTx): Promise<UnreadCountDto> {
    const byCategory = (await repo.unreadCounts(tx.db, userOf(tx)))
      .map((c) => ({ category: c.category as NotificationCategory, count: c.count }))
      .sort((a, b) => NOTIFICATION_CATEGORIES.indexOf(a.category) - NOTIFICATION_CATEGORIES.indexOf(b.category));
    return { unread: byCategory.reduce((sum, c) => sum + c.count, 0), byCategory };
  }

  private async getOwn(tx: TenantTx, id: string): Promise<NotificationRow> {
    const n = await repo.get(tx.db, userOf(tx), id);
    if (!n) throw NotificationErrors.error('notification.not_found', `notification ${id} was not found`);
    return n;
  }

  /** Marking is idempotent: a notice already read keeps its first read time. */
  async markRead(tx: TenantTx, id: string): Promise<NotificationDto> {
    await this.getOwn(tx, id);
    await repo.markRead(tx.db, userOf(tx), id);
    const after = await this.getOwn(tx, id);
    await this.audit.record(tx, { action: 'notification.read', entityType: 'notification', entityId: id });
    return toDto(after);
  }

  async markAllRead(tx: TenantTx, dto: MarkAllReadDto): Promise<MarkedReadDto> {
    const marked = await repo.markAllRead(tx.db, userOf(tx), dto);
    await this.audit.record(tx, { action: 'notification.all_read', entityType: 'notification', entityId: userOf(tx), after: { marked, ...dto } });
    return { marked };
  }

  async archive(tx: TenantTx, id: string): Promise<NotificationDto> {
    await this.getOwn(tx, id);
    await repo.archive(tx.db, userOf(tx), id);
    const after = await this.getOwn(tx, id);
    await this.audit.record(tx, { action: 'notification.archived', entityType: 'notification', entityId: id });
    return toDto(after);
  }

  // ------------------------------------------------------------------ preferences

  async preferences(tx: TenantTx): Promise<PreferencesDto> {
    const stored = await repo.preferences(tx.db, userOf(tx));
    const items = NOTIFICATION_CATEGORIES.flatMap((category) => NOTIFICATION_CHANNELS.map((channel) => effectivePreference(stored, category, channel)));
    return { items };
  }

  async updatePreferences(tx: TenantTx, dto: UpdatePreferencesDto): Promise<PreferencesDto> {
    const userId = userOf(tx);
    const keys = dto.items.map((p) => `${p.category}/${p.channel}`);
    if (new Set(keys).size !== keys.length) throw NotificationErrors.error('notification.preference_repeated', 'the same category and channel appear twice');
    for (const p of dto.items) {
      if (p.category === 'security' && !p.enabled) {
        throw NotificationErrors.error('notification.security_always_on', 'security notices cannot be switched off');
      }
      if (p.channel !== 'email' && p.digest) throw NotificationErrors.error('notification.digest_email_only', 'only the e-mail channel has a digest');
      if (p.category === 'security' && p.digest) {
        throw NotificationErrors.error('notification.security_immediate', 'security e-mails are sent at once: the security category has no digest');
      }
    }
    const before = await this.preferences(tx);
    for (const p of dto.items) await repo.setPreference(tx.db, userId, p);
    const after = await this.preferences(tx);
    await this.audit.record(tx, { action: 'notification.preferences_changed', entityType: 'user', entityId: userId, before, after: { ...after, changed: dto.items } });
    return after;
  }

  /** Notices of one user as they come (the SSE route). */
  streamFor(userId: string) {
    return this.stream.stream(userId);
  }

  /** Emits at shutdown: every open stream ends. */
  get closing() {
    return this.stream.closing;
  }
}
