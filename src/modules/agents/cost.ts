import { Decimal } from '../../platform/decimal.js';
import type { TokenUsage } from '../../platform/ai/llm-provider.js';
import type { Prices } from './agents.repository.js';

const MILLION = new Decimal(1_000_000);

/** Cost in USD of `usage` at `prices` (per million tokens), exact to 8 decimals: what the step stores. */
export function costOf(usage: TokenUsage, prices: Prices): Decimal {
  return prices.input.times(usage.input)
    .plus(prices.output.times(usage.output))
    .plus(prices.cachedInput.times(usage.cachedInput))
    .plus(prices.cacheWrite.times(usage.cacheWrite))
    .div(MILLION)
    .toDecimalPlaces(8, Decimal.ROUND_HALF_UP);
}

/**
 * The most a call can cost: every input token at the dearest input price (uncached, cached or cache write)
 * plus max output tokens, rounded up. What a budget reserves before the call.
 */
export function worstCaseCost(inputTokens: number, maxOutputTokens: number, prices: Prices): Decimal {
  const dearestInput = Decimal.max(prices.input, prices.cachedInput, prices.cacheWrite);
  return dearestInput.times(inputTokens).plus(prices.output.times(maxOutputTokens)).div(MILLION).toDecimalPlaces(8, Decimal.ROUND_UP);
}

/**
 * How a model's input is reserved beyond its o200k_base count (ai.models.input_token_factor, input_token_overhead): its
 * own tokenizer may count more (Anthropic's does), and the provider frames a request (and may add a hidden prompt).
 * Output needs none: the provider stops at max_tokens counted in its own tokens, which the reservation holds.
 */
export interface InputMargin {
  factor: Decimal;
  overhead: number;
}

/** A model outside the catalog (a configured embedding model): the catalog's default, a tokenizer nobody measured. */
export const DEFAULT_INPUT_MARGIN: InputMargin = { factor: new Decimal(2), overhead: 512 };

/** The worst case of a call's input: the tokenizer's count times the model's factor, plus its overhead. */
export const inputWorstCase = (counted: number, margin: InputMargin) => margin.factor.times(counted).ceil().toNumber() + margin.overhead;

export const pricesJson = (p: Prices) => ({
  input: p.input.toFixed(6), output: p.output.toFixed(6), cachedInput: p.cachedInput.toFixed(6), cacheWrite: p.cacheWrite.toFixed(6), effectiveFrom: p.effectiveFrom,
});

export const totalTokens = (u: TokenUsage) => u.input + u.output + u.cachedInput + u.cacheWrite;
