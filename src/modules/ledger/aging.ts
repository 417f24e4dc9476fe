/**
 * Aging buckets, shared by receivables and payables: a document's bucket by days past due and the bucket edges
 * (ascending; default 30, 60, 90). Pure: no database, no clock. The SQL twin of `agingBucket` is
 * finance.aging_bucket(days, edges) (migration 20270103000100), which finance.ar_aging / finance.ap_aging group by.
 */
export const DEFAULT_AGING_EDGES = [30, 60, 90];

/** 'current' (not yet due), then '1-30', '31-60', '61-90', '>90' for the default edges. */
export function agingBucket(daysPastDue: number, edges: number[] = DEFAULT_AGING_EDGES): string {
  if (daysPastDue <= 0) return 'current';
  for (let i = 0; i < edges.length; i++) if (daysPastDue <= edges[i]) return `${(edges[i - 1] ?? 0) + 1}-${edges[i]}`;
  return `>${edges[edges.length - 1]}`;
}

/** The bucket names for the edges, in order: current, 1-30, 31-60, 61-90, >90 for [30, 60, 90]. */
export function agingBucketNames(edges: number[] = DEFAULT_AGING_EDGES): string[] {
  return ['current', ...edges.map((e, i) => `${(edges[i - 1] ?? 0) + 1}-${e}`), `>${edges[edges.length - 1]}`];
}

/**
 * `?buckets=15,30,60` → [15, 30, 60]; the default edges when absent; undefined when the text is not 1–10
 * ascending positive whole numbers of days (the caller answers a 400 naming it).
 */
export function parseBucketEdges(text: string | undefined): number[] | undefined {
  if (text === undefined) return DEFAULT_AGING_EDGES;
  const parts = text.split(',').map((s) => s.trim());
  if (parts.length < 1 || parts.length > 10 || parts.some((p) => !/^\d{1,5}$/.test(p))) return undefined;
  const edges = parts.map(Number);
  if (edges[0] < 1 || edges.some((e, i) => i > 0 && e <= edges[i - 1])) return undefined;
  return edges;
}
