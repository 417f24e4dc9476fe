import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import { Clock } from '../../platform/clock/clock.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { checkOutboundUrl } from '../../platform/http/outbound.js';
import { decodeCursor, decodeKeyset, isSequenceNumber, page } from '../../platform/http/pagination.js';
import { AuditService } from '../audit/audit.service.js';
import { SECRET_BOX, type SealedSecret, type SecretBox } from '../integrations/secret-box.js';
import { bodySchemaName, DELIVERED_EVENTS, EVENT_CATALOG, eventBodySchema, isKnownEventType, PING_EVENT_TYPE, type WebhookBody } from './event-catalog.js';
import { webhookRepository as repo, type AttemptRow, type EndpointRow, type MessageRow } from './webhook.repository.js';
import { generateSigningSecret, webhookId } from './webhook-signing.js';
import { WebhookErrors } from './webhooks.errors.js';
import type {
  CreateWebhookEndpointDto, EventTypeDto, ReplayResultDto, UpdateWebhookEndpointDto, WebhookAttemptDto, WebhookAttemptPage, WebhookAttemptQuery,
  WebhookEndpointDto, WebhookEndpointWithSecretDto, WebhookMessageDetailDto, WebhookMessageDto, WebhookMessagePage, WebhookMessageQuery,
} from './webhooks.dto.js';

/** The secret box's associated data for an endpoint's secret: the ciphertext opens only for that row. */
export const secretContext = (orgId: string, endpointId: string): string => `webhook_endpoint.secret.v1:${orgId.toLowerCase()}:${endpointId.toLowerCase()}`;

/** An endpoint as answered at `now`: a previous secret whose overlap has ended signs nothing, so its expiry is null (the worker clears it). */
function toEndpoint(r: EndpointRow, now: number): WebhookEndpointDto {
  const previousSecretExpiresAt = r.previous_secret_expires_at && new Date(r.previous_secret_expires_at).getTime() > now ? r.previous_secret_expires_at : null;
  return {
    id: r.id, url: r.url, description: r.description, eventTypes: r.event_types.length ? r.event_types : null, enabled: r.enabled,
    disabledReason: r.disabled_reason, disabledAt: r.disabled_at, failingSince: r.failing_since, previousSecretExpiresAt,
    urlSetBy: r.url_set_by, secretSetBy: r.secret_set_by, secretTakenOn: r.secret_taken_on, createdAt: r.created_at, updatedAt: r.updated_at,
  };
}

function toMessage(r: MessageRow): WebhookMessageDto {
  return {
    id: r.id, webhookId: webhookId(r.id), endpointId: r.endpoint_id, eventId: r.event_id === null ? null : `evt_${r.event_id}`, eventType: r.event_type,
    status: r.status, attemptCount: r.attempts, nextAttemptAt: r.next_attempt_at, lastAttemptAt: r.last_attempt_at, createdAt: r.created_at,
    body: r.body as Record<string, unknown>,
  };
}

function toAttempt(r: AttemptRow): WebhookAttemptDto {
  return {
    id: r.id.toString(), messageId: r.message_id, eventType: r.event_type, attemptedAt: r.attempted_at, succeeded: r.succeeded,
    statusCode: r.status_code, latencyMs: r.latency_ms, responseBody: r.response_body, error: r.error,
  };
}

/** What the audit log keeps of an endpoint: never its secret. */
const audited = (e: WebhookEndpointDto) => ({
  id: e.id, url: e.url, description: e.description, eventTypes: e.eventTypes, enabled: e.enabled, urlSetBy: e.urlSetBy, secretSetBy: e.secretSetBy,
});

