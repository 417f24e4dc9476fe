import { Injectable } from '@nestjs/common';

/**
 * The one interface the application speaks to language models through: chat completions (with tools and
 * streaming) and embeddings. `OpenAiCompatibleProvider` implements it over the OpenAI-compatible HTTP API
 * (OpenAI, Azure OpenAI, vLLM, Ollama, a LiteLLM proxy), so a test double or another vendor plugs in here.
 */
export interface LlmProvider {
  chat(request: ChatRequest, options?: CallOptions): Promise<ChatResult>;
  embed(request: EmbeddingRequest, options?: CallOptions): Promise<EmbeddingResult>;
}

export type ChatMessage =
  | { role: 'system' | 'user'; content: string }
  | { role: 'assistant'; content: string | null; toolCalls?: ToolCall[] }
  | { role: 'tool'; toolCallId: string; content: string };

export interface ToolCall {
  id: string;
  name: string;
  /** the arguments as the model wrote them (JSON text, possibly invalid) */
  arguments: string;
}

export interface ToolDefinition {
  name: string;
  description: string;
  /** JSON Schema of the arguments */
  parameters: Record<string, unknown>;
}

export interface ChatRequest {
  model: string;
  /** a reasoning model (ai.models.reasoning): asked for max_completion_tokens, not max_tokens, and with no temperature */
  reasoning?: boolean;
  messages: ChatMessage[];
  tools?: ToolDefinition[];
  temperature?: number;
  maxOutputTokens?: number;
  /** stream the answer; `onToken` receives each content delta as it arrives */
  stream?: boolean;
  onToken?: (delta: string) => void;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** Tokens by usage type, as the provider reported them. `input` excludes cached input. */
export interface TokenUsage {
  input: number;
  output: number;
  cachedInput: number;
  cacheWrite: number;
}

export interface ChatResult {
  content: string | null;
  toolCalls: ToolCall[];
  /** null: the provider reported none (the caller counts with a tokenizer) */
  usage: TokenUsage | null;
  finishReason: string | null;
  /** streamed calls: ms from the request to the first content or tool-call chunk */
  timeToFirstTokenMs: number | null;
}

export interface EmbeddingRequest {
  model: string;
  input: string[];
  /** ask for this many dimensions (models that can shorten their embeddings, e.g. text-embedding-3-*) */
  dimensions?: number;
}

export interface EmbeddingResult {
  vectors: number[][];
  usage: TokenUsage | null;
}

/** What went wrong with a provider call, as a run's error class names it. */
export type LlmErrorClass = 'provider_rate_limited' | 'provider_error' | 'timeout' | 'cancelled';

/** What had arrived of a failed call's answer. */
export interface ReceivedOutput {
  content: string;
  toolCalls: ToolCall[];
  /** the usage the provider reported before the failure (a stream's last chunk), if it did */
  usage: TokenUsage | null;
}

/** A failed provider call. Its message never carries the key or the provider's error body (which may echo it). */
export class LlmError extends Error {
  /**
   * Set when the provider may bill the failed call: it had the request (its answer had begun, or the call was cut
   * while waiting for it: cancelled, timed out), so it bills the input and what it generated; this is what had
   * arrived of the answer. Unset when it answered an error status or was never reached (nothing billed).
   */
  received?: ReceivedOutput;

  constructor(
    readonly errorClass: LlmErrorClass,
    message: string,
    /** HTTP status of the provider's answer, when there was one */
    readonly status?: number,
    /** Retry-After of a 429/503, in ms */
    readonly retryAfterMs?: number,
  ) {
    super(message);
  }

