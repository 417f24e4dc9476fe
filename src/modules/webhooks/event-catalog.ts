import type { DomainEventType } from '../../platform/events/events.js';
import { AGENTS_EVENT_TYPES } from '../agents/agents.events.js';
import { AUTH_EVENT_TYPES } from '../auth/auth.events.js';
import { BILLING_EVENT_TYPES } from '../billing/billing.events.js';
import { ORGANIZATIONS_EVENT_TYPES } from '../organizations/organizations.events.js';
import { KNOWLEDGE_EVENT_TYPES } from '../knowledge/knowledge.events.js';
import { LEDGER_EVENT_TYPES } from '../ledger/ledger.events.js';
import { PAYABLES_EVENT_TYPES } from '../payables/payables.events.js';
import { RECEIVABLES_EVENT_TYPES } from '../receivables/receivables.events.js';
import { JITTER, RETRY_DELAYS_SECONDS } from './retry-schedule.js';
import { WEBHOOKS_EVENT_TYPES } from './webhooks.events.js';

/**
 * Every event type of every module: what endpoints can subscribe to, served at GET /v1/webhooks/event-types
 * and listed in the OpenAPI document (a component schema `WebhookEvent.<type>.v<version>` each). A module that
 * emits events adds its `<module>.events.ts` list here.
 */
export const EVENT_CATALOG: readonly DomainEventType[] = [
  ...ORGANIZATIONS_EVENT_TYPES,
  ...BILLING_EVENT_TYPES,
  ...AUTH_EVENT_TYPES,
  ...LEDGER_EVENT_TYPES,
  ...PAYABLES_EVENT_TYPES,
  ...RECEIVABLES_EVENT_TYPES,
  ...WEBHOOKS_EVENT_TYPES,
  ...AGENTS_EVENT_TYPES,
  ...KNOWLEDGE_EVENT_TYPES,
];

/** The test event of POST .../endpoints/{endpointId}/ping: sent to that endpoint only, whatever its event types. */
export const PING_EVENT_TYPE = 'ping';

/** The ping as an event type: not in the catalog (no endpoint subscribes to it), but its body is documented too. */
export const PING_EVENT: DomainEventType = {
  type: PING_EVENT_TYPE,
  version: 1,
  category: 'organization',
  description: 'A test event that POST /v1/orgs/{orgId}/webhooks/endpoints/{endpointId}/ping sends to that endpoint only',
  payloadSchema: {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    type: 'object',
    required: ['endpointId', 'message'],
    additionalProperties: false,
    properties: {
      endpointId: { type: 'string', format: 'uuid', description: 'The endpoint pinged' },
      message: { type: 'string', description: 'A fixed text' },
    },
  },
  example: { endpointId: '5b8e2c1d-7a4f-4e3b-9c2d-1f0e8a7b6c5d', message: 'ping from OmniZen' },
};

/** Every body a delivery can carry: the catalog's events and the ping. */
export const DELIVERED_EVENTS: readonly DomainEventType[] = [...EVENT_CATALOG, PING_EVENT];

/** The component schema of an event's delivered body in the OpenAPI document. */
export const bodySchemaName = (type: string, version: number): string => `WebhookEvent.${type}.v${version}`;

const known = new Set(EVENT_CATALOG.map((e) => e.type));
export const isKnownEventType = (type: string): boolean => known.has(type);

/**
 * The body of every delivery (Standard Webhooks: `type`, `timestamp`, `data`), plus the event's stable id,
 * payload version and organization.
 */
export interface WebhookBody {
  id: string;
  type: string;
  version: number;
  timestamp: string;
  organizationId: string;
  data: Record<string, unknown>;
}

/** OpenAPI 3.0 has no `webhooks` section: each event's delivered body is a component schema instead. */
/**
 * A JSON Schema (draft 2020-12) as OpenAPI 3.0 writes it: `type: ['string', 'null']` becomes `type: 'string',
 * nullable: true` (3.0 has no type arrays and no "null" type), in nested schemas too.
 */
function asOpenApi30(schema: unknown): unknown {
  if (Array.isArray(schema)) return schema.map(asOpenApi30);
  if (!schema || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(schema)) out[key] = key === 'example' || key === 'enum' ? value : asOpenApi30(value);
  if (Array.isArray(out.type)) {
    const types = (out.type as string[]).filter((t) => t !== 'null');
    if (types.length < (out.type as string[]).length) out.nullable = true;
    out.type = types.length === 1 ? types[0] : undefined;
    if (out.type === undefined) delete out.type;
  }
  return out;
}

/**
 * An example of a property's own type and format, for a property the event's example leaves out or shows as null (an
 * example must match its schema: `lint:openapi` refuses one that does not).
 */
