/**
 * The code of an AI call (an agent's LLM call, the knowledge base's embedding call) that does not fit in an AI budget: one
 * declaration, spread into the catalog of each module that answers it (AgentErrors, KnowledgeErrors).
 */
export const AI_BUDGET_ERROR_CODES = {
  'ai.budget_exceeded': { status: 402, description: 'the call does not fit in a budget (details name the budget and what is left)' },
} as const;
