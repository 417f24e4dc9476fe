import type { DomainEventType } from '../../platform/events/events.js';

const UUID = { type: 'string', format: 'uuid' };
const DATE = { type: 'string', format: 'date' };

/** The domain events the ledger emits, in the business transaction of each change (journal.service.ts, ledger.service.ts). */
export const LEDGER_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'journal_entry.posted',
    version: 1,
    category: 'finance',
    description: 'A journal entry was posted (through the API, a batch, a reversal, a revaluation or a year-end close). '
      + 'A replayed posting (same idempotency key) emits nothing. Read the lines with GET /v1/orgs/{orgId}/ledger/journal-entries/{entryId}.',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['entryId', 'date', 'source'],
      additionalProperties: false,
      properties: {
        entryId: { ...UUID, description: 'The posted entry' },
        date: { ...DATE, description: 'Its accounting date' },
        source: { type: 'string', enum: ['manual', 'invoice', 'bill', 'payment', 'system', 'year_end', 'opening_balance'], description: 'What posted it' },
        memo: { type: 'string', description: 'Its memo, when it has one' },
        sourceRef: { type: 'string', description: "The source document's reference, when it has one" },
        reversesEntryId: { ...UUID, description: 'The entry it reverses, when it is a reversal' },
      },
    },
    example: { entryId: '0b9f3c7e-5d1a-4a52-9a43-2f1d8f0e6c11', date: '2026-03-02', source: 'manual', memo: 'Office rent March', sourceRef: 'INV-7' },
  },
  {
    type: 'period.closed',
    version: 1,
    category: 'finance',
    description: 'A fiscal period was closed: nothing can be posted into it until it is reopened.',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['periodId', 'fiscalYearId', 'startDate', 'endDate'],
      additionalProperties: false,
      properties: {
        periodId: { ...UUID, description: 'The closed period' },
        fiscalYearId: { ...UUID, description: 'Its fiscal year' },
        startDate: { ...DATE, description: 'First day of the period' },
        endDate: { ...DATE, description: 'Last day of the period' },
      },
    },
    example: { periodId: '5a0e4d1c-2b8f-4e7a-9c3d-6f1e2a3b4c5d', fiscalYearId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', startDate: '2026-03-01', endDate: '2026-03-31' },
  },
  {
    type: 'period.reopened',
    version: 1,
    category: 'finance',
    description: 'A closed fiscal period was reopened: entries can be posted into it again (a fiscal year reopened emits fiscal_year.reopened instead, for all its periods).',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['periodId', 'fiscalYearId', 'startDate', 'endDate'],
      additionalProperties: false,
      properties: {
        periodId: { ...UUID, description: 'The reopened period' },
        fiscalYearId: { ...UUID, description: 'Its fiscal year' },
        startDate: { ...DATE, description: 'First day of the period' },
        endDate: { ...DATE, description: 'Last day of the period' },
      },
    },
    example: { periodId: '5a0e4d1c-2b8f-4e7a-9c3d-6f1e2a3b4c5d', fiscalYearId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', startDate: '2026-03-01', endDate: '2026-03-31' },
  },
  {
    type: 'fiscal_year.closed',
    version: 1,
    category: 'finance',
    description: 'A fiscal year was closed (year-end close): its periods are closed and its result moved to retained earnings.',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['fiscalYearId', 'startDate', 'endDate'],
      additionalProperties: false,
      properties: {
        fiscalYearId: { ...UUID, description: 'The closed fiscal year' },
        startDate: { ...DATE, description: 'First day of the year' },
        endDate: { ...DATE, description: 'Last day of the year' },
        closingEntryId: { ...UUID, description: 'The closing entry, when the year had revenue or expenses (the first one when the close posted several)' },
        closingEntryIds: { type: 'array', items: UUID, description: 'Every closing entry in order, when the close posted several (more than 498 closing lines)' },
      },
    },
    example: { fiscalYearId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', startDate: '2026-01-01', endDate: '2026-12-31', closingEntryId: '0b9f3c7e-5d1a-4a52-9a43-2f1d8f0e6c11' },
  },
  {
    type: 'fiscal_year.reopened',
    version: 1,
    category: 'finance',
    description: 'A closed fiscal year was reopened: it and its periods are open again, and its closing entry was reversed (revenue and expense accounts carry the year\'s result again).',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema',
      type: 'object',
      required: ['fiscalYearId', 'startDate', 'endDate'],
      additionalProperties: false,
      properties: {
        fiscalYearId: { ...UUID, description: 'The reopened fiscal year' },
        startDate: { ...DATE, description: 'First day of the year' },
        endDate: { ...DATE, description: 'Last day of the year' },
        reversalEntryId: { ...UUID, description: 'The reversal of the closing entry, when the year had one (the first one when the close posted several)' },
        reversalEntryIds: { type: 'array', items: UUID, description: 'The reversal of each closing entry in order, when the close posted several' },
      },
    },
    example: { fiscalYearId: '7c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f', startDate: '2026-01-01', endDate: '2026-12-31', reversalEntryId: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f' },
  },
];
