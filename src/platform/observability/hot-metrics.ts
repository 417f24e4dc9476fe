import type { Metric, Registry } from 'prom-client';

/**
 * The per-request metrics (requests, request time, statement time), counted without prom-client's per-call work:
 * prom-client validates and hashes the label object on every `inc` and `observe` (sorting its keys), which made
 * metrics ~3.5 % of the app's CPU on the read route (bench/README.md, issue 23). Here a series is found by its label
 * values joined into one string, and counting is a Map lookup and an addition. Both classes register themselves in a
 * prom-client registry and answer its `get()` in prom-client's own shape, so the registry formats them as it formats
 * its own metrics (same names, types, HELP and label order).
 */
/** What prom-client's registry reads of a metric (`get()`), as its own metrics answer it. */
interface Exposition {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  aggregator: 'sum';
  values: { metricName?: string; labels: Record<string, string | number>; value: number }[];
}

interface Series<T> {
  labels: Record<string, string>;
  value: T;
}

abstract class HotMetric<T> {
  readonly aggregator = 'sum' as const;
  protected readonly series = new Map<string, Series<T>>();

  constructor(readonly name: string, readonly help: string, private readonly labelNames: readonly string[], registry: Registry) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of these label values (in labelNames' order), made on first use. */
  protected at(a: string, b: string | undefined, c: string | undefined, empty: () => T): Series<T> {
    const key = b === undefined ? a : c === undefined ? `${a}\u0000${b}` : `${a}\u0000${b}\u0000${c}`;
    let s = this.series.get(key);
    if (!s) {
      const values = [a, b, c];
      s = { labels: Object.fromEntries(this.labelNames.map((n, i) => [n, values[i] as string])), value: empty() };
      this.series.set(key, s);
    }
    return s;
  }

  /** What prom-client's Registry#resetMetrics calls on every registered metric. */
  reset(): void {
    this.series.clear();
  }
}

/** A counter by up to three labels. */
export class HotCounter extends HotMetric<{ n: number }> {
  readonly type = 'counter' as const;

  inc(a: string, b?: string, c?: string): void {
    this.at(a, b, c, () => ({ n: 0 })).value.n++;
  }

  async get(): Promise<Exposition> {
    return {
      name: this.name, help: this.help, type: this.type, aggregator: this.aggregator,
      values: [...this.series.values()].map((s) => ({ labels: s.labels, value: s.value.n })),
    };
  }
}

/** A histogram by up to three labels, with fixed buckets (upper bounds, ascending; +Inf is added). */
export class HotHistogram extends HotMetric<{ buckets: number[]; sum: number; count: number }> {
  readonly type = 'histogram' as const;

  constructor(name: string, help: string, labelNames: readonly string[], private readonly upperBounds: readonly number[], registry: Registry) {
    super(name, help, labelNames, registry);
  }

  observe(seconds: number, a: string, b?: string, c?: string): void {
    const s = this.at(a, b, c, () => ({ buckets: this.upperBounds.map(() => 0), sum: 0, count: 0 })).value;
    const bounds = this.upperBounds;
    for (let i = 0; i < bounds.length; i++) {
      if (seconds <= bounds[i]) {
        s.buckets[i]++;
        break;
      }
    }
    s.sum += seconds;
    s.count++;
  }

  async get(): Promise<Exposition> {
    const values: Exposition['values'] = [];
    for (const { labels, value } of this.series.values()) {
      let cumulative = 0;
      this.upperBounds.forEach((le, i) => {
        cumulative += value.buckets[i];
        values.push({ metricName: `${this.name}_bucket`, labels: { le, ...labels }, value: cumulative });
      });
      values.push({ metricName: `${this.name}_bucket`, labels: { le: '+Inf', ...labels }, value: value.count });
      values.push({ metricName: `${this.name}_sum`, labels, value: value.sum });
      values.push({ metricName: `${this.name}_count`, labels, value: value.count });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }
}
