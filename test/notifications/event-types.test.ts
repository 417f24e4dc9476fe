import { describe, expect, it } from '@jest/globals';
import Ajv2020Module from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { AUTH_EVENT_TYPES } from '../../src/modules/auth/auth.events.js';
import { BILLING_EVENT_TYPES } from '../../src/modules/billing/billing.events.js';
import { ORGANIZATIONS_EVENT_TYPES } from '../../src/modules/organizations/organizations.events.js';
import { createTestDatabase } from '../support/database.js';

const Ajv2020 = ((Ajv2020Module as any).default ?? Ajv2020Module) as typeof import('ajv/dist/2020.js').default;
const addFormats = ((addFormatsModule as any).default ?? addFormatsModule) as typeof import('ajv-formats').default;

const DECLARED = [...ORGANIZATIONS_EVENT_TYPES, ...BILLING_EVENT_TYPES, ...AUTH_EVENT_TYPES];
/** Routed event types that modules on other branches emit (payables, receivables, agents, webhooks). */
const EMITTED_ELSEWHERE = ['bill.submitted', 'expense_claim.submitted', 'invoice.overdue', 'ai.budget.threshold_reached', 'webhook_endpoint.disabled'];

describe('the domain event types of organizations, billing and auth', () => {
  it('are named <entity>.<past-tense verb>, unique, with a JSON Schema their example satisfies', () => {
    const ajv = new Ajv2020({ allErrors: true, strict: false });
    addFormats(ajv);
    expect(new Set(DECLARED.map((e) => e.type)).size).toBe(DECLARED.length);
    for (const e of DECLARED) {
      expect(e.type).toMatch(/^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$/);
      const validate = ajv.compile(e.payloadSchema);
      expect([e.type, validate(e.example) ? [] : validate.errors]).toEqual([e.type, []]);
    }
    expect(DECLARED.map((e) => e.type).sort()).toEqual([
      'member.invited', 'member.joined', 'member.removed', 'member.role_changed', 'organization.deleted', 'payment.failed', 'session.started_from_unknown_device',
      'subscription.canceled', 'subscription.created', 'subscription.trial_ending', 'subscription.updated',
    ]);
  });

  it('the routing table routes only declared types (or those later modules emit), each in its declared category', async () => {
    const db = await createTestDatabase();
    try {
      const { rows } = await db.admin.query('SELECT event_type, category FROM core.notification_routes ORDER BY 1');
      for (const r of rows) {
        const declared = DECLARED.find((e) => e.type === r.event_type);
        if (declared) expect([r.event_type, r.category]).toEqual([r.event_type, declared.category]);
        else expect(EMITTED_ELSEWHERE).toContain(r.event_type);
      }
      // at least: invitation, role change, unknown device, trial ending, payment failed, bills, budgets, overdue invoices
      expect(rows.map((r) => r.event_type)).toEqual(expect.arrayContaining([
        'member.invited', 'member.role_changed', 'session.started_from_unknown_device', 'subscription.trial_ending', 'payment.failed',
        'bill.submitted', 'ai.budget.threshold_reached', 'invoice.overdue', 'webhook_endpoint.disabled',
      ]));
    } finally {
      await db.drop();
    }
  });
});
