import { describe, expect, it } from '@jest/globals';
import type { AppConfig } from '../../src/platform/config/config.js';
import { Metrics } from '../../src/platform/observability/metrics.js';

const metricsWith = (orgLabelLimit: number) => new Metrics({ observability: { orgLabelLimit } } as unknown as AppConfig);
const usage = { input: 100, output: 10, cachedInput: 0, cacheWrite: 0 };
/** the samples of one metric as the registry exports them (the text /metrics serves) */
const samples = async (metrics: Metrics, name: string) => (await metrics.scrape()).split('\n').filter((l) => l.startsWith(`${name}{`));

/**
 * The organization label budget (METRICS_ORG_LABEL_LIMIT) was one set for the AI metrics and the active-users gauge,
 * first come first served and never released: the first roll-up (10 minutes after boot) handed it to the first
 * organizations it read, and the AI tokens and cost of every other organization were counted under org="other"
 * (OmniZenTokenUsageSpike, summed by org, blind to them). And the agent label was the raw agent id, unbounded.
 */
describe('metrics: the label budgets of the AI metrics and of the active-users gauge', () => {
  it('the active-users gauge takes no organization label from the AI metrics', async () => {
    const metrics = metricsWith(3);
    metrics.setActiveUsers(['org-a', 'org-b', 'org-c', 'org-d'].map((orgId, i) => ({ orgId, day: i + 1, month: 10 * (i + 1) })));
    metrics.countLlmCall('org-big-ai-spender', 'agent-1', 'gpt-4o', usage, 0.5);
    expect(await samples(metrics, 'omnizen_ai_tokens_total')).toEqual([
      'omnizen_ai_tokens_total{org="org-big-ai-spender",agent="agent-1",model="gpt-4o",type="input"} 100',
      'omnizen_ai_tokens_total{org="org-big-ai-spender",agent="agent-1",model="gpt-4o",type="output"} 10',
    ]);
    expect(await samples(metrics, 'omnizen_ai_cost_usd_total')).toEqual([
      'omnizen_ai_cost_usd_total{org="org-big-ai-spender",agent="agent-1",model="gpt-4o"} 0.5',
    ]);
  });

  it('labels the active-users gauge for the organizations with the most users, the rest summed as other, anew at each roll-up', async () => {
    const metrics = metricsWith(2);
    metrics.setActiveUsers([
      { orgId: 'org-small', day: 1, month: 2 }, { orgId: 'org-big', day: 5, month: 50 },
      { orgId: 'org-mid', day: 3, month: 20 }, { orgId: 'org-tiny', day: 0, month: 1 },
    ]);
    expect(await samples(metrics, 'omnizen_active_users')).toEqual([
      'omnizen_active_users{org="org-big",window="day"} 5',
      'omnizen_active_users{org="org-big",window="month"} 50',
      'omnizen_active_users{org="org-mid",window="day"} 3',
      'omnizen_active_users{org="org-mid",window="month"} 20',
      'omnizen_active_users{org="other",window="day"} 1',
      'omnizen_active_users{org="other",window="month"} 3',
    ]);
    // the next roll-up: another organization grew past them, one went quiet; no label is held past its roll-up
    metrics.setActiveUsers([{ orgId: 'org-small', day: 9, month: 90 }, { orgId: 'org-big', day: 5, month: 50 }]);
    expect(await samples(metrics, 'omnizen_active_users')).toEqual([
      'omnizen_active_users{org="org-small",window="day"} 9',
      'omnizen_active_users{org="org-small",window="month"} 90',
      'omnizen_active_users{org="org-big",window="day"} 5',
      'omnizen_active_users{org="org-big",window="month"} 50',
    ]);
  });

  it('bounds the agent label as the organization label: agents past the budget are counted as other', async () => {
    const metrics = metricsWith(2);
    for (const agent of ['agent-1', 'agent-2', 'agent-3', 'agent-4']) metrics.countLlmCall('org-a', agent, 'gpt-4o', usage, 0.25);
    metrics.countLlmCall('org-b', 'agent-5', 'gpt-4o', usage, 0.25);
    metrics.countLlmCall('org-c', 'agent-6', 'gpt-4o', usage, 0.25);
    expect(await samples(metrics, 'omnizen_ai_cost_usd_total')).toEqual([
      'omnizen_ai_cost_usd_total{org="org-a",agent="agent-1",model="gpt-4o"} 0.25',
      'omnizen_ai_cost_usd_total{org="org-a",agent="agent-2",model="gpt-4o"} 0.25',
      'omnizen_ai_cost_usd_total{org="org-a",agent="other",model="gpt-4o"} 0.5',
      'omnizen_ai_cost_usd_total{org="org-b",agent="other",model="gpt-4o"} 0.25',
      'omnizen_ai_cost_usd_total{org="other",agent="other",model="gpt-4o"} 0.25',
    ]);
  });
});
