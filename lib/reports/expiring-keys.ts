/**
 * A bounded set of string keys that each expire at a time given when they are added, for the report
 * layer's remembered keys (tracker tombstones, delivered reports for dedupe). Callers add keys with a
 * constant time-to-live, so insertion order is expiry order: a FIFO of `(key, expiry)` beside the lookup map
 * gives O(1) amortized add, expiry and eviction of the oldest key. (A plain insertion-ordered `Map` evicted
 * through `keys().next()` rescans the holes its own deletions leave at the front: quadratic under load.)
 */
export class ExpiringKeys {
  /** Each key's expiry, the sequence number of the add that set it, and the caller's tag. */
  private readonly entries = new Map<string, { until: number; seq: number; tag: number }>();
  /**
   * FIFO of adds (key, sequence number, expiry); entries from `head` on are pending, some stale (the key
   * was added again or deleted since): an entry counts only while its sequence number is the key's.
   */
  private queueKeys: string[] = [];
  private queueSeqs: number[] = [];
  private queueTimes: number[] = [];
  private head = 0;
  private seq = 0;
  private readonly max: number;
  private readonly onDrop: ((key: string) => void) | undefined;

  /**
   * @param max keys held at most; adding one more drops the oldest.
   * @param onDrop told of every key that leaves by expiry, eviction or {@link delete} (not of a renewal).
   */
  constructor(max: number, onDrop?: (key: string) => void) {
    this.max = Math.max(1, max);
    this.onDrop = onDrop;
  }

  /** Keys held now (expired ones count until {@link expire} runs). */
  get size(): number {
    return this.entries.size;
  }

  /** True when `key` is held (whatever its expiry: see {@link expire}). */
  has(key: string): boolean {
    return this.entries.has(key);
  }

  /** The expiry time of `key`, or undefined. */
  expiry(key: string): number | undefined {
    return this.entries.get(key)?.until;
  }

  /** The tag `key` was last added with, or undefined when it is not held. */
  tag(key: string): number | undefined {
    return this.entries.get(key)?.tag;
  }

  /**
   * Adds `key` until time `until`, with a number of the caller's (`tag`, default 0), renewing it if held:
   * it becomes the newest. Over `max`, the oldest goes.
   */
  add(key: string, until: number, tag = 0): void {
    const seq = ++this.seq;
    // Deleted first so the map's order stays the order of the live queue entries (to rebuild the queue).
    this.entries.delete(key);
    this.entries.set(key, { until, seq, tag });
    this.queueKeys.push(key);
    this.queueSeqs.push(seq);
    this.queueTimes.push(until);
    if (this.entries.size > this.max) this.dropOldest();
    this.compact();
  }

  /** Removes `key` now. */
  delete(key: string): void {
    if (this.entries.delete(key)) this.onDrop?.(key);
  }

  /** Drops every key whose expiry is at or before `now`. */
  expire(now: number): void {
    while (this.head < this.queueKeys.length && this.queueTimes[this.head]! <= now) this.takeHead();
    this.compact();
  }

  private dropOldest(): void {
    while (this.head < this.queueKeys.length) if (this.takeHead()) return;
  }

  /** Consumes the oldest queue entry, dropping its key if the entry is still the key's; true if it was. */
  private takeHead(): boolean {
    const key = this.queueKeys[this.head]!;
    const seq = this.queueSeqs[this.head]!;
    this.head++;
    if (this.entries.get(key)?.seq !== seq) return false;
    this.entries.delete(key);
    this.onDrop?.(key);
    return true;
  }

  /**
   * Keeps the queue's memory proportional to the keys held: consumed entries are cut off once they are
   * the larger part, and stale entries (renewed or deleted keys) are dropped by rebuilding the queue from
   * the map when they outnumber the live ones.
   */
  private compact(): void {
    const pending = this.queueKeys.length - this.head;
    if (pending > 2 * this.entries.size + 1024) {
      const keys: string[] = [];
      const seqs: number[] = [];
      const times: number[] = [];
      for (const [k, e] of this.entries) {
        keys.push(k);
        seqs.push(e.seq);
        times.push(e.until);
      }
      this.queueKeys = keys;
      this.queueSeqs = seqs;
      this.queueTimes = times;
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queueKeys.length) {
      this.queueKeys = this.queueKeys.slice(this.head);
      this.queueSeqs = this.queueSeqs.slice(this.head);
      this.queueTimes = this.queueTimes.slice(this.head);
      this.head = 0;
    }
  }
}
