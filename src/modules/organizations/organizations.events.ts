import type { DomainEventType } from '../../platform/events/events.js';

const ROLE = { type: 'string', enum: ['owner', 'admin', 'accountant', 'member', 'viewer'], description: 'a membership role' };
const USER_ID = { type: 'string', minLength: 1, description: 'the user id' };

/** The organization and membership events the organizations module emits (in the transaction that makes the change). */
export const ORGANIZATIONS_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'organization.deleted', version: 1, category: 'organization',
    description: 'The organization was deleted (DELETE /v1/orgs/{orgId}), or went with the erasure of its only member (DELETE /v1/me). '
      + 'Its subscriptions are canceled, in Stripe too; its books stay, and nobody can act in it any more. Its webhook endpoints '
      + 'send nothing more, this event neither: they are disabled (reason organization_deleted).',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['organizationId', 'accountType', 'reason'],
      properties: {
        organizationId: { type: 'string', format: 'uuid' },
        accountType: { type: 'string', enum: ['personal', 'business'] },
        reason: { type: 'string', enum: ['deleted', 'erased'], description: 'deleted by an owner, or gone with the erasure of its person' },
      },
    },
    example: { organizationId: '0b7f6c2e-3d4a-4e5b-8c9d-1a2b3c4d5e6f', accountType: 'business', reason: 'deleted' },
  },
  {
    type: 'member.invited', version: 1, category: 'organization',
    description: 'An admin invited an e-mail address to the organization (the invitation token is never in the event).',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['invitationId', 'email', 'role', 'invitedBy', 'expiresAt'],
      properties: {
        invitationId: { type: 'string', format: 'uuid' }, email: { type: 'string', format: 'email' }, role: ROLE,
        invitedBy: { type: ['string', 'null'], description: 'the inviting user, null for a service key' }, expiresAt: { type: 'string', format: 'date-time' },
      },
    },
    example: { invitationId: '6f1c1d9e-2b0e-4a59-9a3e-1c2d3e4f5a6b', email: 'grace@example.com', role: 'accountant', invitedBy: 'user_123', expiresAt: '2026-12-09T10:00:00.000Z' },
  },
  {
    type: 'member.joined', version: 1, category: 'organization',
    description: 'An invitee accepted an invitation and is now a member.',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['userId', 'email', 'role'],
      properties: { userId: USER_ID, email: { type: 'string', format: 'email' }, role: ROLE },
    },
    example: { userId: 'user_456', email: 'grace@example.com', role: 'accountant' },
  },
  {
    type: 'member.role_changed', version: 1, category: 'organization',
    description: "A member's role changed.",
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['userId', 'previousRole', 'role', 'changedBy'],
      properties: { userId: USER_ID, previousRole: ROLE, role: ROLE, changedBy: { type: ['string', 'null'], description: 'the user who changed it, null for a service key' } },
    },
    example: { userId: 'user_456', previousRole: 'member', role: 'admin', changedBy: 'user_123' },
  },
  {
    type: 'member.removed', version: 1, category: 'organization',
    description: 'A member was removed, or left (`left`: true).',
    payloadSchema: {
      type: 'object', additionalProperties: false, required: ['userId', 'role', 'left'],
      properties: { userId: USER_ID, role: ROLE, left: { type: 'boolean', description: 'the member left by themselves' } },
    },
    example: { userId: 'user_456', role: 'member', left: false },
  },
];
