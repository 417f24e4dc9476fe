/** Rows one statement of a batched purge deletes at most. */
export const PURGE_BATCH = 5_000;

/**
 * A purge of a big table in batches, each walking an index: `step` deletes one batch starting after `after` (null: from
 * the beginning) and answers what it deleted and where the next batch starts (null: the walk is done). Rows this
 * transaction deleted stay in the index until it ends: each batch carries on from the previous one's place instead of
 * walking them all again. Answers every batch's rows.
 */
export async function inBatches<P, R>(step: (after: P | null) => Promise<{ rows: R[]; next: P | null }>): Promise<R[]> {
  const all: R[] = [];
  for (let after: P | null = null; ;) {
    const { rows, next } = await step(after);
    all.push(...rows);
    if (next === null) return all;
    after = next;
  }
}

/**
 * A batch statement's answer split: its counted rows, and the one row (`key` null) that carries where the next batch
 * starts in `last` (the statements end with `UNION ALL SELECT NULL, NULL, <place>`).
 */
export function batchOf<R extends { last: unknown }>(rows: R[], key: keyof R): { rows: R[]; next: R['last'] | null } {
  return { rows: rows.filter((r) => r[key] !== null), next: rows.find((r) => r[key] === null)?.last ?? null };
}
