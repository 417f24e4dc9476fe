import { Inject, Injectable, Logger } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { EMBEDDING_METER, type EmbeddingCall, type EmbeddingMeter, type EmbeddingReservation, type EmbeddingSpend } from '../../platform/ai/embedding-meter.js';
import { LlmError, Sleeper, withRetries } from '../../platform/ai/llm-provider.js';
import { createLlmProvider, platformConnection, type ProviderConnection } from '../../platform/ai/openai-provider.js';
import { PROVIDER_CONNECTIONS, type ProviderConnections } from '../../platform/ai/provider-connections.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Principal } from '../../platform/auth/principal.js';
import { DatabaseService, type Db, type TenantTx } from '../../platform/database/database.service.js';
import { countEmbeddingTokens } from './chunking.js';

/** Inputs per request: OpenAI accepts up to 2,048; smaller batches keep one failure cheap to retry. */
const BATCH = 128;

/**
 * Who writes the AI budget's reservations and settlements and the usage rows of embedding calls, in a transaction of the
 * organization: accounting the provider call needs whoever caused it, also a caller whose own transaction may not write (an
 * API key with only :read scopes reads in a read-only transaction; the ingestion job has no person's). The call names
 * whose usage it is (EmbeddingCall.by).
 */
const METER_PRINCIPAL: Principal = { kind: 'service', name: 'knowledge-embeddings' };

/** Embeddings, and what the call spent (EmbeddingMeter.record). */
export interface Embedded {
  vectors: number[][];
  spent: EmbeddingSpend;
}

/** An embedding call that failed (`cause`'s message), with what its requests answered before the failure spent. */
export class EmbeddingFailed extends Error {
  constructor(cause: unknown, readonly spent: EmbeddingSpend) {
    super((cause as Error).message, { cause });
  }
}

/** What a failed call spent: its requests answered before it failed (nothing for any other error). */
export const spentBy = (err: unknown): EmbeddingSpend => (err instanceof EmbeddingFailed ? err.spent : { tokens: 0, counted: false, requests: 0 });

/**
 * The knowledge base's embeddings, through src/platform/ai's one provider interface (LlmProvider.embed over the
 * OpenAI-compatible API) with the agents' configuration and key handling: the organization's own key (sealed,
 * opened by the agents' ProviderKeysService) or the platform's default (AI_BASE_URL, AI_API_KEY, AI_TIMEOUT_MS),
 * retried on 429/5xx as the agents' calls are (AI_MAX_RETRIES ...). The model and dimension (AI_EMBEDDING_MODEL,
 * AI_EMBEDDING_DIMENSIONS) are recorded on every chunk, so a change of either re-embeds rather than mixing spaces.
 */
