import type { DomainEventType } from '../../platform/events/events.js';

/**
 * Security events of the auth module, emitted in the user's personal organization.
 *
 * A "known device" is a hash of the user agent and the client address's network (IPv4 /24, IPv6 /48) that
 * signed in to this account before (core.known_devices). The first sign-in of an account records its device
 * without an event; any later sign-in from a hash not seen before emits `session.started_from_unknown_device`.
 * The payload holds the network prefix, never the full address, and no token.
 */
export const AUTH_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'session.started_from_unknown_device', version: 1, category: 'security',
    description: 'The account signed in from a device (user agent + network) it never signed in from before.',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['userId', 'sessionId', 'userAgent', 'ipPrefix', 'signedInAt', 'method'],
      properties: {
        userId: { type: 'string' }, sessionId: { type: 'string', format: 'uuid' },
        userAgent: { type: 'string', description: 'the user agent, truncated to 200 characters' },
        ipPrefix: { type: 'string', description: 'the network: IPv4 /24 or IPv6 /48, e.g. 203.0.113.0/24' },
        signedInAt: { type: 'string', format: 'date-time' },
        method: { type: 'string', enum: ['password', 'exchange'] },
      },
    },
    example: { userId: 'user_123', sessionId: '0d4c6a3e-8f1b-4c2d-9e7a-5b6c7d8e9f01', userAgent: 'Mozilla/5.0 (Macintosh)', ipPrefix: '203.0.113.0/24', signedInAt: '2026-12-02T08:00:00.000Z', method: 'password' },
  },
];
