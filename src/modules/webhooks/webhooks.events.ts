import type { DomainEventType } from '../../platform/events/events.js';

/** The domain events the webhooks module emits (webhook-delivery.service.ts). The notifications module routes this one to admins. */
export const WEBHOOKS_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'webhook_endpoint.disabled',
    // version 2: `url` (the full URL) became `urlOrigin`: the event reaches the organization's other endpoints and its
    // admins' notices, and a URL's path and query can hold a credential (Slack-style hooks). Removing a required field is
    // a breaking change, hence a new version (DomainEventType.version)
    version: 2,
    category: 'organization',
    description: 'The delivery worker disabled a webhook endpoint: it answered 410 Gone, or every delivery to it failed for 5 days. '
      + 'Names the endpoint by id and by its URL\'s origin only (the full URL can hold a credential; version 1 carried it as `url`).',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['endpointId', 'urlOrigin', 'reason'],
      additionalProperties: false,
      properties: {
        endpointId: { type: 'string', format: 'uuid', description: 'The disabled endpoint' },
        urlOrigin: { type: 'string', description: 'The origin of its URL: scheme, host and port (no path, query or credentials)' },
        reason: { type: 'string', enum: ['gone', 'failing'], description: 'gone: it answered 410; failing: it failed for 5 days' },
        failingSince: { type: 'string', format: 'date-time', description: 'The first failure of the run that disabled it (reason failing)' },
      },
    },
    example: { endpointId: '3d6f0a2b-1c4e-4f8a-9b7d-2e5c8a1f0b3d', urlOrigin: 'https://hooks.example.com', reason: 'failing', failingSince: '2026-03-01T10:00:00.000Z' },
  },
];