  /** 429 and 5xx are worth retrying; a timeout, a cancellation or another 4xx is not. */
  get retryable(): boolean {
    return this.errorClass === 'provider_rate_limited' || (this.errorClass === 'provider_error' && (this.status === undefined || this.status >= 500));
  }
}

/**
 * How many bytes of content and tool calls (ids, names, arguments, TOOL_CALL_OVERHEAD_BYTES each) an answer may hold per output token the call allows (maxOutputTokens):
 * a token is some 4 bytes of text; 16 leaves room for any tokenizer and any script. An answer past it did not honour
 * maxOutputTokens (an endpoint an organization chose may answer anything): it is cut (AnswerTooLarge).
 */
export const ANSWER_BYTES_PER_TOKEN = 16;
/** The least an answer may hold whatever maxOutputTokens says (a small maxOutputTokens still answers a sentence). */
export const MIN_ANSWER_BYTES = 64 * 1024;
/** The bytes of content and tool-call arguments an answer may hold (without maxOutputTokens: as for 128k tokens). */
export const answerCap = (maxOutputTokens: number | undefined) => Math.max((maxOutputTokens ?? 128_000) * ANSWER_BYTES_PER_TOKEN, MIN_ANSWER_BYTES);

/**
 * The bytes each tool call of an answer counts for against answerCap, on top of its id, name and arguments: a call
 * without them (`{"index":7}` in a stream, `{"id":"","function":{"name":"","arguments":""}}`) still takes an id, a step
 * and a tool message resent to the provider at every later call.
 */
export const TOOL_CALL_OVERHEAD_BYTES = 256;
/**
 * The most tool calls one answer may hold: an answer with more is cut (AnswerTooLarge), whatever their size. The run
 * runs at most MAX_TOOL_CALLS_PER_ANSWER (agents) of them and refuses the rest, each answered an error at every later
 * call: this bounds those.
 */
export const MAX_TOOL_CALLS_AN_ANSWER_HOLDS = 64;

/**
 * The provider's answer passed answerCap, held more than MAX_TOOL_CALLS_AN_ANSWER_HOLDS tool calls, or its body passed
 * the bytes such an answer can take: the read is cut and the answer not used. Not retried: asked again, the endpoint
 * would answer the like, and bill for it again.
 */
export class AnswerTooLarge extends LlmError {
  private constructor(message: string) {
    super('provider_error', message);
  }

  /** Its content and tool calls passed answerCap. */
  static content(cap: number, maxOutputTokens: number | undefined): AnswerTooLarge {
    return new AnswerTooLarge(`the provider's answer passed ${cap} bytes, more than maxOutputTokens (${maxOutputTokens ?? 'unset'}) allows at ${ANSWER_BYTES_PER_TOKEN} bytes a token: cut, not used`);
  }

  /** It held more tool calls than MAX_TOOL_CALLS_AN_ANSWER_HOLDS. */
  static toolCalls(): AnswerTooLarge {
    return new AnswerTooLarge(`the provider's answer held more than ${MAX_TOOL_CALLS_AN_ANSWER_HOLDS} tool calls: cut, not used`);
  }

  /** Its body (framing included: JSON, stream chunks) passed `maxBytes`, before its content did answerCap. */
  static body(maxBytes: number, cap: number, maxOutputTokens: number | undefined): AnswerTooLarge {
    return new AnswerTooLarge(
      `the provider's response body passed ${maxBytes} bytes, more than an answer within maxOutputTokens (${maxOutputTokens ?? 'unset'}, ${cap} bytes of content) takes with its framing: cut, not used`,
    );
  }

  override get retryable(): boolean {
    return false;
  }
}

/** Waits between retries. Injected, so tests move on without sleeping on the wall clock. */
@Injectable()
export class Sleeper {
  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(new LlmError('cancelled', 'the call was cancelled'));
      const timer = setTimeout(() => {
        signal?.removeEventListener('abort', onAbort);
        resolve();
      }, ms);
      const onAbort = () => {
        clearTimeout(timer);
        reject(new LlmError('cancelled', 'the call was cancelled'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }
}

// the timer that cuts a provider call after AI_TIMEOUT_MS (shared with the webhook worker's requests)
export { CallTimer } from '../clock/clock.js';

export interface RetryPolicy {
  maxRetries: number;
  baseMs: number;
  maxMs: number;
}

/**
 * Runs `call`, retrying a 429 or 5xx at most `maxRetries` times: waits Retry-After when the provider sent it,
 * otherwise `baseMs` doubled per attempt; a wait longer than `maxMs` is not waited (the error stands).
 * `onAttemptFailed` sees every failed attempt (the run records them on the step).
 */
export async function withRetries<T>(
  call: () => Promise<T>,
  policy: RetryPolicy,
  sleeper: Sleeper,
  signal?: AbortSignal,
  onAttemptFailed?: (err: LlmError, attempt: number) => void,
): Promise<{ result: T; attempts: number }> {
  for (let attempt = 1; ; attempt++) {
    try {
      return { result: await call(), attempts: attempt };
    } catch (err) {
      if (!(err instanceof LlmError)) throw err;
      onAttemptFailed?.(err, attempt);
      const wait = err.retryAfterMs ?? policy.baseMs * 2 ** (attempt - 1);
      if (!err.retryable || attempt > policy.maxRetries || wait > policy.maxMs) {
        (err as LlmError & { attempts?: number }).attempts = attempt;
        throw err;
      }
      await sleeper.sleep(wait, signal);
    }
  }
}