@Injectable()
export class KnowledgeEmbeddings {
  private readonly logger = new Logger(KnowledgeEmbeddings.name);
  readonly model: string;
  readonly dimensions: number;
  private connections?: ProviderConnections | null;
  private meters?: EmbeddingMeter | null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly moduleRef: ModuleRef,
    private readonly sleeper: Sleeper,
    private readonly database: DatabaseService,
  ) {
    this.model = config.knowledge.embeddingModel;
    this.dimensions = config.knowledge.embeddingDimensions;
  }

  /**
   * The connection of the organization's calls, read in its transaction. The agents' module provides the key
   * lookup (it imports this module, so the lookup is resolved at run time rather than injected); an application
   * without agents uses the platform's key.
   */
  async connection(db: Db, orgId: string): Promise<ProviderConnection> {
    if (this.connections === undefined) {
      try {
        this.connections = this.moduleRef.get<ProviderConnections>(PROVIDER_CONNECTIONS, { strict: false });
      } catch {
        this.connections = null;
      }
    }
    if (this.connections) return this.connections.connection(db, orgId);
    const platform = platformConnection(this.config);
    if (!platform) throw new Error('no embedding provider key: the platform has none (AI_API_KEY)');
    return platform;
  }

  /**
   * The AI budgets and usage of the organization's calls: the agents' module provides them (EmbeddingUsageService,
   * resolved at run time as the key lookup is); an application without agents has no budgets, and meters nothing.
   */
  private meter(): EmbeddingMeter | null {
    if (this.meters === undefined) {
      try {
        this.meters = this.moduleRef.get<EmbeddingMeter>(EMBEDDING_METER, { strict: false });
      } catch {
        this.meters = null;
      }
    }
    return this.meters;
  }

  /** Tokens of the inputs as the embedding models count them (a chunk's were counted when it was cut: its tokenCount). */
  count(inputs: string[]): number {
    return inputs.reduce((n, text) => n + countEmbeddingTokens(text), 0);
  }

  /**
   * Reserves an embedding call of `inputs` texts of `inputTokens` tokens on the organization's AI budget before the
   * provider is called: the 402 ai.budget_exceeded when it cannot take them (EmbeddingMeter.reserve). Null: nothing to
   * meter (no agents' module). In a transaction of its own as METER_PRINCIPAL (`requestId`: the request's or job's).
   */
  async reserve(orgId: string, requestId: string, call: Omit<EmbeddingCall, 'model' | 'requests'>): Promise<EmbeddingReservation | null> {
    const meter = this.meter();
    if (!meter) return null;
    return this.database.tenant(METER_PRINCIPAL, orgId, { requestId },
      (tx) => meter.reserve(tx, { ...call, model: this.model, requests: Math.ceil(call.inputs / BATCH) }));
  }

  /**
   * Settles the reservation at what the call spent and records its usage (EmbeddingMeter.record), as `reserve` does.
   * Never throws: the provider has answered (and billed), so the caller's answer or index stands; a record that fails is
   * logged, and its reservation is released when it expires (that spend goes unrecorded).
   */
  async record(orgId: string, requestId: string, reservation: EmbeddingReservation | null, spent: EmbeddingSpend): Promise<void> {
    const meter = this.meter();
    if (!reservation || !meter) return;
    try {
      await this.database.tenant(METER_PRINCIPAL, orgId, { requestId }, (tx) => meter.record(tx, reservation, spent));
    } catch (err) {
      this.logger.error({ err, orgId, requestId, spent }, 'the usage of an embedding call could not be recorded');
    }
  }

  /** Whose AI usage a call made in `tx` is: its person, or its API key (a service's: nobody's). */
  static by(tx: TenantTx): EmbeddingCall['by'] {
    const p = tx.principal;
    return { userId: p.kind === 'user' ? p.userId : null, apiKeyId: p.kind === 'apiKey' ? p.keyId : null };
  }

  /**
   * One unit vector per input, in input order (ingestion calls it between its transactions: the provider may be slow),
   * and what the call spent: the tokens each request's answer reported, counted (as the embedding models count them)
   * for one that reported none. An answer of another number of vectors than the batch's inputs, or of a vector that is
   * not `dimensions` finite numbers, is the provider's error (LlmError provider_error): one vector too few or too many
   * would shift every later chunk onto another's vector. A failure is thrown as EmbeddingFailed with what the requests
   * answered before it spent (the provider bills them).
   */
  async embed(connection: ProviderConnection, inputs: string[]): Promise<Embedded> {
    const { maxRetries, retryBaseMs, retryMaxMs } = this.config.ai;
    const out: number[][] = [];
    const spent: EmbeddingSpend = { tokens: 0, counted: false, requests: 0 };
    try {
      const provider = createLlmProvider(connection);
      for (let i = 0; i < inputs.length; i += BATCH) {
        const batch = inputs.slice(i, i + BATCH);
        const { result } = await withRetries(() => provider.embed({ model: this.model, input: batch, dimensions: this.dimensions }),
          { maxRetries, baseMs: retryBaseMs, maxMs: retryMaxMs }, this.sleeper);
        spent.requests++;
        const reported = result.usage?.input;
        if (typeof reported === 'number' && Number.isSafeInteger(reported) && reported >= 0) spent.tokens += reported;
        else {
          spent.tokens += this.count(batch);
          spent.counted = true;
        }
        const vectors: unknown = result.vectors;
        if (!Array.isArray(vectors) || vectors.length !== batch.length) {
          const n = Array.isArray(vectors) ? vectors.length : 'no';
          throw new LlmError('provider_error', `the embedding model answered ${n} vectors for ${batch.length} inputs`);
        }
        for (const v of vectors as unknown[]) {
          if (!Array.isArray(v) || v.length !== this.dimensions) {
            throw new LlmError('provider_error', `the embedding model answered ${Array.isArray(v) ? v.length : 'no'} dimensions, ${this.dimensions} were asked for`);
          }
          if (!v.every((x) => typeof x === 'number' && Number.isFinite(x))) throw new LlmError('provider_error', 'the embedding model answered a vector that is not all finite numbers');
          out.push(normalize(v as number[]));
        }
      }
    } catch (err) {
      throw new EmbeddingFailed(err, spent);
    }
    return { vectors: out, spent };
  }
}

/** Unit length, so cosine similarity is a dot product (the real[] path ranks by it). */
export function normalize(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? v : v.map((x) => x / norm);
}
