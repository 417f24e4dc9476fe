// Examples of the main ledger operations in the OpenAPI document (a test validates each against its schema).

const CASH = '0b6f4a6e-2b1d-4c55-8f0e-1a2b3c4d5e01';
const CAPITAL = '0b6f4a6e-2b1d-4c55-8f0e-1a2b3c4d5e02';

export const POST_JOURNAL_ENTRY_EXAMPLE = {
  date: '2026-01-02',
  memo: 'Share capital paid in',
  source: 'manual',
  idempotencyKey: 'capital-2026-01',
  lines: [{ accountId: CASH, debit: '10000.00' }, { accountId: CAPITAL, credit: '10000.00' }],
};

const line = (lineNo: number, accountId: string, accountCode: string, debit: string, credit: string) => ({
  lineNo, accountId, accountCode, currency: 'EUR', debit, credit, rate: '1.0000000000', baseDebit: debit, baseCredit: credit,
  taxCodeId: null, taxRole: null, description: null, workspaceId: null, counterpartyType: null, counterpartyId: null, isRounding: false,
});

export const JOURNAL_ENTRY_EXAMPLE = {
  id: '5a0f3c9e-7d2b-4e61-9c3a-8b7e6d5c4b3a',
  date: '2026-01-02',
  memo: 'Share capital paid in',
  source: 'manual',
  sourceRef: null,
  reversesEntryId: null,
  reversedByEntryId: null,
  idempotencyKey: 'capital-2026-01',
  baseCurrency: 'EUR',
  totalBase: '10000.00',
  createdBy: '9d3c1f0e-4b6a-4f2d-8e7c-6a5b4c3d2e1f',
  createdAt: '2026-01-02T09:30:00.000Z',
  lines: [line(1, CASH, '1100', '10000.00', '0.00'), line(2, CAPITAL, '3100', '0.00', '10000.00')],
};

export const TRIAL_BALANCE_EXAMPLE = {
  asOf: '2026-01-31',
  baseCurrency: 'EUR',
  rows: [
    { accountId: CASH, code: '1100', name: 'Cash', type: 'asset', debit: '10000.00', credit: '0.00' },
    { accountId: CAPITAL, code: '3100', name: 'Share capital', type: 'equity', debit: '0.00', credit: '10000.00' },
  ],
  totalDebit: '10000.00',
  totalCredit: '10000.00',
  balanced: true,
};
