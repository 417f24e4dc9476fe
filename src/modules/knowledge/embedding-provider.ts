import OpenAI from 'openai';
import type { AppConfig } from '../../platform/config/config.js';

/**
 * What the knowledge base needs of an embedding model. The agents' LLM provider layer (issue 16,
 * src/platform/ai/) reads the same settings; the two are unified there at merge.
 */
export interface EmbeddingProvider {
  readonly model: string;
  readonly dimensions: number;
  /** one unit vector per input, in input order */
  embed(inputs: string[]): Promise<number[][]>;
}

export const EMBEDDING_PROVIDER = Symbol('EMBEDDING_PROVIDER');

/** Inputs per request: OpenAI accepts up to 2,048; smaller batches keep one failure cheap to retry. */
const BATCH = 128;

/** The OpenAI-compatible embeddings endpoint through the `openai` SDK (AI_BASE_URL, AI_API_KEY, AI_TIMEOUT_MS). */
export class OpenAiEmbeddingProvider implements EmbeddingProvider {
  private readonly client: OpenAI | null;
  readonly model: string;
  readonly dimensions: number;

  constructor(config: AppConfig['knowledge']) {
    this.model = config.embeddingModel;
    this.dimensions = config.embeddingDimensions;
    this.client = config.aiApiKey
      ? new OpenAI({ apiKey: config.aiApiKey, baseURL: config.aiBaseUrl, timeout: config.aiTimeoutMs, maxRetries: 2 })
      : null;
  }

  async embed(inputs: string[]): Promise<number[][]> {
    if (!this.client) throw new Error('no embedding provider is configured (AI_API_KEY is not set)');
    const out: number[][] = [];
    for (let i = 0; i < inputs.length; i += BATCH) {
      const res = await this.client.embeddings.create({
        model: this.model, input: inputs.slice(i, i + BATCH), dimensions: this.dimensions, encoding_format: 'float',
      });
      const batch = [...res.data].sort((a, b) => a.index - b.index).map((d) => d.embedding);
      for (const v of batch) {
        if (v.length !== this.dimensions) throw new Error(`the embedding model answered ${v.length} dimensions, ${this.dimensions} were asked for`);
        out.push(normalize(v));
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
