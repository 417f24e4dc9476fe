import { Injectable } from '@nestjs/common';
import { Decimal } from '../../platform/decimal.js';
import type { ApiKeyScope } from '../../platform/auth/api-key-scopes.js';
import type { Principal } from '../../platform/auth/principal.js';
import type { RequestMeta, TenantTx } from '../../platform/database/database.service.js';
import type { ToolDefinition } from '../../platform/ai/llm-provider.js';
import { AMOUNT } from '../../platform/http/money.js';
import { ReportsService } from '../ledger/reports.service.js';
import { SemanticService } from '../semantic/semantic.service.js';
import { KnowledgeService } from '../knowledge/knowledge.service.js';

/**
 * What a tool runs with: the claims of the person the run belongs to. `tenant` opens a transaction as that
 * person in the run's organization (begin_request: the policies see them), so a tool can never read more
 * than its user may; `principal` is for tools that open their own (the semantic query's read-only one).
 */
export interface ToolContext {
  principal: Principal;
  /**
   * An API key's scopes (null: a person or a service). A key's transactions run as the role 'service', which the
   * policies let read all of the organization: what a key may read through a tool is decided here (TOOL_KEY_SCOPES).
   */
  keyScopes: readonly string[] | null;
  orgId: string;
  meta: RequestMeta;
  tenant<T>(work: (tx: TenantTx) => Promise<T>): Promise<T>;
  /** the knowledge collections the agent may search (search_knowledge); none: every collection its user may read */
  knowledgeCollectionIds?: string[];
}

export interface AgentTool extends ToolDefinition {
  run(ctx: ToolContext, args: Record<string, unknown>): Promise<unknown>;
}

/** A tool's arguments were wrong: the model is told (as the tool's result) and may try again. */
export class ToolArgumentError extends Error {}

const DATE = /^\d{4}-\d{2}-\d{2}$/;
const date = (v: unknown, name: string, optional = false): string | undefined => {
  if ((v === undefined || v === null) && optional) return undefined;
  if (typeof v !== 'string' || !DATE.test(v)) throw new ToolArgumentError(`${name} must be a date YYYY-MM-DD`);
  return v;
};

/** Rows a query_semantic call hands the model at most (a prompt is not a data export). */
export const AGENT_QUERY_ROW_CAP = 200;
/** Bytes of rows (their text form) a query_semantic call reads at most: about what a tool result may hand the model. */
export const AGENT_QUERY_BYTE_CAP = 64 * 1024;

/**
 * The API key scopes a key needs to use each tool: those of the routes that serve the same data. A tool not named
 * here is closed to keys (as a route that declares no scope is).
 */
export const TOOL_KEY_SCOPES: Readonly<Record<string, readonly ApiKeyScope[]>> = {
  draft_journal_entry: [], // reads nothing
  // as searchKnowledge; a key searches only what a viewer may (KnowledgeService's KEY_KNOWLEDGE_ROLE)
  search_knowledge: ['knowledge:read'],
  get_trial_balance: ['ledger:read'],
  get_profit_and_loss: ['ledger:read'],
  list_open_invoices: ['receivables:read'],
  list_open_bills: ['payables:read'],
  // as querySemanticLayer: any semantic view (the general ledger, open receivables and payables, revenue by customer, cash flow)
  query_semantic: ['semantic:read'],
};

/** The tools agents may be given. No tool posts, pays or deletes: draft_journal_entry only proposes. */
@Injectable()
export class ToolRegistry {
  private readonly tools = new Map<string, AgentTool>();

