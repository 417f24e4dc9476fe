import { describe, expect, it } from '@jest/globals';
import { MAX_TOOL_CALLS_PER_ANSWER, REFUSED_TOOL_CALLS_STEP, resumeConversation } from '../../src/modules/agents/runs.service.js';
import type { RunStepDto } from '../../src/modules/agents/agents.dto.js';

/**
 * A run taken again reads its refused tool calls (one tool_calls_refused step) once each: a step stored before answers
 * were held to 64 tool calls may name some 280,000, and each pending call was looked up through all of them (quadratic).
 * Counted in reads of the stored ids, not in time.
 */
describe('resuming a run past refused tool calls', () => {
  const step = (stepNo: number, kind: string, name: string, status: string, detail: Record<string, unknown>): RunStepDto => ({
    stepNo, kind, name, status, errorClass: status === 'failed' ? 'tool_error' : null, errorMessage: null, startedAt: '', endedAt: '', latencyMs: 0,
    timeToFirstTokenMs: null, streamed: false, attempts: 1, usage: { inputTokens: 0, outputTokens: 0, cachedInputTokens: 0, cacheWriteTokens: 0 },
    tokensCounted: false, cost: '0', prices: null, detail,
  });

  it('reads each refused id a bounded number of times, and leaves the calls not refused pending', () => {
    const N = 3_000;
    const calls = Array.from({ length: N }, (_, i) => ({ id: `call_${i}`, name: 'get_trial_balance', arguments: '{}' }));
    const refusedIds = calls.slice(MAX_TOOL_CALLS_PER_ANSWER).map((c) => c.id);
    let reads = 0;
    const counted = new Proxy(refusedIds, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && /^\d+$/.test(prop)) reads++;
        return Reflect.get(target, prop, receiver);
      },
    });
    const { messages, calls: made, pendingTools } = resumeConversation([
      step(1, 'llm_call', 'gpt-4o', 'succeeded', { content: null, toolCalls: calls }),
      step(2, 'tool_call', REFUSED_TOOL_CALLS_STEP, 'failed', { toolCallIds: counted }),
    ]);
    expect(made).toBe(1);
    expect(pendingTools.map((c) => c.id)).toEqual(calls.slice(0, MAX_TOOL_CALLS_PER_ANSWER).map((c) => c.id));
    expect(messages).toHaveLength(1 + refusedIds.length);
    expect(messages[1]).toMatchObject({ role: 'tool', toolCallId: `call_${MAX_TOOL_CALLS_PER_ANSWER}` });
    // once to answer each, once more to know them: not once per pending call
    expect(reads).toBeLessThanOrEqual(2 * refusedIds.length);
  });
});
