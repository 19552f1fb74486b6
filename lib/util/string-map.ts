/**
 * A map from strings to values for keys that come and go at a high rate (a transaction id per chunk,
 * a Message-ID per message): open addressing with linear probing and backward-shift deletion, so
 * `set` and `delete` allocate nothing once the table has its size.
 *
 * Why not a Map: a Map whose entries churn rehashes its table every few hundred operations, and once
 * that table has lived long enough to be in V8's old space, every new table is allocated there too.
 * On the relay's forwarding path that was about 0.5 KiB of old-space garbage per message, and a full
 * (mark-compact) collection, a pause of several ms, every second or so under load.
 *
 * The table is at most half full: it doubles when it would pass that, and halves in {@link shrink}
 * (which a periodic sweep calls) once it is an eighth full, or goes back to its first size when it
 * empties, so a burst does not hold memory for good.
 * Keys may come from the network (Message-IDs), so the hash is seeded per map from the CSPRNG: keys
 * cannot be chosen to share a hash without knowing the seed. Should a probe run still grow long (more
 * than {@link MAX_PROBE} slots), the map draws a new seed and rehashes.
 */
import { randomFillSync } from 'node:crypto';

/** A probe run longer than this makes the map re-seed its hash (expected runs at half load: ~2). */
const MAX_PROBE = 48;

/** Seeds for new maps, drawn from the CSPRNG a batch at a time. */
const seeds = new Int32Array(64);
let seedsUsed = seeds.length;

function newSeed(): number {
  if (seedsUsed === seeds.length) {
    randomFillSync(seeds);
    seedsUsed = 0;
  }
  return seeds[seedsUsed++]!;
}

export class StringMap<V> {
  private keys: Array<string | null> = [];
  private vals: Array<V | null> = [];
  private hashes = new Int32Array(0);
  private mask = 0;
  private count = 0;
  private seed = newSeed();
  /** Set by {@link place} when a probe run passed {@link MAX_PROBE}. */
  private longRun = false;

  /** `minCapacity`: a power of two, the size it starts at and never shrinks below. */
  constructor(private readonly minCapacity = 64) {
    this.allocate(minCapacity);
  }

  get size(): number {
    return this.count;
  }

  /** Seeded FNV-1a over the key's UTF-16 code units, finished with murmur3's mix (the low bits pick the slot). */
  private hash(key: string): number {
    let h = 0x811c9dc5 ^ this.seed;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    return (h ^ (h >>> 16)) | 0;
  }

  /** The slot holding `key`, or -1. */
  private find(key: string, h: number): number {
    for (let i = h & this.mask; ; i = (i + 1) & this.mask) {
      const k = this.keys[i]!;
      if (k === null) return -1;
      if (this.hashes[i] === h && k === key) return i;
    }
  }

  get(key: string): V | undefined {
    const i = this.find(key, this.hash(key));
    return i === -1 ? undefined : this.vals[i]!;
  }

  has(key: string): boolean {
    return this.find(key, this.hash(key)) !== -1;
  }

  set(key: string, value: V): this {
    const h = this.hash(key);
    const i = this.find(key, h);
    if (i !== -1) {
      this.vals[i] = value;
      return this;
    }
    if ((this.count + 1) * 2 > this.keys.length) this.resize(this.keys.length * 2);
    this.place(key, value, h);
    this.count++;
    if (this.longRun) {
      // Keys that share a hash run: a new seed spreads them (see the class comment).
      this.longRun = false;
      this.seed = newSeed();
      this.resize(this.keys.length, true);
    }
    return this;
  }

  delete(key: string): boolean {
    let i = this.find(key, this.hash(key));
    if (i === -1) return false;
    // Backward shift: later entries of the probe run move into the hole unless their home slot lies
    // cyclically in (hole, their slot], where a lookup would no longer reach them.
    for (let j = (i + 1) & this.mask; ; j = (j + 1) & this.mask) {
      const k = this.keys[j]!;
      if (k === null) break;
      const home = this.hashes[j]! & this.mask;
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (stays) continue;
      this.keys[i] = k;
      this.vals[i] = this.vals[j]!;
      this.hashes[i] = this.hashes[j]!;
      i = j;
    }
    this.keys[i] = null;
    this.vals[i] = null;
    // Empty after a burst: back to the first size at once (a busy map seldom gets here).
    if (--this.count === 0 && this.keys.length > this.minCapacity) this.resize(this.minCapacity);
    return true;
  }

  /** The values, in no particular order (a copy: the map may change while the caller walks it). */
  values(): V[] {
    const out: V[] = [];
    for (let i = 0; i < this.keys.length; i++) if (this.keys[i] !== null) out.push(this.vals[i]!);
    return out;
  }

  clear(): void {
    this.allocate(this.minCapacity);
    this.count = 0;
  }

  /** Halves the table while it is at most an eighth full; cheap enough to call on every sweep. */
  shrink(): void {
    let capacity = this.keys.length;
    while (capacity > this.minCapacity && this.count * 8 <= capacity) capacity /= 2;
    if (capacity !== this.keys.length) this.resize(capacity);
  }

  private place(key: string, value: V, h: number): void {
    let i = h & this.mask;
    for (let run = 0; this.keys[i] !== null; run++) {
      if (run === MAX_PROBE) this.longRun = true;
      i = (i + 1) & this.mask;
    }
    this.keys[i] = key;
    this.vals[i] = value;
    this.hashes[i] = h;
  }

  /** Empty tables of `capacity` slots (a power of two); the entries are the caller's to place. */
  private allocate(capacity: number): void {
    this.keys = new Array<string | null>(capacity).fill(null);
    this.vals = new Array<V | null>(capacity).fill(null);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
  }

  /** Moves every entry to a table of `capacity` slots; `rehash`: hash the keys again (a new seed). */
  private resize(capacity: number, rehash = false): void {
    const keys = this.keys;
    const vals = this.vals;
    const hashes = this.hashes;
    this.allocate(capacity);
    for (let i = 0; i < keys.length; i++) {
      const k = keys[i]!;
      if (k !== null) this.place(k, vals[i]!, rehash ? this.hash(k) : hashes[i]!);
    }
    // Runs met while moving are left to the next set (which re-seeds at most once per call).
  }
}
