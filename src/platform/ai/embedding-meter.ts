import type { TenantTx } from '../database/database.service.js';

/** What an embedding call is for: the usage report's `purpose`. */
export type EmbeddingPurpose = 'knowledge_ingestion' | 'knowledge_search';

/** An embedding call about to be made: what its budget reservation and its usage row are of. */
export interface EmbeddingCall {
  purpose: EmbeddingPurpose;
  /** the configured embedding model (AI_EMBEDDING_MODEL) */
  model: string;
  /** texts to embed */
  inputs: number;
  /** provider requests they take (batches): the reservation outlives the longest they may take together */
  requests: number;
  /** their tokens, counted with the embedding models' tokenizer: what is reserved */
  inputTokens: number;
  /** the document an ingestion embeds */
  documentId?: string | null;
  /**
   * whose AI usage the call is (the usage report shows it to them): the person who searched, or added the version or
   * asked for the re-index an ingestion embeds; the API key that searched; neither for a service
   */
  by: { userId: string | null; apiKeyId: string | null };
}

/** A call's reservation on the organization's budget (opaque to the caller: it hands it back to `record`). */
export interface EmbeddingReservation {
  readonly call: EmbeddingCall;
  readonly callId: string;
}

/** What a call cost: the tokens the provider reported (counted with the tokenizer for requests that reported none). */
export interface EmbeddingSpend {
  tokens: number;
  /** some request reported no usage: its tokens were counted */
  counted: boolean;
  /** provider requests answered (a failed call may have had some: they are billed) */
  requests: number;
}

/**
 * The AI budgets and usage of embedding calls, implemented by the agents' module (which keeps the budgets and the usage
 * report: EmbeddingUsageService); the knowledge base resolves it at run time, as its provider connection
 * (PROVIDER_CONNECTIONS). Both run in a tenant transaction of the organization as a service (the caller's own may not
 * write: an API key with only :read scopes reads in a read-only transaction), the call's attribution given (`by`).
 */
export interface EmbeddingMeter {
  /**
   * Reserves the call's tokens and cost on the organization's budget until the call's longest duration has passed, or
   * throws the 402 ai.budget_exceeded (nothing reserved: the caller's transaction rolls back).
   */
  reserve(tx: TenantTx, call: EmbeddingCall): Promise<EmbeddingReservation>;
  /**
   * Settles the reservation at what the call spent (nothing: released) and records the call's usage (none when no
   * provider request was answered).
   */
  record(tx: TenantTx, reservation: EmbeddingReservation, spent: EmbeddingSpend): Promise<void>;
}

/** Nest token of the EmbeddingMeter implementation (provided by the agents' module). */
export const EMBEDDING_METER = Symbol('EMBEDDING_METER');
