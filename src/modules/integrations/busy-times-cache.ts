import type { Clock } from '../../platform/clock/clock.js';
import type { BusyInterval } from './busy-time-source.js';

/** How long a provider's busy times for a range are answered from memory: anonymous visitors repeat a page's requests. */
export const BUSY_TIMES_TTL_MS = 60_000;
/** ...and that they could not be read, for this long only: a server that failed once is asked again soon. */
export const FAILED_BUSY_TIMES_TTL_MS = 10_000;
/** The most ranges kept (all providers together)... */
export const MAX_CACHED_RANGES = 1000;
/** ...and the most busy intervals they hold together (16 bytes each: ten requests' worth of MAX_EVENTS). */
export const MAX_CACHED_INTERVALS = 200_000;

/** Busy times, or undefined: the calendars could not be read (answered as such again until the entry expires). */
export type BusyTimes = BusyInterval[] | undefined;

interface Entry {
  /** [start, end) pairs in epoch milliseconds; undefined: unavailable */
  value: Promise<Float64Array | undefined>;
  /** Infinity while being read: a request for the same key meanwhile waits for that read instead of asking again */
  expiresAt: number;
  intervals: number;
}

/**
 * Busy times per provider and range (the caller reads one window a provider a day and asks for slices of it), in this
 * process, for BUSY_TIMES_TTL_MS on the injected clock; that they could not be read for FAILED_BUSY_TIMES_TTL_MS. The
 * key is the caller's: everything the answer depends on (the integrations, their sealed secrets, the calendar settings,
 * the zone and the range), so a change to any of them is a new key and is read at once. Bounded by MAX_CACHED_RANGES entries
 * and MAX_CACHED_INTERVALS intervals: the oldest go first.
 */
export class BusyTimesCache {
  private readonly entries = new Map<string, Entry>();
  private intervals = 0;

  constructor(
    private readonly clock: Clock,
    private readonly ttlMs = BUSY_TIMES_TTL_MS,
    private readonly maxEntries = MAX_CACHED_RANGES,
    private readonly maxIntervals = MAX_CACHED_INTERVALS,
    private readonly failedTtlMs = FAILED_BUSY_TIMES_TTL_MS,
  ) {}

  /** How many entries are kept (read or being read). */
  get size(): number {
    return this.entries.size;
  }

  /**
   * The busy times under `key` that overlap `within` (all of them without it), read with `load` when none are kept (or
   * they expired).
   */
  async get(key: string, load: () => Promise<BusyTimes>, within?: { start: Date; end: Date }): Promise<BusyTimes> {
    const kept = this.entries.get(key);
    if (kept && kept.expiresAt > this.clock.now()) return unpack(await kept.value, within);
    if (kept) this.remove(key, kept);
    const entry: Entry = { value: load().then(pack), expiresAt: Infinity, intervals: 0 };
    this.entries.set(key, entry);
    this.evict();
    let packed: Float64Array | undefined;
    try {
      packed = await entry.value;
    } catch (err) {
      if (this.entries.get(key) === entry) this.entries.delete(key);
      throw err;
    }
    if (this.entries.get(key) === entry) {
      entry.expiresAt = this.clock.now() + (packed ? this.ttlMs : this.failedTtlMs);
      entry.intervals = packed ? packed.length / 2 : 0;
      this.intervals += entry.intervals;
      this.evict();
    }
    return unpack(packed, within);
  }

  private remove(key: string, entry: Entry): void {
    this.entries.delete(key);
    this.intervals -= entry.intervals;
  }

  /** Expired entries, then the oldest read ones while over a bound (those being read are not counted out). */
  private evict(): void {
    const now = this.clock.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.remove(key, entry);
    for (const [key, entry] of this.entries) {
      if (this.entries.size <= this.maxEntries && this.intervals <= this.maxIntervals) break;
      if (entry.expiresAt !== Infinity) this.remove(key, entry);
    }
  }
}

function pack(busy: BusyTimes): Float64Array | undefined {
  if (!busy) return undefined;
  const out = new Float64Array(busy.length * 2);
  busy.forEach((b, i) => {
    out[2 * i] = b.start.getTime();
    out[2 * i + 1] = b.end.getTime();
  });
  return out;
}

function unpack(packed: Float64Array | undefined, within?: { start: Date; end: Date }): BusyTimes {
  if (!packed) return undefined;
  const [from, to] = within ? [within.start.getTime(), within.end.getTime()] : [-Infinity, Infinity];
  const out: BusyInterval[] = [];
  for (let i = 0; i < packed.length; i += 2) {
    if (packed[i + 1] > from && packed[i] < to) out.push({ start: new Date(packed[i]), end: new Date(packed[i + 1]) });
  }
  return out;
}
