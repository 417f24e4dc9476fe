import type { AgentTool } from '../agents/tool-registry.js';
import { OPEN_ITEMS_TOOL_MAX, openItemsArgs } from '../receivables/receivables.tools.js';
import { ledgerRepository } from '../ledger/ledger.repository.js';
import { fixed } from '../ledger/money.js';
import { openBills } from './payables.repository.js';

/**
 * The agents' list_open_bills tool: today's open payables (semantic.v_ap_open: posted vendor bills and approved
 * expense claims with an open amount) read as the run's user, most overdue first.
 */
export const listOpenBillsTool: AgentTool = {
  name: 'list_open_bills',
  description: 'Open vendor bills and expense claims today, most overdue first: party, bill number, dates, currency, total, open amount in the '
    + 'document and the base currency, days past due and aging bucket. Answers { rows, truncated }.',
  parameters: {
    type: 'object', additionalProperties: false,
    properties: {
      vendorId: { type: 'string', description: 'only this vendor (uuid)' },
      overdueOnly: { type: 'boolean', description: 'only documents past their due date' },
      limit: { type: 'integer', minimum: 1, maximum: OPEN_ITEMS_TOOL_MAX, description: 'rows to return (default 50)' },
    },
  },
  run: (ctx, args) => {
    const q = openItemsArgs(args, 'vendorId');
    return ctx.tenant(async (tx) => {
      const rows = await openBills(tx.db, { vendorId: q.partyId, overdueOnly: q.overdueOnly, limit: q.limit });
      // the base amount in the base currency's minor units, as list_open_invoices answers it ("300.00", not the stored "300.0000")
      const units = new Map<string, number>();
      for (const c of new Set(rows.map((r) => r.baseCurrency))) units.set(c, (await ledgerRepository.minorUnits(tx.db, c)) ?? 4);
      return {
        rows: rows.slice(0, q.limit).map((r) => ({ ...r, openBaseAmount: fixed(r.openBaseAmount, units.get(r.baseCurrency) ?? 4) })),
        truncated: rows.length > q.limit,
      };
    });
  },
};
