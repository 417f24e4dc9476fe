import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { LlmError, Sleeper, withRetries } from '../../platform/ai/llm-provider.js';
import { createLlmProvider, platformConnection, type ProviderConnection } from '../../platform/ai/openai-provider.js';
import { PROVIDER_CONNECTIONS, type ProviderConnections } from '../../platform/ai/provider-connections.js';
import { APP_CONFIG, type AppConfig } from '../../platform/config/config.js';
import type { Db } from '../../platform/database/database.service.js';

/** Inputs per request: OpenAI accepts up to 2,048; smaller batches keep one failure cheap to retry. */
const BATCH = 128;

/**
 * The knowledge base's embeddings, through src/platform/ai's one provider interface (LlmProvider.embed over the
 * OpenAI-compatible API) with the agents' configuration and key handling: the organization's own key (sealed,
 * opened by the agents' ProviderKeysService) or the platform's default (AI_BASE_URL, AI_API_KEY, AI_TIMEOUT_MS),
 * retried on 429/5xx as the agents' calls are (AI_MAX_RETRIES ...). The model and dimension (AI_EMBEDDING_MODEL,
 * AI_EMBEDDING_DIMENSIONS) are recorded on every chunk, so a change of either re-embeds rather than mixing spaces.
 */
@Injectable()
export class KnowledgeEmbeddings {
  readonly model: string;
  readonly dimensions: number;
  private connections?: ProviderConnections | null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly moduleRef: ModuleRef,
    private readonly sleeper: Sleeper,
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
   * One unit vector per input, in input order (ingestion calls it between its transactions: the provider may be slow).
   * An answer of another number of vectors than the batch's inputs, or of a vector that is not `dimensions` finite
   * numbers, is the provider's error (LlmError provider_error): one vector too few or too many would shift every
   * later chunk onto another's vector.
   */
  async embed(connection: ProviderConnection, inputs: string[]): Promise<number[][]> {
    const provider = createLlmProvider(connection);
    const { maxRetries, retryBaseMs, retryMaxMs } = this.config.ai;
    const out: number[][] = [];
    for (let i = 0; i < inputs.length; i += BATCH) {
      const batch = inputs.slice(i, i + BATCH);
      const { result } = await withRetries(() => provider.embed({ model: this.model, input: batch, dimensions: this.dimensions }),
        { maxRetries, baseMs: retryBaseMs, maxMs: retryMaxMs }, this.sleeper);
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
    return out;
  }
}

/** Unit length, so cosine similarity is a dot product (the real[] path ranks by it). */
export function normalize(v: number[]): number[] {
  const norm = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return norm === 0 ? v : v.map((x) => x / norm);
}
