/**
 * Aging buckets, shared by receivables and payables: a document's bucket by days past due and the bucket edges
 * (ascending; default 30, 60, 90). Pure: no database, no clock.
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