/** Endpoints (owner, admin), their secrets, the delivery log, replays and pings. Delivery itself: WebhookDelivery. */
@Injectable()
export class WebhooksService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(SECRET_BOX) private readonly box: SecretBox,
    private readonly audit: AuditService,
    private readonly clock: Clock,
  ) {}

  eventTypes(): EventTypeDto[] {
    return EVENT_CATALOG.map((e) => ({
      type: e.type, version: e.version, category: e.category, description: e.description, payloadSchema: e.payloadSchema, example: e.example,
      bodySchemaRef: `#/components/schemas/${bodySchemaName(e.type, e.version)}`,
    }));
  }

  /** The component schemas of the OpenAPI document: one delivered body per event type, and the ping's. */
  static bodySchemas(): Record<string, Record<string, unknown>> {
    return Object.fromEntries(DELIVERED_EVENTS.map((e) => [bodySchemaName(e.type, e.version), eventBodySchema(e)]));
  }

  private checkUrl(raw: string): string {
    return checkOutboundUrl(raw, {
      field: 'url', example: 'https://hooks.example.com/omnizen', httpsOnly: this.config.webhooks.requireHttps, allowPrivateNetworks: this.config.outbound.allowPrivateNetworks,
    }, (kind, message) => WebhookErrors.error(kind === 'invalid' ? 'webhooks.url_invalid' : 'webhooks.url_not_public', message)).toString();
  }

  private checkEventTypes(types: string[] | null | undefined): string[] {
    if (!types) return [];
    const unknown = types.filter((t) => !isKnownEventType(t));
    if (unknown.length) throw WebhookErrors.error('webhooks.unknown_event_type', `unknown event types: ${unknown.join(', ')} (see GET /v1/webhooks/event-types)`, { unknown });
    return [...types].sort();
  }

  async create(tx: TenantTx, dto: CreateWebhookEndpointDto): Promise<WebhookEndpointWithSecretDto> {
    const url = this.checkUrl(dto.url);
    const eventTypes = this.checkEventTypes(dto.eventTypes);
    await repo.lockActingPerson(tx.db, tx.orgId);
    const max = this.config.webhooks.maxEndpoints;
    if (await repo.countEndpointsLocked(tx.db, tx.orgId) >= max) {
      throw WebhookErrors.error('webhooks.too_many_endpoints', `the organization already has ${max} webhook endpoints, the most it may have: delete one first`, { max });
    }
    const id = randomUUID();
    const secret = generateSigningSecret();
    const row = await repo.insertEndpoint(tx.db, {
      orgId: tx.orgId, id, url, description: dto.description ?? '', eventTypes, enabled: dto.enabled ?? true,
      secret: this.box.sealFor(secret, secretContext(tx.orgId, id)),
    });
    const endpoint = toEndpoint(row, this.clock.now());
    await this.audit.record(tx, { action: 'webhooks.endpoint_created', entityType: 'webhook_endpoint', entityId: id, after: audited(endpoint) });
    return { ...endpoint, secret };
  }

  async list(tx: TenantTx): Promise<WebhookEndpointDto[]> {
    return (await repo.listEndpoints(tx.db, tx.orgId)).map((r) => toEndpoint(r, this.clock.now()));
  }

  private async endpointRow(tx: TenantTx, id: string, lock: boolean | 'share' = false): Promise<EndpointRow> {
    const row = await repo.getEndpoint(tx.db, tx.orgId, id, lock);
    if (!row) throw WebhookErrors.notFound('webhook_endpoint', id);
    return row;
  }

  async get(tx: TenantTx, id: string): Promise<WebhookEndpointDto> {
    return toEndpoint(await this.endpointRow(tx, id), this.clock.now());
  }

  /**
   * A change of the URL or an enabling makes people answerable (url_set_by, secret_set_by: set by the database's
   * trigger): their user rows and memberships are locked before the endpoint, in the order a demotion, removal or
   * erasure locks them (the person acting; for an enabling, then the two answerable now, which it reads again under
   * those locks). Locking the endpoint first deadlocked with a demotion that held the membership and then disabled the
   * endpoint (409 conflict.retry where 403 forbidden.role was due).
   */
  async update(tx: TenantTx, id: string, dto: UpdateWebhookEndpointDto): Promise<WebhookEndpointDto> {
    if (dto.url !== undefined || dto.enabled === true) {
      await repo.lockActingPerson(tx.db, tx.orgId);
      if (dto.enabled === true) {
        const seen = await this.endpointRow(tx, id);
        if (!seen.enabled) {
          await repo.lockPeople(tx.db, tx.orgId, [seen.url_set_by, seen.secret_set_by, seen.previous_secret_set_by].filter((p): p is string => p !== null));
        }
      }
    }
    const beforeRow = await this.endpointRow(tx, id, true);
    const before = toEndpoint(beforeRow, this.clock.now());
    const afterRow = await repo.updateEndpoint(tx.db, tx.orgId, id, {
      url: dto.url === undefined ? undefined : this.checkUrl(dto.url),
      description: dto.description,
      eventTypes: dto.eventTypes === undefined ? undefined : this.checkEventTypes(dto.eventTypes),
      enabled: dto.enabled,
    });
    const after = toEndpoint(afterRow, this.clock.now());
    // secretTakenOn: an enabling in place of a secret's receiver gone (or unknown) marks the secret taken on (the database)
    await this.audit.record(tx, {
      action: 'webhooks.endpoint_updated', entityType: 'webhook_endpoint', entityId: id,
      before: { ...audited(before), secretTakenOn: beforeRow.secret_taken_on }, after: { ...audited(after), secretTakenOn: afterRow.secret_taken_on },
    });
    // enabled again while the previous secret's holder is no longer owner or admin, or unknown: the database ended its overlap
    if (beforeRow.previous_secret !== null && afterRow.previous_secret === null) {
      await this.audit.record(tx, {
        action: 'webhooks.previous_secret_cleared', entityType: 'webhook_endpoint', entityId: id,
        before: { previousSecretExpiresAt: beforeRow.previous_secret_expires_at, previousSecretSetBy: beforeRow.previous_secret_set_by },
        after: { previousSecretExpiresAt: null, reason: beforeRow.previous_secret_set_by === null ? 'previous_secret_holder_unknown' : 'configurer_no_longer_admin' },
      });
    }
    return after;
  }

  /**
   * In the worker's lock order (record(): its messages, then their endpoints), as replay's: the endpoint read unlocked
   * (a 404), its messages locked, then the endpoint deleted (its messages with it). Locking the endpoint first
   * deadlocked with a recording that held one of its messages and then updated the endpoint's health.
   */
  async remove(tx: TenantTx, id: string): Promise<void> {
    await this.endpointRow(tx, id);
    await repo.lockEndpointMessages(tx.db, tx.orgId, id);
    const row = await repo.deleteEndpoint(tx.db, tx.orgId, id);
    if (!row) throw WebhookErrors.notFound('webhook_endpoint', id); // deleted by a concurrent request meanwhile
    await this.audit.record(tx, { action: 'webhooks.endpoint_deleted', entityType: 'webhook_endpoint', entityId: id, before: audited(toEndpoint(row, this.clock.now())) });
  }

  /**
   * A new secret, shown once; the current one keeps signing for `overlapSeconds` (the request's, else the default; both
   * signatures are sent meanwhile). Not a secret taken on when the endpoint was enabled in place of a receiver gone or
   * unknown (secret_taken_on): whoever was given it (that receiver, or a service key whose rotation left them on record)
   * could have known it and no longer answers for it, so it stops signing at once (review rA, rC); an overlap asked for
   * explicitly is refused (409 webhooks.secret_taken_on, nothing changed). The database drops such an overlap anyway.
   */
  async rotateSecret(tx: TenantTx, id: string, asked?: number): Promise<WebhookEndpointWithSecretDto> {
    // the person first, then the endpoint (see update)
    await repo.lockActingPerson(tx.db, tx.orgId);
    const row = await this.endpointRow(tx, id, true);
    if (row.secret_taken_on && asked !== undefined && asked > 0) {
      throw WebhookErrors.error('webhooks.secret_taken_on',
        'the endpoint\'s signing secret was taken on: a person enabled it in place of the secret\'s receiver on record, no longer owner or admin of the '
        + 'organization or unknown, and whoever was given the secret (that person, or a service key whose rotation left the person before it on record) '
        + 'could have known it and no longer answers for it: its rotation keeps no overlap (omit overlapSeconds or send 0)', { overlapSeconds: asked });
    }
    const overlapSeconds = row.secret_taken_on ? 0 : asked ?? this.config.webhooks.secretOverlapSeconds;
    const secret = generateSigningSecret();
    const context = secretContext(tx.orgId, id);
    const expiresAt = overlapSeconds > 0 ? new Date(this.clock.now() + overlapSeconds * 1000) : null;
    const endpoint = toEndpoint(await repo.rotateSecret(tx.db, tx.orgId, id, this.box.sealFor(secret, context), expiresAt ? row.secret as SealedSecret : null, expiresAt), this.clock.now());
    await this.audit.record(tx, {
      action: 'webhooks.secret_rotated', entityType: 'webhook_endpoint', entityId: id,
      ...(row.secret_taken_on
        ? { before: { secretTakenOn: true }, after: { previousSecretExpiresAt: endpoint.previousSecretExpiresAt, secretSetBy: endpoint.secretSetBy, noOverlap: 'secret_taken_on' } }
        : { after: { previousSecretExpiresAt: endpoint.previousSecretExpiresAt, secretSetBy: endpoint.secretSetBy } }),
    });
    return { ...endpoint, secret };
  }

  /** A `ping` message to this endpoint only, delivered like any event. */
  async ping(tx: TenantTx, id: string): Promise<WebhookMessageDto> {
    const endpoint = await this.endpointRow(tx, id);
    if (!endpoint.enabled) throw WebhookErrors.error('webhooks.endpoint_disabled', 'the endpoint is disabled: enable it to ping it');
    const now = new Date(this.clock.now());
    const body: WebhookBody = {
      id: `evt_ping_${randomUUID().replace(/-/g, '')}`, type: PING_EVENT_TYPE, version: 1, timestamp: now.toISOString(), organizationId: tx.orgId,
      data: { endpointId: id, message: 'ping from OmniZen' },
    };
    const message = toMessage(await repo.insertMessage(tx.db, { orgId: tx.orgId, endpointId: id, eventType: PING_EVENT_TYPE, body, now }));
    await this.audit.record(tx, { action: 'webhooks.endpoint_pinged', entityType: 'webhook_endpoint', entityId: id, after: { messageId: message.id } });
    return message;
  }

  async messages(tx: TenantTx, endpointId: string, q: WebhookMessageQuery): Promise<WebhookMessagePage> {
    await this.endpointRow(tx, endpointId);
    const limit = q.limit ?? 50;
    const after = decodeKeyset(q.cursor, { c: 'timestamp', i: 'uuid' });
    const rows = await repo.listMessages(tx.db, tx.orgId, endpointId, { status: q.status, eventType: q.eventType, after, limit });
    const p = page(rows, limit, (r) => ({ c: r.created_at.toISOString(), i: r.id }));
    return { items: p.items.map(toMessage), nextCursor: p.nextCursor };
  }

  async message(tx: TenantTx, endpointId: string, id: string): Promise<WebhookMessageDetailDto> {
    const row = await repo.getMessage(tx.db, tx.orgId, endpointId, id);
    if (!row) throw WebhookErrors.notFound('webhook_message', id);
    const attempts = await repo.listAttempts(tx.db, tx.orgId, endpointId, { messageId: id, limit: 1000 });
    return { ...toMessage(row), attemptLog: attempts.reverse().map(toAttempt) };
  }

  async attempts(tx: TenantTx, endpointId: string, q: WebhookAttemptQuery): Promise<WebhookAttemptPage> {
    await this.endpointRow(tx, endpointId);
    const limit = q.limit ?? 50;
    const after = decodeCursor<string>(q.cursor, isSequenceNumber);
    const rows = await repo.listAttempts(tx.db, tx.orgId, endpointId, {
      messageId: q.messageId, succeeded: q.status === undefined ? undefined : q.status === 'succeeded', eventType: q.eventType, afterId: after, limit,
    });
    const p = page(rows, limit, (r) => r.id.toString());
    return { items: p.items.map(toAttempt), nextCursor: p.nextCursor };
  }

  /**
   * A replay is refused while the endpoint is disabled (like a ping): the worker sends nothing to a disabled endpoint,
   * so the replayed message would sit pending, answered 202 but never sent. Locked ('share'), the worker (or a PATCH)
   * does not disable it between this check and the commit; taken after the messages' locks (the worker's order).
   */
  private async enabledEndpoint(tx: TenantTx, id: string, lock: false | 'share'): Promise<void> {
    const endpoint = await this.endpointRow(tx, id, lock);
    if (!endpoint.enabled) throw WebhookErrors.error('webhooks.endpoint_disabled', 'the endpoint is disabled: enable it to replay its messages');
  }

  /** Sends a delivered (or failed) message again: same webhook-id, a new round of the schedule. */
  async replay(tx: TenantTx, endpointId: string, id: string): Promise<WebhookMessageDto> {
    const row = await repo.getMessage(tx.db, tx.orgId, endpointId, id, true);
    if (!row) throw WebhookErrors.notFound('webhook_message', id);
    // the message's lock first, then the endpoint's: the worker's record() holds its messages (its attempts' keys) before
    // it updates their endpoints
    await this.enabledEndpoint(tx, endpointId, 'share');
    if (row.status === 'pending') throw WebhookErrors.error('webhooks.message_pending', 'the message is still being delivered');
    const message = toMessage(await repo.replayMessage(tx.db, tx.orgId, id, new Date(this.clock.now())));
    await this.audit.record(tx, { action: 'webhooks.message_replayed', entityType: 'webhook_message', entityId: id, before: { status: row.status }, after: { status: message.status } });
    return message;
  }

  /**
   * In the worker's lock order, as replay's and remove's: the endpoint checked unlocked (a 404, a 409 when disabled), its
   * failed messages locked in id order, then the endpoint locked and checked again (still there, still enabled).
   * Locking the endpoint first deadlocked with a deletion that held its messages and then deleted the endpoint.
   */
  async replayFailed(tx: TenantTx, endpointId: string, since: string): Promise<ReplayResultDto> {
    await this.enabledEndpoint(tx, endpointId, false);
    const ids = await repo.lockFailedSince(tx.db, tx.orgId, endpointId, new Date(since));
    await this.enabledEndpoint(tx, endpointId, 'share');
    const replayed = await repo.replayFailed(tx.db, tx.orgId, ids, new Date(this.clock.now()));
    await this.audit.record(tx, { action: 'webhooks.failed_replayed', entityType: 'webhook_endpoint', entityId: endpointId, after: { since, replayed } });
    return { replayed };
  }
}
