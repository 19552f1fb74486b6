/**
 * A bounded set of string keys that each expire at a time given when they are added, for the report
 * layer's remembered keys (tracker tombstones, delivered reports for dedupe). Callers add keys with a
 * constant time-to-live, so insertion order is expiry order: a FIFO of `(key, expiry)` beside the lookup map
 * gives O(1) amortized add, expiry and eviction of the oldest key. (A plain insertion-ordered `Map` evicted
 * through `keys().next()` rescans the holes its own deletions leave at the front: quadratic under load.)
 */
export class ExpiringKeys {
  private readonly until = new Map<string, number>();
  /** FIFO of added keys and their expiry; entries from `head` on are pending, some stale (re-added keys). */
  private queueKeys: string[] = [];
  private queueTimes: number[] = [];
  private head = 0;
  private readonly max: number;
  private readonly onDrop: ((key: string) => void) | undefined;

  /**
   * @param max keys held at most; adding one more drops the oldest.
   * @param onDrop told of every key that leaves by expiry, eviction or {@link delete}.
   */
  constructor(max: number, onDrop?: (key: string) => void) {
    this.max = Math.max(1, max);
    this.onDrop = onDrop;
  }

  /** Keys held now (expired ones count until {@link expire} runs). */
  get size(): number {
    return this.until.size;
  }

  /** True when `key` is held (whatever its expiry: see {@link expire}). */
  has(key: string): boolean {
    return this.until.has(key);
  }

  /** The expiry time of `key`, or undefined. */
  expiry(key: string): number | undefined {
    return this.until.get(key);
  }

  /** Adds `key` until time `until` (renewing it if held); over `max` keys, the oldest is dropped. */
  add(key: string, until: number): void {
    // Deleted first so the map's order stays the queue's order (used to rebuild the queue).
    if (this.until.delete(key)) this.onDrop?.(key);
    this.until.set(key, until);
    this.queueKeys.push(key);
    this.queueTimes.push(until);
    if (this.until.size > this.max) this.dropOldest();
    this.compact();
  }

  /** Removes `key` now. */
  delete(key: string): void {
    if (this.until.delete(key)) this.onDrop?.(key);
  }

  /** Drops every key whose expiry is at or before `now`. */
  expire(now: number): void {
    const keys = this.queueKeys;
    const times = this.queueTimes;
    while (this.head < keys.length && times[this.head]! <= now) {
      const key = keys[this.head]!;
      const t = times[this.head]!;
      this.head++;
      if (this.until.get(key) === t) {
        this.until.delete(key);
        this.onDrop?.(key);
      }
    }
    this.compact();
  }

  private dropOldest(): void {
    const keys = this.queueKeys;
    while (this.head < keys.length) {
      const key = keys[this.head]!;
      const t = this.queueTimes[this.head]!;
      this.head++;
      if (this.until.get(key) === t) {
        this.until.delete(key);
        this.onDrop?.(key);
        return;
      }
    }
  }

  /**
   * Keeps the queue's memory proportional to the keys held: consumed entries are cut off once they are
   * the larger part, and stale entries (renewed or deleted keys) are dropped by rebuilding the queue from
   * the map when they outnumber the live ones.
   */
  private compact(): void {
    const pending = this.queueKeys.length - this.head;
    if (pending > 2 * this.until.size + 1024) {
      const keys: string[] = [];
      const times: number[] = [];
      for (const [k, t] of this.until) {
        keys.push(k);
        times.push(t);
      }
      this.queueKeys = keys;
      this.queueTimes = times;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queueKeys.length) {
      this.queueKeys = this.queueKeys.slice(this.head);
      this.queueTimes = this.queueTimes.slice(this.head);
      this.head = 0;
    }
  }
}