  constructor(semantic: SemanticService, reports: ReportsService, knowledge: KnowledgeService) {
    this.register({
      name: 'search_knowledge',
      description: 'Search the organization\'s knowledge base (documents its user may read) by keywords and meaning; answers the best matching passages with their document and score.',
      parameters: {
        type: 'object', additionalProperties: false, required: ['query'],
        properties: { query: { type: 'string', description: 'what to look for' }, k: { type: 'integer', minimum: 1, maximum: 20, description: 'passages to return (default 5)' } },
      },
      run: (ctx, args) => {
        if (typeof args.query !== 'string' || !args.query.trim()) throw new ToolArgumentError('query must be a non-empty string');
        const k = args.k === undefined ? 5 : Number(args.k);
        if (!Number.isInteger(k) || k < 1 || k > 20) throw new ToolArgumentError('k must be an integer from 1 to 20');
        const collectionIds = ctx.knowledgeCollectionIds?.length ? ctx.knowledgeCollectionIds : undefined;
        // as the run's user (or key): searchWith reads only collections they may read, as the search route does; the
        // query is embedded with no transaction open, so a slow provider holds no pooled connection
        return knowledge.searchWith((work) => ctx.tenant(work), { query: args.query as string, k, collectionIds });
      },
    });
    this.register({
      name: 'query_semantic',
      description: 'Run one read-only PostgreSQL SELECT over the semantic views (semantic.v_gl_fact: general ledger lines; semantic.v_agent_metrics). '
        + `Only SELECT over semantic.* with common functions; answers { columns, rows, truncated } with at most ${AGENT_QUERY_ROW_CAP} rows and ${AGENT_QUERY_BYTE_CAP / 1024} KiB of them.`,
      parameters: { type: 'object', additionalProperties: false, required: ['sql'], properties: { sql: { type: 'string', description: 'one SELECT statement' } } },
      run: (ctx, args) => {
        if (typeof args.sql !== 'string' || !args.sql.trim()) throw new ToolArgumentError('sql must be a non-empty string');
        return semantic.query(ctx.principal, ctx.orgId, ctx.meta, args.sql, { rowCap: AGENT_QUERY_ROW_CAP, byteCap: AGENT_QUERY_BYTE_CAP });
      },
    });
    this.register({
      name: 'get_trial_balance',
      description: 'The trial balance: every account\'s debit and credit totals in the base currency, as of a date (default: everything posted).',
      parameters: { type: 'object', additionalProperties: false, properties: { asOf: { type: 'string', description: 'YYYY-MM-DD' } } },
      run: (ctx, args) => {
        const asOf = date(args.asOf, 'asOf', true);
        return ctx.tenant((tx) => reports.trialBalance(tx, asOf));
      },
    });
    this.register({
      name: 'get_profit_and_loss',
      description: 'The profit and loss statement (revenue, expenses, net income) for a date range.',
      parameters: {
        type: 'object', additionalProperties: false, required: ['from', 'to'],
        properties: { from: { type: 'string', description: 'YYYY-MM-DD' }, to: { type: 'string', description: 'YYYY-MM-DD' } },
      },
      run: (ctx, args) => {
        const from = date(args.from, 'from')!;
        const to = date(args.to, 'to')!;
        return ctx.tenant((tx) => reports.profitAndLoss(tx, from, to));
      },
    });
    this.register({
      name: 'draft_journal_entry',
      description: 'Propose a journal entry for a person to review and post. It is NOT posted: the answer is the proposal, checked to balance.',
      parameters: {
        type: 'object', additionalProperties: false, required: ['date', 'memo', 'lines'],
        properties: {
          date: { type: 'string', description: 'YYYY-MM-DD' }, memo: { type: 'string' },
          lines: {
            type: 'array', minItems: 2, maxItems: 50,
            items: {
              type: 'object', additionalProperties: false, required: ['accountCode'],
              properties: { accountCode: { type: 'string' }, debit: { type: 'string' }, credit: { type: 'string' }, description: { type: 'string' } },
            },
          },
        },
      },
      run: async (_ctx, args) => draftJournalEntry(args),
    });
  }

  /** Adds a tool (a module that provides one calls this at init). */
  register(tool: AgentTool): void {
    if (this.tools.has(tool.name)) throw new Error(`a tool named ${tool.name} is already registered`);
    this.tools.set(tool.name, tool);
  }

  get(name: string): AgentTool | undefined {
    return this.tools.get(name);
  }

  list(): AgentTool[] {
    return [...this.tools.values()].sort((a, b) => a.name.localeCompare(b.name));
  }

  /** Why an API key with `keyScopes` may not use tool `name`; null: it may (every other principal, null scopes, may). */
  keyRefusal(name: string, keyScopes: readonly string[] | null): string | null {
    if (!keyScopes) return null;
    const needs = Object.hasOwn(TOOL_KEY_SCOPES, name) ? TOOL_KEY_SCOPES[name] : undefined;
    if (!needs) return `tool ${name} is not open to API keys`;
    const missing = needs.filter((scope) => !keyScopes.includes(scope));
    return missing.length ? `tool ${name} needs the API key scope${missing.length > 1 ? 's' : ''} ${missing.join(', ')}; this key lacks ${missing.length > 1 ? 'them' : 'it'}` : null;
  }

  definitions(names: string[]): ToolDefinition[] {
    return names.map((n) => this.tools.get(n)).filter((t): t is AgentTool => !!t).map(({ name, description, parameters }) => ({ name, description, parameters }));
  }
}

/** Checks a proposed entry and answers it as a proposal; nothing is written. */
export function draftJournalEntry(args: Record<string, unknown>): Record<string, unknown> {
  const entryDate = date(args.date, 'date')!;
  if (typeof args.memo !== 'string' || !args.memo.trim()) throw new ToolArgumentError('memo must be a non-empty string');
  if (!Array.isArray(args.lines) || args.lines.length < 2 || args.lines.length > 50) throw new ToolArgumentError('lines must be 2 to 50 lines');
  let debit = new Decimal(0);
  let credit = new Decimal(0);
  const lines = args.lines.map((l: any, i: number) => {
    if (!l || typeof l.accountCode !== 'string') throw new ToolArgumentError(`lines[${i}].accountCode must be a string`);
    const d = l.debit === undefined ? undefined : String(l.debit);
    const c = l.credit === undefined ? undefined : String(l.credit);
    if ((d === undefined) === (c === undefined)) throw new ToolArgumentError(`lines[${i}] needs exactly one of debit or credit`);
    const amount = (d ?? c)!;
    if (!AMOUNT.test(amount) || new Decimal(amount).isZero()) throw new ToolArgumentError(`lines[${i}] amount must be a positive decimal string`);
    if (d) debit = debit.plus(d);
    else credit = credit.plus(c!);
    return { accountCode: l.accountCode, debit: d ?? null, credit: c ?? null, description: typeof l.description === 'string' ? l.description : null };
  });
  return {
    status: 'proposed', posted: false, date: entryDate, memo: args.memo, lines,
    balanced: debit.eq(credit), totalDebit: debit.toFixed(), totalCredit: credit.toFixed(),
    note: 'A proposal only: a person reviews it and posts it with POST /ledger/journal-entries.',
  };
}
