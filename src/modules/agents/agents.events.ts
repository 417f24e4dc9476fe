import type { DomainEventType } from '../../platform/events/events.js';
import { RUN_ERROR_CLASSES } from './agents.dto.js';

const uuid = { type: 'string', format: 'uuid' };
const USAGE = {
  type: 'object', additionalProperties: false, required: ['inputTokens', 'outputTokens', 'cachedInputTokens', 'cacheWriteTokens'],
  properties: { inputTokens: { type: 'integer' }, outputTokens: { type: 'integer' }, cachedInputTokens: { type: 'integer' }, cacheWriteTokens: { type: 'integer' } },
};

/** The domain events the agents module emits (outbox, in the business transaction). */
export const AGENTS_EVENT_TYPES: DomainEventType[] = [
  {
    type: 'agent.run.completed', version: 1, category: 'ai',
    description: 'An agent run finished with an answer (or stopped at its max steps)',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', additionalProperties: false,
      required: ['runId', 'agentId', 'startedBy', 'trigger', 'stopReason', 'steps', 'cost', 'usage', 'latencyMs'],
      properties: {
        runId: uuid, agentId: uuid, startedBy: { type: 'string', format: 'uuid', nullable: true }, trigger: { type: 'string', enum: ['interactive', 'async', 'schedule', 'event'] },
        stopReason: { type: 'string', enum: ['answer', 'max_steps'] }, steps: { type: 'integer' }, cost: { type: 'string', description: 'USD, decimal string' },
        usage: USAGE, latencyMs: { type: 'integer' },
      },
    },
    example: {
      runId: '0b8f4f7e-4c1a-4d3e-9a55-3f1d2c6b7a10', agentId: '5a1c2e3f-9b8d-4c7e-a6f5-1d2e3f4a5b6c', startedBy: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
      trigger: 'interactive', stopReason: 'answer', steps: 3, cost: '0.00042150', usage: { inputTokens: 1200, outputTokens: 180, cachedInputTokens: 0, cacheWriteTokens: 0 }, latencyMs: 2140,
    },
  },
  {
    type: 'agent.run.failed', version: 1, category: 'ai',
    description: 'An agent run failed (provider, timeout, tool, budget, the instance executing it lost) or was cancelled',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', additionalProperties: false,
      required: ['runId', 'agentId', 'startedBy', 'trigger', 'errorClass', 'message', 'steps', 'cost'],
      properties: {
        runId: uuid, agentId: uuid, startedBy: { type: 'string', format: 'uuid', nullable: true }, trigger: { type: 'string', enum: ['interactive', 'async', 'schedule', 'event'] },
        errorClass: { type: 'string', enum: [...RUN_ERROR_CLASSES] },
        message: { type: 'string' }, steps: { type: 'integer' }, cost: { type: 'string' },
      },
    },
    example: {
      runId: '0b8f4f7e-4c1a-4d3e-9a55-3f1d2c6b7a10', agentId: '5a1c2e3f-9b8d-4c7e-a6f5-1d2e3f4a5b6c', startedBy: '7c9e6679-7425-40de-944b-e07fc1f90ae7',
      trigger: 'interactive', errorClass: 'timeout', message: 'the provider did not answer within 60000 ms', steps: 1, cost: '0',
    },
  },
  {
    type: 'ai.budget.threshold_reached', version: 1, category: 'ai',
    description: 'An AI budget reached one of its thresholds for the month (once per budget, threshold and month)',
    payloadSchema: {
      $schema: 'https://json-schema.org/draft/2020-12/schema', type: 'object', additionalProperties: false,
      required: ['budgetId', 'agentId', 'period', 'threshold', 'spentCost', 'spentTokens', 'costLimit', 'tokenLimit'],
      properties: {
        budgetId: uuid, agentId: { type: 'string', format: 'uuid', nullable: true }, period: { type: 'string', description: 'month, YYYY-MM' },
        threshold: { type: 'integer', description: 'percent' }, spentCost: { type: 'string' }, spentTokens: { type: 'integer' },
        costLimit: { type: 'string', nullable: true }, tokenLimit: { type: 'integer', nullable: true },
      },
    },
    example: {
      budgetId: '3d2c1b0a-9f8e-4d7c-b6a5-4f3e2d1c0b9a', agentId: null, period: '2026-12', threshold: 80, spentCost: '80.12000000', spentTokens: 4200000,
      costLimit: '100.0000', tokenLimit: null,
    },
  },
];
