/**
 * Coalesces concurrent calls into batches: `add(item)` resolves once a batch holding `item` has been flushed.
 * While one flush runs, the items added meanwhile wait and go in the next flush together (at most `maxBatch`
 * each), so under load many calls cost one statement and at rest a call waits for no timer. If a flush fails,
 * every call of that batch rejects with its error (each caller retries as it would have on its own).
 */
export class Coalescer<T> {
  private waiting: { item: T; resolve: () => void; reject: (err: unknown) => void }[] = [];
  private flushing = false;

  constructor(
    private readonly flush: (items: T[]) => Promise<void>,
    private readonly maxBatch = 500,
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.waiting.push({ item, resolve, reject });
      if (!this.flushing) {
        this.flushing = true;
        // the calls made in this same turn of the event loop join the first batch
        setImmediate(() => void this.drain());
      }
    });
  }

  private async drain(): Promise<void> {
    while (this.waiting.length) {
      const batch = this.waiting.splice(0, this.maxBatch);
      try {
        await this.flush(batch.map((w) => w.item));
        for (const w of batch) w.resolve();
      } catch (err) {
        for (const w of batch) w.reject(err);
      }
    }
    this.flushing = false;
  }
}
