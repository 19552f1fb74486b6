/**
 * The delivery notifications the policy injected (DESIGN.md "Exactly one"), so that an IM sent again gets
 * none a second time ({@link DeliveredLog.claim}) and a recipient's own duplicate delivery IMDN can be
 * dropped after a `delivered` (`--reports-dedupe`, {@link DeliveredLog.has}): keys of a recipient session
 * and an IM's imdn Message-ID that expire after one TTL, at most `max` of them (the oldest dropped first),
 * plus which sessions hold a `delivered`, so a SEND from a session never reported to is not held for the
 * check.
 *
 * It is written on every delivery notification, so it allocates nothing per key and keeps no string:
 * - a key is its 64-bit hash (two 32-bit hashes over the session, a separator and the Message-ID, seeded
 *   per process), kept in an open-addressing table with linear probing;
 * - keys sit in a ring of `max` slots in the order they were written, which is also expiry order (one TTL
 *   for all), so remembering, evicting the oldest and expiring are O(1) per key;
 * - sessions are counted by a 30-bit hash (a small integer Map key).
 *
 * Two different keys with the same 64-bit hash would make a recipient's IMDN for a message the relay never
 * reported look like a duplicate: with 10,000 keys that is about one chance in 10^15 per lookup. A shared
 * session hash only makes the relay hold (not drop) a small SEND it did not need to.
 */

/** An empty table cell; a full one holds its key's ring slot + 1, so a new table is all zeros (untouched). */
const EMPTY = 0;

/** A random 32-bit seed: the table's layout cannot be predicted from outside. */
const randomSeed = (): number => (Math.random() * 0x100000000) | 0;

/** Where {@link hashKey} leaves its results. */
let hashA = 0;
let hashB = 0;
let hashSession = 0;

/**
 * Hashes `session`, a separator and `messageId` (seeded by `seedA` and `seedB`) into {@link hashA} and {@link hashB} (FNV-1a and a
 * multiply-xorshift over the UTF-16 code units, each finished with an avalanche), and `session` alone into
 * {@link hashSession} (30 bits).
 */
function hashKey(session: string, messageId: string, seedA: number, seedB: number): void {
  let a = 0x811c9dc5 ^ seedA;
  let b = seedB;
  for (let i = 0; i < session.length; i++) {
    const c = session.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  hashSession = avalanche(a) & 0x3fffffff;
  // The separator keeps ("ab", "c") and ("a", "bc") apart: 0x10000 is not a UTF-16 code unit.
  a = Math.imul(a ^ 0x10000, 0x01000193);
  b = Math.imul(b ^ 0x10000, 0x5bd1e995);
  for (let i = 0; i < messageId.length; i++) {
    const c = messageId.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
    b ^= b >>> 15;
  }
  hashA = avalanche(a);
  hashB = avalanche(b ^ messageId.length);
}

/** The murmur3 finaliser: every input bit affects every output bit. */
function avalanche(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) | 0;
}

/** Remembered delivered reports; see the module comment. */
export class DeliveredLog {
  private readonly ttlMs: number;
  // The table: a cell holds a key's two hashes and its ring slot + 1, or EMPTY.
  private readonly mask: number;
  private readonly cellA: Int32Array;
  private readonly cellB: Int32Array;
  private readonly cellSlot: Int32Array;
  // The ring: each slot's key (its hashes), session hash, expiry, and whether it is live.
  private readonly slotA: Int32Array;
  private readonly slotB: Int32Array;
  private readonly slotSession: Int32Array;
  private readonly until: Float64Array;
  private readonly slotLive: Uint8Array;
  /** 1 when the slot's report was `failed` ({@link claim}): {@link has} does not count it. */
  private readonly slotFailed: Uint8Array;
  /** Live keys per session hash. */
  private readonly sessions = new Map<number, number>();
  /** Slot the next key goes to. */
  private head = 0;
  /** Oldest slot still in the ring's window (live or emptied by {@link has}). */
  private tail = 0;
  /** Slots in the window, from `tail` up to `head`. */
  private window = 0;
  private live = 0;

  private readonly seedA: number;
  private readonly seedB: number;

  /** `seeds` fixes the hash seeds (tests replaying a failure); random by default. */
  constructor(max: number, ttlMs: number, seeds: readonly [number, number] = [randomSeed(), randomSeed()]) {
    [this.seedA, this.seedB] = seeds;
    const slots = Math.max(1, max);
    this.ttlMs = ttlMs;
    // At most half full, so probes stay short.
    let cells = 8;
    while (cells < slots * 2) cells *= 2;
    this.mask = cells - 1;
    this.cellA = new Int32Array(cells);
    this.cellB = new Int32Array(cells);
    this.cellSlot = new Int32Array(cells);
    this.slotA = new Int32Array(slots);
    this.slotB = new Int32Array(slots);
    this.slotSession = new Int32Array(slots);
    this.until = new Float64Array(slots);
    this.slotLive = new Uint8Array(slots);
    this.slotFailed = new Uint8Array(slots);
  }

  /** Live keys. */
  get size(): number {
    return this.live;
  }

