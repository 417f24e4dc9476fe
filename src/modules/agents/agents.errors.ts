import { AI_BUDGET_ERROR_CODES } from '../../platform/ai/budget-errors.js';
import { defineErrorCodes } from '../../platform/errors/catalog.js';

/** Every code the agents module answers with. */
export const AgentErrors = defineErrorCodes({
  'agent.not_found': { status: 404, description: 'no agent of this organization has this id' },
  'run.not_found': { status: 404, description: 'no run of this agent has this id' },
  'trigger.not_found': { status: 404, description: 'no trigger of this agent has this id' },
  'budget.not_found': { status: 404, description: 'no AI budget of this organization has this id' },
  'provider_key.not_found': { status: 404, description: 'the organization has no provider key' },
  'ai.unknown_model': { status: 422, description: 'the model is not in the catalog, or is not a chat model' },
  'ai.unknown_tool': { status: 422, description: 'a tool is not in the registry (or its module is not installed)' },
  'ai.agent_name_taken': { status: 409, description: 'another agent of the organization has this name' },
  'ai.agent_paused': { status: 409, description: 'the agent is paused' },
  'ai.agent_running': { status: 409, description: 'the agent has runs still executing (running, or cancelled with an LLM call in flight): cancel them and delete it once they end' },
  'ai.no_provider_key': { status: 422, description: 'no provider key: neither the platform (AI_API_KEY) nor the organization has one' },
  ...AI_BUDGET_ERROR_CODES,
  'ai.budget_exists': { status: 409, description: 'the organization, or this agent, already has a budget' },
  'ai.run_finished': { status: 409, description: 'the run is finished: it cannot change' },
  'ai.range': { status: 400, description: 'from is after to' },
  'ai.invalid_messages': { status: 400, description: 'the input messages are empty or malformed' },
  'ai.base_url_invalid': { status: 400, description: 'the provider key\'s baseUrl is not an absolute http(s) URL, or carries credentials' },
  'ai.base_url_not_public': { status: 400, description: 'the provider key\'s baseUrl names a loopback, private or otherwise non-public address' },
});
