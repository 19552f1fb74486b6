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
 * Keys may come from the network: a lookup stops at the first empty slot, and only the owner's keys
 * are ever stored, so no input can make the probe runs long.
 */
export class StringMap<V> {
  private keys: Array<string | null>;
  private vals: Array<V | null>;
  private hashes: Int32Array;
  private mask: number;
  private count = 0;

  /** `minCapacity`: a power of two, the size it starts at and never shrinks below. */
  constructor(private readonly minCapacity = 64) {
    this.keys = new Array<string | null>(minCapacity).fill(null);
    this.vals = new Array<V | null>(minCapacity).fill(null);
    this.hashes = new Int32Array(minCapacity);
    this.mask = minCapacity - 1;
  }

  get size(): number {
    return this.count;
  }

  /** FNV-1a over the key's UTF-16 code units, with a final mix. */
  private static hash(key: string): number {
    let h = 0x811c9dc5;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
    return (h ^ (h >>> 15)) | 0;
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
    const i = this.find(key, StringMap.hash(key));
    return i === -1 ? undefined : this.vals[i]!;
  }

  has(key: string): boolean {
    return this.find(key, StringMap.hash(key)) !== -1;
  }

  set(key: string, value: V): this {
    const h = StringMap.hash(key);
    const i = this.find(key, h);
    if (i !== -1) {
      this.vals[i] = value;
      return this;
    }
    if ((this.count + 1) * 2 > this.keys.length) this.resize(this.keys.length * 2);
    this.place(key, value, h);
    this.count++;
    return this;
  }

  delete(key: string): boolean {
    let i = this.find(key, StringMap.hash(key));
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
    this.keys = new Array<string | null>(this.minCapacity).fill(null);
    this.vals = new Array<V | null>(this.minCapacity).fill(null);
    this.hashes = new Int32Array(this.minCapacity);
    this.mask = this.minCapacity - 1;
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
    while (this.keys[i] !== null) i = (i + 1) & this.mask;
    this.keys[i] = key;
    this.vals[i] = value;
    this.hashes[i] = h;
  }

  private resize(capacity: number): void {
    const keys = this.keys;
    const vals = this.vals;
    const hashes = this.hashes;
    this.keys = new Array<string | null>(capacity).fill(null);
    this.vals = new Array<V | null>(capacity).fill(null);
    this.hashes = new Int32Array(capacity);
    this.mask = capacity - 1;
    for (let i = 0; i < keys.length; i++) if (keys[i] !== null) this.place(keys[i]!, vals[i]!, hashes[i]!);
  }
}
