import type { AgentTool } from '../agents/tool-registry.js';
import { ToolArgumentError } from '../agents/tool-registry.js';
import { openInvoices } from './receivables.repository.js';
import { UUID } from '../../platform/http/uuid.js';


/** Rows a list_open_* call hands the model at most (a prompt is not a data export). */
export const OPEN_ITEMS_TOOL_MAX = 200;

/** The limit and the optional party filter of a list_open_* tool, checked (a wrong argument is told to the model). */
export function openItemsArgs(args: Record<string, unknown>, partyKey: string): { partyId?: string; overdueOnly: boolean; limit: number } {
  const party = args[partyKey];
  if (party !== undefined && (typeof party !== 'string' || !UUID.test(party))) throw new ToolArgumentError(`${partyKey} must be a uuid`);
  if (args.overdueOnly !== undefined && typeof args.overdueOnly !== 'boolean') throw new ToolArgumentError('overdueOnly must be true or false');
  const limit = args.limit === undefined ? 50 : Number(args.limit);
  if (!Number.isInteger(limit) || limit < 1 || limit > OPEN_ITEMS_TOOL_MAX) throw new ToolArgumentError(`limit must be an integer from 1 to ${OPEN_ITEMS_TOOL_MAX}`);
  return { partyId: party as string | undefined, overdueOnly: args.overdueOnly === true, limit };
}

/**
 * The agents' list_open_invoices tool: today's open receivables (semantic.v_ar_open) read as the run's user (the
 * policies show only their organization's rows), most overdue first.
 */
export const listOpenInvoicesTool: AgentTool = {
  name: 'list_open_invoices',
  description: 'Open customer invoices today (and customer credit, negative), most overdue first: customer, number, dates, currency, total, '
    + 'open amount in the document and the base currency, days past due and aging bucket. Answers { rows, truncated }.',
  parameters: {
    type: 'object', additionalProperties: false,
    properties: {
      customerId: { type: 'string', description: 'only this customer (uuid)' },
      overdueOnly: { type: 'boolean', description: 'only documents past their due date' },
      limit: { type: 'integer', minimum: 1, maximum: OPEN_ITEMS_TOOL_MAX, description: 'rows to return (default 50)' },
    },
  },
  run: (ctx, args) => {
    const q = openItemsArgs(args, 'customerId');
    return ctx.tenant(async (tx) => {
      const rows = await openInvoices(tx.db, { customerId: q.partyId, overdueOnly: q.overdueOnly, limit: q.limit });
      return { rows: rows.slice(0, q.limit), truncated: rows.length > q.limit };
    });
  },
};
