import { Inject, Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import type { EmbeddingCall, EmbeddingMeter, EmbeddingReservation, EmbeddingSpend } from '../../platform/ai/embedding-meter.js';
import { Clock } from '../../platform/clock/clock.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { TenantTx } from '../../platform/database/database.service.js';
import { Decimal } from '../../platform/decimal.js';
import { Metrics } from '../../platform/observability/metrics.js';
import { agentsRepository as repo, type Prices } from './agents.repository.js';
import { budgetRefusal, settleBudgets } from './budgets.js';
import { costOf, inputWorstCase, pricesJson, worstCaseCost, type InputMargin } from './cost.js';

/** A reservation as this service hands it out: the call, and the time and prices it was reserved at. */
interface Reserved extends EmbeddingReservation {
  readonly at: Date;
  readonly prices: Prices | null;
}

/**
 * The knowledge base's embedding calls as AI usage of the organization (EmbeddingMeter): reserved on the organization's
 * budget before the provider is called, with an agent's LLM call's functions (ai.reserve_budget with no agent: an agent's
 * budget is its runs'), at the tokens counted plus the margin of the model's input in the catalog (inputWorstCase) and their
 * cost at the catalog's price in effect; refused with the 402 ai.budget_exceeded a run gets. Settled at what the provider
 * reported (ai.settle_budget, its threshold events), and recorded in ai.embedding_usage, which GET /ai/usage reports
 * beside the runs. A model the catalog has no price of costs 0: only a token limit holds it.
 */
@Injectable()
export class EmbeddingUsageService implements EmbeddingMeter {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly clock: Clock,
    private readonly metrics: Metrics,
  ) {}

  async reserve(tx: TenantTx, call: EmbeddingCall): Promise<EmbeddingReservation> {
    const at = new Date(this.clock.now());
    const { prices, margin } = await this.modelAt(tx, call.model, at);
    const tokens = inputWorstCase(call.inputTokens, margin);
    const cost = prices ? worstCaseCost(tokens, 0, prices) : new Decimal(0);
    const callId = randomUUID();
    const rows = await repo.reserve(tx.db, null, callId, cost, tokens, at, this.expiry(at, call.requests));
    const refused = budgetRefusal(rows, { cost, tokens }, `embedding of ${call.inputs} text(s)`);
    if (refused) {
      this.metrics.aiBudgetRefusals.inc();
      throw refused;
    }
    const reserved: Reserved = { call, callId, at, prices };
    return reserved;
  }

  async record(tx: TenantTx, reservation: EmbeddingReservation, spent: EmbeddingSpend): Promise<void> {
    const { call, callId, at, prices } = reservation as Reserved;
    const cost = prices ? costOf({ input: spent.tokens, output: 0, cachedInput: 0, cacheWrite: 0 }, prices) : new Decimal(0);
    // spent on the budgets, also one created since the reservation (or once it expired): the provider had the call
    await settleBudgets(tx, null, callId, cost, spent.tokens, new Date(this.clock.now()));
    if (spent.requests === 0) return; // no request answered: nothing billed, nothing to report
    await repo.addEmbeddingUsage(tx.db, tx.orgId, {
      purpose: call.purpose, modelId: call.model, userId: call.by.userId, apiKeyId: call.by.apiKeyId, documentId: call.documentId ?? null, inputs: call.inputs, requests: spent.requests,
      inputTokens: spent.tokens, tokensCounted: spent.counted, cost, prices: prices && pricesJson(prices), at,
    });
  }

  /**
   * The catalog's prices of `model` in effect at `at` (null when it has none: a model outside the catalog) and the margin
   * its input is reserved with (the catalog's default for a model outside it).
   */
  private async modelAt(tx: TenantTx, model: string, at: Date): Promise<{ prices: Prices | null; margin: InputMargin }> {
    const { prices, margin } = await repo.modelForRuns(tx.db, model);
    return { prices: prices.find((p) => new Date(p.effectiveFrom).getTime() <= at.getTime()) ?? null, margin };
  }

  /** After the longest `requests` provider requests may take one after the other (each retried: RunsService.callExpiry's). */
  private expiry(at: Date, requests: number): Date {
    const ai = this.config.ai;
    return new Date(at.getTime() + Math.max(1, requests) * (ai.timeoutMs + ai.retryMaxMs) * (ai.maxRetries + 1) + 60_000);
  }
}