function placeholder(schema: Record<string, unknown>): unknown {
  if (Array.isArray(schema.enum) && schema.enum.length) return schema.enum.find((v) => v !== null) ?? null;
  switch (schema.type) {
    case 'integer':
    case 'number':
      return typeof schema.minimum === 'number' ? Math.max(schema.minimum, 1) : 1;
    case 'boolean':
      return true;
    case 'array':
      return [];
    case 'object':
      return {};
  }
  switch (schema.format) {
    case 'uuid':
      return '3d6f0a2b-1c4e-4f8a-9b7d-2e5c8a1f0b3d';
    case 'date-time':
      return '2026-03-02T09:30:00.000Z';
    case 'date':
      return '2026-03-02';
  }
  return 'text';
}

export function eventBodySchema(e: DomainEventType): Record<string, unknown> {
  const { $schema: _dialect, ...payload } = asOpenApi30(e.payloadSchema) as Record<string, unknown>;
  // each payload property shows the example's value (OpenAPI: every property has an example)
  const properties = Object.fromEntries(Object.entries((payload.properties ?? {}) as Record<string, Record<string, unknown>>)
    .map(([name, schema]) => [name, { ...schema, example: schema.example ?? e.example[name] ?? placeholder(schema) }]));
  return {
    type: 'object',
    description: `Webhook body of ${e.type} (version ${e.version}): ${e.description}`,
    required: ['id', 'type', 'version', 'timestamp', 'organizationId', 'data'],
    properties: {
      id: { type: 'string', description: 'Stable id of the event (evt_...), the same for every endpoint and attempt', example: 'evt_4711' },
      type: { type: 'string', enum: [e.type], description: 'The event type', example: e.type },
      version: { type: 'integer', enum: [e.version], description: 'Version of the payload schema', example: e.version },
      timestamp: { type: 'string', format: 'date-time', description: 'When the change happened (its transaction)', example: '2026-03-02T09:30:00.000Z' },
      organizationId: { type: 'string', format: 'uuid', description: 'The organization it happened in', example: '9e4c1a2b-3d5f-4a6b-8c7d-0e1f2a3b4c5d' },
      data: { ...payload, properties, description: 'The payload', example: e.example },
    },
    example: { id: 'evt_4711', type: e.type, version: e.version, timestamp: '2026-03-02T09:30:00.000Z', organizationId: '9e4c1a2b-3d5f-4a6b-8c7d-0e1f2a3b4c5d', data: e.example },
  };
}

/** 5 → "5 s", 300 → "5 min", 7200 → "2 h". */
const duration = (seconds: number): string => (seconds < 60 ? `${seconds} s` : seconds < 3600 ? `${seconds / 60} min` : `${seconds / 3600} h`);

/**
 * A delivery as OpenAPI 3.0 describes an outgoing request: a callback of the operation that creates the endpoint, POSTed
 * to the URL given in its body, carrying one of the delivered bodies (told apart by `type`) with the Standard Webhooks
 * headers. Any 2xx answer acknowledges it.
 */
export function deliveryCallbacks(): Record<string, Record<string, Record<string, unknown>>> {
  const refs = Object.fromEntries(DELIVERED_EVENTS.map((e) => [e.type, `#/components/schemas/${bodySchemaName(e.type, e.version)}`]));
  const header = (name: string, description: string, example: string) => ({ in: 'header', name, required: true, description, schema: { type: 'string' }, example });
  return {
    delivery: {
      '{$request.body#/url}': {
        post: {
          summary: 'One event delivered to the endpoint, signed (Standard Webhooks)',
          description: 'Sent for every event type the endpoint subscribes to (all when it names none), and for a ping. Verify '
            + 'webhook-signature over `${webhook-id}.${webhook-timestamp}.${body}` with the endpoint\'s secret (during a rotation\'s '
            + 'overlap, with either secret). Any 2xx answer within the timeout (WEBHOOKS_TIMEOUT_MS, 15 s by default) acknowledges '
            + `the delivery. Anything else is tried again, with the same webhook-id, after ${RETRY_DELAYS_SECONDS.map(duration).join(', ')} `
            + `(each counted from the attempt before, up to ${JITTER * 100} % later); then the message is failed (it can be replayed). `
            + '410 disables the endpoint. Deduplicate by webhook-id.',
          security: [], // no bearer token: the signature headers authenticate a delivery
          parameters: [
            header('webhook-id', 'The message id: the same on every attempt and replay of one message', 'msg_4f0c8b1a2d3e4f5a6b7c8d9e0f1a2b3c'),
            header('webhook-timestamp', 'When this attempt was signed, in seconds since the epoch', '1772443800'),
            header('webhook-signature', 'v1,<base64 HMAC-SHA256>, one per signing secret, space separated', 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4='),
          ],
          requestBody: {
            required: true,
            content: { 'application/json': { schema: { oneOf: Object.values(refs).map(($ref) => ({ $ref })), discriminator: { propertyName: 'type', mapping: refs } } } },
          },
          responses: {
            '200': { description: 'Any 2xx status acknowledges the delivery' },
            '410': { description: 'Gone: the endpoint is disabled and receives nothing more until it is enabled again' },
            default: { description: 'Any other status, or no answer in time: the delivery is retried' },
          },
        },
      },
    },
  };
}
