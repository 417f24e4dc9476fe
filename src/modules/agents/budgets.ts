import type { TenantTx } from '../../platform/database/database.service.js';
import { Decimal } from '../../platform/decimal.js';
import type { AppError } from '../../platform/errors/app-error.js';
import { emitEvent } from '../../platform/events/events.js';
import { AgentErrors } from './agents.errors.js';
import { agentsRepository as repo } from './agents.repository.js';

// What every AI call's budgets share (an agent's LLM call: RunsService; an embedding call: EmbeddingUsageService): the
// refusal of a reservation, and the settlement with its threshold events. The reservations are ai.reserve_budget's and
// ai.extend_reservation's (agentsRepository); `agentId` null: only the budget of the whole organization applies.

/** A budget's answer to a reservation (ai.reserve_budget, ai.extend_reservation: what was asked of it). */
export interface ReservationRow {
  budget_id: string;
  ok: boolean;
  cost_left: Decimal | null;
  tokens_left: bigint | null;
  asked_cost?: Decimal;
  asked_tokens?: bigint;
}

/**
 * The 402 ai.budget_exceeded of the first budget among `rows` that refused (undefined: none did), naming the budget, what
 * the call (`what`) may cost and what is left. `asked`: what was asked of every budget, unless the row says otherwise.
 */
export function budgetRefusal(rows: ReservationRow[], asked: { cost: Decimal; tokens: number }, what: string): AppError | undefined {
  const no = rows.find((r) => !r.ok);
  if (!no) return undefined;
  // what was asked of the budget that refused (an extension asks a budget the call held none on the whole)
  const ask = no.asked_cost === undefined ? asked : { cost: new Decimal(no.asked_cost.toString()), tokens: Number(no.asked_tokens) };
  const costLeft = no.cost_left === null ? null : new Decimal(no.cost_left.toString()).toFixed(8);
  const tokensLeft = no.tokens_left === null ? null : Number(no.tokens_left);
  return AgentErrors.error('ai.budget_exceeded',
    `the ${what} does not fit in budget ${no.budget_id}: it may cost up to ${ask.cost.toFixed(8)} USD / ${ask.tokens} tokens; left ${costLeft === null ? 'unlimited' : `${costLeft} USD`}, ${tokensLeft === null ? 'unlimited' : `${tokensLeft} tokens`}`,
    { budgetId: no.budget_id, costLeft, tokensLeft, callCost: ask.cost.toFixed(8), callTokens: ask.tokens });
}

/** Settles call `callId` at `cost`/`tokens` and emits each threshold crossed now (once per budget, threshold and month: the UPDATE marks it). */
export async function settleBudgets(tx: TenantTx, agentId: string | null, callId: string, cost: Decimal, tokens: number, now: Date): Promise<void> {
  for (const t of await repo.settle(tx.db, callId, cost, tokens, agentId, now)) {
    await emitEvent(tx, 'ai.budget.threshold_reached', {
      budgetId: t.budget_id, agentId: t.agent_id, period: new Date(t.period).toISOString().slice(0, 7), threshold: t.threshold,
      spentCost: new Decimal(t.spent_cost.toString()).toFixed(8), spentTokens: Number(t.spent_tokens),
      costLimit: t.cost_limit === null ? null : new Decimal(t.cost_limit.toString()).toFixed(4), tokenLimit: t.token_limit === null ? null : Number(t.token_limit),
    });
  }
}
