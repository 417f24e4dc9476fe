import type { Db } from '../database/database.service.js';
import type { ProviderConnection } from './openai-provider.js';

/**
 * Which connection (endpoint and key) an organization's model calls use: its own stored key, else the platform's
 * default (AI_API_KEY). The agents' ProviderKeysService implements it (it keeps the organization's key sealed);
 * the knowledge base's embeddings use the same, so chat and embeddings share one configuration and key handling.
 */
export interface ProviderConnections {
  /** inside a transaction of the organization (a person's, or a privileged job's) */
  connection(db: Db, orgId: string): Promise<ProviderConnection>;
}

/** Nest token of the ProviderConnections implementation (provided by the agents' module). */
export const PROVIDER_CONNECTIONS = Symbol('PROVIDER_CONNECTIONS');
