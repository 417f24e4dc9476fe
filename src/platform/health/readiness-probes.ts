import { Inject, Injectable } from '@nestjs/common';
import { APP_CONFIG, type AppConfig } from '../config/config.js';
import { Clock } from '../clock/clock.js';

/**
 * Probes of third-party services, registered when they are configured (Stripe by billing; the platform's LLM
 * provider here, when AI_API_KEY is set): /health/ready reports each with its latency. They are informational: a provider's
 * outage is not this instance's, so it does not take the instance out of rotation (only PostgreSQL, Redis and
 * the RLS canary do). A probe must be cheap (one read) and is time-boxed by the readiness check; its result is
 * kept for READINESS_PROBE_CACHE_MS, so frequent readiness checks do not become a load on the provider.
 */
export interface ProbeResult {
  status: 'up' | 'down';
  ms: number;
}

@Injectable()
export class ReadinessProbes {
  private readonly probes = new Map<string, () => Promise<unknown>>();
  private readonly cache = new Map<string, { at: number; result: ProbeResult }>();

  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig, private readonly clock: Clock) {
    // the platform's LLM provider, when it has a key: one listing of its models (no tokens spent), time-boxed
    const { baseUrl, apiKey } = config.ai;
    if (apiKey) {
      this.register('llm', async () => {
        const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/models`, { headers: { authorization: `Bearer ${apiKey}` }, signal: AbortSignal.timeout(2000) });
        await res.body?.cancel();
        if (!res.ok) throw new Error(`the LLM provider answered ${res.status}`);
      });
    }
  }

  /** `probe` resolves when the service answers; rejects (or takes longer than the check allows) when it does not. */
  register(name: string, probe: () => Promise<unknown>): void {
    this.probes.set(name, probe);
  }

  /** Every registered probe's latest result, run through `check` when none is fresh. */
  async run(check: (probe: () => Promise<unknown>) => Promise<ProbeResult>): Promise<Record<string, ProbeResult>> {
    const now = this.clock.now();
    const ttl = this.config.observability.readinessProbeCacheMs;
    const entries = await Promise.all([...this.probes].map(async ([name, probe]) => {
      const cached = this.cache.get(name);
      if (cached && now - cached.at < ttl) return [name, cached.result] as const;
      const result = await check(probe);
      this.cache.set(name, { at: now, result });
      return [name, result] as const;
    }));
    return Object.fromEntries(entries);
  }
}
