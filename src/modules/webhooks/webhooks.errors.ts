import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the webhooks module answers with. */
export const WebhookErrors = defineErrorCodes({
  'webhook_endpoint.not_found': { status: 404, description: 'no webhook endpoint of this organization has this id' },
  'webhook_message.not_found': { status: 404, description: 'no message to this endpoint has this id' },
  'webhooks.url_invalid': { status: 400, description: 'the URL is not an absolute http(s) URL, or not https where https is required' },
  'webhooks.url_not_public': { status: 400, description: 'the URL names a loopback, private or otherwise non-public address' },
  'webhooks.unknown_event_type': { status: 400, description: 'an event type is not in the catalog (GET /v1/webhooks/event-types)' },
  'webhooks.endpoint_disabled': { status: 409, description: 'the endpoint is disabled: enable it first' },
  'webhooks.too_many_endpoints': { status: 409, description: 'the organization has as many endpoints as it may (WEBHOOKS_MAX_ENDPOINTS): delete one first' },
  'webhooks.message_pending': { status: 409, description: 'the message is still being delivered' },
  'webhooks.secret_taken_on': {
    status: 409,
    description: 'the endpoint\'s signing secret was taken on: a person enabled it in place of the secret\'s receiver on record, no longer owner or admin of the organization or unknown, and whoever was given the secret (that person, or a service key whose rotation left the person before it on record) could have known it and no longer answers for it: its rotation keeps no overlap (omit overlapSeconds or send 0)',
  },
  'webhooks.person_required': {
    status: 403,
    description: 'a service key may not enable an endpoint whose URL or signing secret was set by someone no longer owner or admin of the organization (or by no known person): an owner or admin must enable it, and then answers for it',
  },
});
