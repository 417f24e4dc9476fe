import OpenAI from 'openai';
import { Stream } from 'openai/core/streaming';
import type { ChatCompletion, ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import type { AppConfig } from '../config/config.js';
import { outboundFetch, outboundRefusal } from '../http/outbound.js';
import {
  AnswerTooLarge, answerCap, CallTimer, LlmError, MAX_TOOL_CALLS_AN_ANSWER_HOLDS, TOOL_CALL_OVERHEAD_BYTES, type CallOptions, type ChatRequest, type ChatResult, type EmbeddingRequest, type EmbeddingResult, type LlmProvider, type TokenUsage, type ToolCall,
} from './llm-provider.js';

export interface ProviderConnection {
  baseUrl: string;
  apiKey: string;
  timeoutMs: number;
  /**
   * How requests reach an endpoint an organization chose (organizationEndpointFetch: through the outbound guard);
   * absent: the global fetch, for the platform's own endpoint (AI_BASE_URL, which may well be an internal proxy).
   */
  fetch?: typeof fetch;
}

/**
 * The fetch for an organization's own endpoint (its provider key's baseUrl): a URL a user chose, so, as a
 * webhook's, through the outbound guard (no loopback, private or link-local address unless
 * OUTBOUND_ALLOW_PRIVATE_NETWORKS; names checked on the addresses DNS answers, when connecting) and without
 * following redirects. One per process: its connections are pooled across runs.
 */
export function organizationEndpointFetch(allowPrivateNetworks: boolean): typeof fetch {
  const send = outboundFetch(allowPrivateNetworks);
  return ((input: Parameters<typeof fetch>[0], init?: RequestInit) => send(input, { ...init, redirect: 'manual' })) as typeof fetch;
}

/** The connection of the platform's default key (AI_BASE_URL, AI_API_KEY), or undefined when none is configured. */
export function platformConnection(config: AppConfig): ProviderConnection | undefined {
  return config.ai.apiKey ? { baseUrl: config.ai.baseUrl, apiKey: config.ai.apiKey, timeoutMs: config.ai.timeoutMs } : undefined;
}

/** A client for one connection (the platform's, or an organization's own key and endpoint); `timer` cuts a hung call. */
export function createLlmProvider(connection: ProviderConnection, timer?: CallTimer): LlmProvider {
  return new OpenAiCompatibleProvider(connection, timer);
}

const toUsage = (u: OpenAI.CompletionUsage | undefined | null): TokenUsage | null => {
  if (!u) return null;
  const details = u.prompt_tokens_details as { cached_tokens?: number; cache_write_tokens?: number } | undefined;
  const cached = details?.cached_tokens ?? 0;
  const cacheWrite = details?.cache_write_tokens ?? 0;
  return { input: Math.max(u.prompt_tokens - cached - cacheWrite, 0), cachedInput: cached, cacheWrite, output: u.completion_tokens };
};

/**
 * The OpenAI-compatible chat-completions and embeddings API through the official `openai` SDK, with a
 * configurable base URL. The SDK's own retries are off: the caller retries with its policy and sleeper,
 * recording each attempt. Errors become LlmError with a message of our own: the provider's body is never
 * passed on (a proxy may echo the key in it).
 */
export class OpenAiCompatibleProvider implements LlmProvider {
  private readonly client: OpenAI;

  constructor(private readonly connection: ProviderConnection, private readonly timer: CallTimer = new CallTimer()) {
    this.client = new OpenAI({
      apiKey: connection.apiKey, baseURL: connection.baseUrl, timeout: connection.timeoutMs, maxRetries: 0, ...(connection.fetch ? { fetch: connection.fetch } : {}),
    });
  }

  async chat(request: ChatRequest, options: CallOptions = {}): Promise<ChatResult> {
    // OpenAI's reasoning models (the o-series, the gpt-5 family) take max_completion_tokens, not max_tokens, and only their
    // default temperature: the catalog says which a model is (ai.models.reasoning)
    const reasoning = request.reasoning ?? false;
    const body = {
      model: request.model,
      messages: request.messages.map(toOpenAiMessage),
      ...(request.tools?.length
        ? { tools: request.tools.map((t) => ({ type: 'function' as const, function: { name: t.name, description: t.description, parameters: t.parameters } })) }
        : {}),
      // a reasoning model refuses max_tokens and a temperature other than its default; the others keep max_tokens,
      // which every OpenAI-compatible endpoint knows (vLLM, Ollama, proxies: max_completion_tokens is newer)
      ...(request.temperature !== undefined && !reasoning ? { temperature: request.temperature } : {}),
      ...(request.maxOutputTokens !== undefined ? (reasoning ? { max_completion_tokens: request.maxOutputTokens } : { max_tokens: request.maxOutputTokens }) : {}),
    };
    // a hung stream is cut by our own timer too: the SDK's timeout covers the wait for the response headers
    const timeout = new AbortController();
    const stopTimer = this.timer.start(this.connection.timeoutMs, () => timeout.abort());
    const signal = options.signal ? AbortSignal.any([options.signal, timeout.signal]) : timeout.signal;
    const started = performance.now();
    // what a failed call leaves billed: whether the request went out, the provider answered (200), what of the answer arrived
    let sent = false;
    let answered = false;
    let content = '';
    let usage: TokenUsage | null = null;
    const calls = new Map<number, ToolCall>();
    try {
      // a call cancelled before it is made reaches nobody (nothing billed)
      if (options.signal?.aborted) throw new LlmError('cancelled', 'the call was cancelled');
      sent = true;
      // the answer is read up to what maxOutputTokens allows (answerCap): an endpoint an organization chose may answer
      // anything, and an answer past it is cut (AnswerTooLarge), not held whole in memory; the body itself is cut at the
      // bytes such an answer can take, framing included (a single huge line of a stream, a huge JSON body)
      const cap = answerCap(request.maxOutputTokens);
      if (!request.stream) {
        const response = await this.client.chat.completions.create({ ...body, stream: false }, { signal }).asResponse();
        const text = await readBounded(response, cap * JSON_BYTES_PER_ANSWER_BYTE + BODY_ENVELOPE_BYTES, cap, request.maxOutputTokens);
        let r: ChatCompletion | undefined;
        try {
          r = JSON.parse(text) as ChatCompletion;
        } catch {
          r = undefined;
        }
        if (!r || typeof r !== 'object' || !Array.isArray(r.choices)) throw new LlmError('provider_error', 'the provider answered something that is not a valid completion');
        usage = toUsage(r.usage);
        const choice = r.choices[0];
        const asked = choice?.message.tool_calls ?? [];
        if (asked.length > MAX_TOOL_CALLS_AN_ANSWER_HOLDS) throw AnswerTooLarge.toolCalls();
        const toolCalls: ToolCall[] = asked
          .filter((c) => c.type === 'function')
          .map((c) => ({ id: c.id, name: (c as any).function.name, arguments: (c as any).function.arguments ?? '' }));
        const answerBytes = Buffer.byteLength(choice?.message.content ?? '')
          + toolCalls.reduce((n, c) => n + TOOL_CALL_OVERHEAD_BYTES + Buffer.byteLength(c.id + c.name + c.arguments), 0);
        if (answerBytes > cap) throw AnswerTooLarge.content(cap, request.maxOutputTokens);
        return { content: choice?.message.content ?? null, toolCalls, usage, finishReason: choice?.finish_reason ?? null, timeToFirstTokenMs: null };
      }
      const response = await this.client.chat.completions.create({ ...body, stream: true, stream_options: { include_usage: true } }, { signal }).asResponse();
      answered = true;
      const streamController = new AbortController();
      signal.addEventListener('abort', () => streamController.abort(), { once: true });
      const stream = Stream.fromSSEResponse<ChatCompletionChunk>(
        boundedResponse(response, cap * SSE_BYTES_PER_ANSWER_BYTE + BODY_ENVELOPE_BYTES, cap, request.maxOutputTokens), streamController, this.client,
      );
      // content and tool calls (ids, names, arguments; TOOL_CALL_OVERHEAD_BYTES each) received so far, in bytes (UTF-8)
      let answerBytes = 0;
      let sawContent = false;
      let firstAt: number | null = null;
      let finishReason: string | null = null;
      for await (const chunk of stream as AsyncIterable<ChatCompletionChunk>) {
        if (chunk.usage) usage = toUsage(chunk.usage);
        const choice = chunk.choices?.[0];
        if (!choice) continue;
        const delta = choice.delta ?? {};
        answerBytes += delta.content ? Buffer.byteLength(delta.content) : 0;
        // the tool calls this chunk begins (an index not seen before), counted before any is kept
        const begun = new Set<number>();
        for (const d of delta.tool_calls ?? []) {
          answerBytes += Buffer.byteLength((d.id ?? '') + (d.function?.name ?? '') + (d.function?.arguments ?? ''));
          if (calls.has(d.index) || begun.has(d.index)) continue;
          begun.add(d.index);
          answerBytes += TOOL_CALL_OVERHEAD_BYTES;
          if (calls.size + begun.size > MAX_TOOL_CALLS_AN_ANSWER_HOLDS) {
            streamController.abort();
            throw AnswerTooLarge.toolCalls();
          }
        }
        if (answerBytes > cap) {
          streamController.abort();
          throw AnswerTooLarge.content(cap, request.maxOutputTokens);
        }
        if (delta.content) {
          firstAt ??= performance.now();
          sawContent = true;
          content += delta.content;
          request.onToken?.(delta.content);
        }
        for (const d of delta.tool_calls ?? []) {
          firstAt ??= performance.now();
          const call = calls.get(d.index) ?? { id: '', name: '', arguments: '' };
          if (d.id) call.id = d.id;
          if (d.function?.name) call.name += d.function.name;
          if (d.function?.arguments) call.arguments += d.function.arguments;
          calls.set(d.index, call);
        }
        if (choice.finish_reason) finishReason = choice.finish_reason;
      }
      // the SDK ends a stream quietly when its signal aborts: an answer cut by a cancel or the timeout is not an answer
      if (signal.aborted) throw toLlmError(signal.reason, options.signal, timeout.signal, this.connection.timeoutMs);
      return {
        content: sawContent ? content : null, toolCalls: [...calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => c), usage, finishReason,
        timeToFirstTokenMs: firstAt === null ? null : Math.round(firstAt - started),
      };
    } catch (err) {
      const e = toLlmError(err, options.signal, timeout.signal, this.connection.timeoutMs);
      // the provider bills a call it had: once its answer began, or cut while it was being answered (cancel, timeout)
      // (an answer cut for its size was answered, streamed or not)
      if (answered || e instanceof AnswerTooLarge || (sent && (e.errorClass === 'cancelled' || e.errorClass === 'timeout'))) {
        e.received = { content, toolCalls: [...calls.entries()].sort(([a], [b]) => a - b).map(([, c]) => c), usage };
      }
      throw e;
    } finally {
      stopTimer();
    }
  }

  async embed(request: EmbeddingRequest, options: CallOptions = {}): Promise<EmbeddingResult> {
    try {
      const r = await this.client.embeddings.create({
        model: request.model, input: request.input, encoding_format: 'float', ...(request.dimensions !== undefined ? { dimensions: request.dimensions } : {}),
      }, { signal: options.signal });
      const usage = r.usage ? { input: r.usage.prompt_tokens, output: 0, cachedInput: 0, cacheWrite: 0 } : null;
      const data = [...r.data].sort((a, b) => a.index - b.index);
      // a repeated (or missing) index, even with the right count, would pair a chunk with another input's vector
      if (data.some((d, i) => d.index !== i)) {
        throw new WrongAnswer('provider_error', `the embedding model answered vectors whose indices are not 0 to ${data.length - 1}, each once`);
      }
      return { vectors: data.map((d) => d.embedding as number[]), usage };
    } catch (err) {
      throw toLlmError(err, options.signal, undefined, this.connection.timeoutMs);
    }
  }
}

// the body of an answer is read up to this many bytes per byte of content and tool-call arguments answerCap allows:
// JSON escapes a character in at most 6 bytes (\u0001); a stream frames each delta (a token or so) in a chunk of some
// 150-500 bytes of JSON (OpenAI's with include_usage and obfuscation padding some 320, Azure's with content_filter_results
// some 480), that is up to some 30 bytes per byte answerCap allows (16 a token): 64 leaves room. The stream's bytes are
// parsed as they come, not kept: answerCap bounds what is
const JSON_BYTES_PER_ANSWER_BYTE = 6;
const SSE_BYTES_PER_ANSWER_BYTE = 64;
// and this many bytes more: the answer's envelope (ids, usage, finish reason; a stream's first and last chunks)
const BODY_ENVELOPE_BYTES = 256 * 1024;

/** Reads `response`'s body as text, at most `maxBytes` of it: past them the read is cut (AnswerTooLarge.body). */
async function readBounded(response: Response, maxBytes: number, cap: number, maxOutputTokens: number | undefined): Promise<string> {
  const reader = bounded(response.body, maxBytes, cap, maxOutputTokens).getReader();
  const chunks: Uint8Array[] = [];
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** `response` whose body ends in an error (AnswerTooLarge.body) past `maxBytes`, its read of the provider cut then. */
function boundedResponse(response: Response, maxBytes: number, cap: number, maxOutputTokens: number | undefined): Response {
  return new Response(bounded(response.body, maxBytes, cap, maxOutputTokens), { status: response.status, statusText: response.statusText, headers: response.headers });
}

function bounded(body: ReadableStream<Uint8Array> | null, maxBytes: number, cap: number, maxOutputTokens: number | undefined): ReadableStream<Uint8Array> {
  if (!body) return new ReadableStream({ start: (c) => c.close() });
  const reader = body.getReader();
  let read = 0;
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      const { done, value } = await reader.read();
      if (done) return controller.close();
      read += value.byteLength;
      if (read > maxBytes) {
        await reader.cancel().catch(() => undefined);
        return controller.error(AnswerTooLarge.body(maxBytes, cap, maxOutputTokens));
      }
      controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

function toOpenAiMessage(m: ChatRequest['messages'][number]): ChatCompletionMessageParam {
  switch (m.role) {
    case 'tool':
      return { role: 'tool', tool_call_id: m.toolCallId, content: m.content };
    case 'assistant':
      return {
        role: 'assistant', content: m.content,
        ...(m.toolCalls?.length ? { tool_calls: m.toolCalls.map((c) => ({ id: c.id, type: 'function' as const, function: { name: c.name, arguments: c.arguments } })) } : {}),
      };
    default:
      return { role: m.role, content: m.content };
  }
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const raw = headers?.get('retry-after-ms') ?? undefined;
  if (raw && Number.isFinite(Number(raw))) return Number(raw);
  const seconds = headers?.get('retry-after');
  if (!seconds) return undefined;
  if (Number.isFinite(Number(seconds))) return Number(seconds) * 1000;
  const at = Date.parse(seconds);
  return Number.isNaN(at) ? undefined : Math.max(at - Date.now(), 0);
}

/** The outbound guard refused to connect: trying again would reach the same address, so it is not retried. */
class EndpointRefused extends LlmError {
  override get retryable(): boolean {
    return false;
  }
}

/** The provider answered, but not what was asked (its vectors misnumbered): asked again, it would bill again for the like. */
class WrongAnswer extends LlmError {
  override get retryable(): boolean {
    return false;
  }
}

function toLlmError(err: unknown, callerSignal: AbortSignal | undefined, timeoutSignal: AbortSignal | undefined, timeoutMs: number): LlmError {
  if (err instanceof LlmError) return err;
  if (callerSignal?.aborted) return new LlmError('cancelled', 'the call was cancelled');
  const refused = outboundRefusal(err);
  // the name, not the address it resolved to: a run's error is shown to its viewers
  if (refused) return new EndpointRefused('provider_error', `the provider endpoint ${refused.forTenant}`);
  if (err instanceof OpenAI.APIConnectionTimeoutError || timeoutSignal?.aborted) {
    return new LlmError('timeout', `the provider did not answer within ${timeoutMs} ms`);
  }
  if (err instanceof OpenAI.APIError && typeof err.status === 'number') {
    if (err.status === 429) return new LlmError('provider_rate_limited', 'the provider is rate limiting (429)', 429, retryAfterMs(err.headers as Headers | undefined));
    // redirects are not followed (they could lead the key elsewhere): the endpoint is to be the one it leads to
    if (err.status >= 300 && err.status < 400) return new LlmError('provider_error', `the provider answered ${err.status}, a redirect: set the endpoint it leads to as the base URL`, err.status);
    return new LlmError('provider_error', `the provider answered ${err.status}`, err.status, err.status === 503 ? retryAfterMs(err.headers as Headers | undefined) : undefined);
  }
  if (err instanceof OpenAI.APIUserAbortError) return new LlmError('cancelled', 'the call was cancelled');
  if (err instanceof OpenAI.APIConnectionError) return new LlmError('provider_error', 'the provider could not be reached');
  // a malformed answer or stream
  return new LlmError('provider_error', 'the provider answered something that is not a valid completion');
}