  /** Remembers `messageId` reported delivered in `session` until `now` + TTL; renews a key it holds. */
  remember(session: string, messageId: string, now: number): void {
    hashKey(session, messageId, this.seedA, this.seedB);
    const cell = this.find(hashA, hashB);
    if (this.cellSlot[cell] !== EMPTY) {
      // Renewed where it is (no second slot, so a renewal never pushes another key out): it keeps its
      // place in eviction order, and expire() stops at it until its new time comes (keys behind it
      // are still checked on lookup and evicted in turn).
      this.until[this.cellSlot[cell]! - 1] = now + this.ttlMs;
      return;
    }
    this.insert(now, 0);
  }

  /**
   * Remembers a delivery notification (`failed`: a failed one) for `messageId` in `session`, unless one
   * is remembered there already: false then, and nothing changes (digest §5.4: one per category). One
   * hash for the check and the insertion.
   */
  claim(session: string, messageId: string, now: number, failed: boolean): boolean {
    hashKey(session, messageId, this.seedA, this.seedB);
    const stored = this.cellSlot[this.find(hashA, hashB)]!;
    if (stored !== EMPTY) {
      if (this.until[stored - 1]! > now) return false;
      this.clear(stored - 1); // expired: a new entry replaces it
    }
    this.insert(now, failed ? 1 : 0);
    return true;
  }

  /** Inserts the key last hashed ({@link hashKey}'s results), known to be absent. */
  private insert(now: number, failed: number): void {
    const a = hashA;
    const b = hashB;
    const s = hashSession;
    if (this.window === this.slotLive.length) this.advanceTail();
    const slot = this.head;
    this.slotA[slot] = a;
    this.slotB[slot] = b;
    this.slotSession[slot] = s;
    this.until[slot] = now + this.ttlMs;
    this.slotLive[slot] = 1;
    this.slotFailed[slot] = failed;
    // advanceTail may have moved cells: the free cell is looked up again.
    const free = this.find(a, b);
    this.cellA[free] = a;
    this.cellB[free] = b;
    this.cellSlot[free] = slot + 1;
    if (failed === 0) this.sessions.set(s, (this.sessions.get(s) ?? 0) + 1);
    this.head = (slot + 1) % this.slotLive.length;
    this.window++;
    this.live++;
  }

  /** True when `messageId` was reported delivered (not failed) in `session` and its time is not up. */
  has(session: string, messageId: string, now: number): boolean {
    hashKey(session, messageId, this.seedA, this.seedB);
    const stored = this.cellSlot[this.find(hashA, hashB)]!;
    if (stored === EMPTY) return false;
    const slot = stored - 1;
    if (this.until[slot]! <= now) {
      this.clear(slot);
      return false;
    }
    return this.slotFailed[slot] === 0;
  }

  /**
   * Forgets `messageId` in `session` (a claim whose report was not sent after all); nothing when absent.
   */
  forget(session: string, messageId: string): void {
    hashKey(session, messageId, this.seedA, this.seedB);
    const stored = this.cellSlot[this.find(hashA, hashB)]!;
    if (stored !== EMPTY) this.clear(stored - 1);
  }

  /** True when something was reported delivered in `session` (expired entries may still count). */
  hasSession(session: string): boolean {
    hashKey(session, '', this.seedA, this.seedB);
    return this.sessions.has(hashSession);
  }

  /** Drops the entries that expired by `now`. */
  expire(now: number): void {
    while (this.window > 0) {
      const slot = this.tail;
      if (this.slotLive[slot] === 1 && this.until[slot]! > now) return;
      this.advanceTail();
    }
  }

  /** The cell holding the key `a`/`b`, or the empty cell where it would go. */
  private find(a: number, b: number): number {
    const mask = this.mask;
    let i = a & mask;
    for (;;) {
      if (this.cellSlot[i] === EMPTY || (this.cellA[i] === a && this.cellB[i] === b)) return i;
      i = (i + 1) & mask;
    }
  }

  /** Moves the oldest slot out of the window, forgetting its key if it still holds one. */
  private advanceTail(): void {
    const slot = this.tail;
    if (this.slotLive[slot] === 1) this.clear(slot);
    this.tail = (slot + 1) % this.slotLive.length;
    this.window--;
  }

  /** Forgets the key in `slot`: its cell, its session's count. */
  private clear(slot: number): void {
    this.removeCell(this.find(this.slotA[slot]!, this.slotB[slot]!));
    if (this.slotFailed[slot] === 0) {
      const session = this.slotSession[slot]!;
      const n = (this.sessions.get(session) ?? 1) - 1;
      if (n <= 0) this.sessions.delete(session);
      else this.sessions.set(session, n);
    }
    this.slotLive[slot] = 0;
    this.live--;
  }

  /**
   * Empties cell `hole` and shifts back the cells after it whose home is not between the hole and
   * themselves, so every key stays reachable from its home by linear probing (no deletion markers).
   */
  private removeCell(hole: number): void {
    const mask = this.mask;
    const { cellA, cellB, cellSlot } = this;
    cellSlot[hole] = EMPTY;
    for (let j = (hole + 1) & mask; cellSlot[j] !== EMPTY; j = (j + 1) & mask) {
      const home = cellA[j]! & mask;
      // Stays when its home lies cyclically in (hole, j].
      const stays = hole <= j ? hole < home && home <= j : hole < home || home <= j;
      if (stays) continue;
      cellA[hole] = cellA[j]!;
      cellB[hole] = cellB[j]!;
      cellSlot[hole] = cellSlot[j]!;
      cellSlot[j] = EMPTY;
      hole = j;
    }
  }
}
