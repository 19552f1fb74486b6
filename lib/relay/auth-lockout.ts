/**
 * Lockout of password guessing: failed Digest AUTHs counted per (client address, user name). A run of
 * failures counts while each comes within `windowMs` of the one before it; once a pair's run reaches
 * `failures`, AUTHs for that user from that address are refused with 403, their credentials unchecked,
 * until `windowMs` after the last counted failure (refused attempts do not extend it). RFC 4976 §6.3 only
 * asks that a connection be closed after several failures; a client that reconnects could otherwise
 * guess at the speed of the network.
 *
 * The key holds the user name so that users behind one NAT address do not lock each other out. Unknown
 * user names count like known ones (so a lockout tells nothing about which names exist), which lets a
 * client make entries at will; memory stays bounded, and junk cannot lift a lockout:
 * - a name longer than {@link MAX_NAME} is keyed by its hash;
 * - failures from one address open at most `maxPerAddress` pairs; failures for further names from it
 *   count in one overflow entry of the address, whose lockout refuses every name the address has no
 *   entry for (an address that fails for that many names at once is spraying). A name that then gets a
 *   pair of its own starts from the overflow's count;
 * - a granted AUTH leaves its pair as a marker (count 0, no share of the address): users who logged in
 *   from an address in the last window (clients re-AUTH well within it) are judged by their own entry,
 *   so another client's spraying from a shared address does not refuse them;
 * - at most `maxEntries` entries in all: when full, the one updated longest ago that is not locked out is
 *   forgotten; a lockout is forgotten early only when every entry is locked (the oldest first), which
 *   takes `failures` guesses for each entry.
 */
import { createHash } from 'node:crypto';
import { addressKey } from './listeners.js';

/** Settings of {@link AuthLockout}. */
export interface AuthLockoutOptions {
  /** Failed guesses that lock a pair out; 0 turns the lockout off. */
  failures: number;
  /** A gap this long ends a run of failures, and a lockout lasts this long after its last one (ms). */
  windowMs: number;
  /** Pairs remembered at most, all addresses together. */
  maxEntries: number;
  /** Pairs failures from one address may open (its overflow entry and markers aside); default 64. */
  maxPerAddress?: number;
}

/** Longest user name kept as it is in a key; longer ones are hashed. */
export const MAX_NAME = 64;

interface Entry {
  /** The address as counted ({@link addressKey}). */
  readonly address: string;
  /** True while the entry takes one of its address's `maxPerAddress` slots (a pair opened by a failure). */
  slot: boolean;
  /** Failures in the current run. */
  count: number;
  /** When the last counted failure came (ms). */
  last: number;
}

/** The per-(address, user) failure counts; see the module comment. */
export class AuthLockout {
  /** Pairs not locked out, in order of last update (an updated entry moves to the end). */
  private readonly counting = new Map<string, Entry>();
  /** Pairs locked out, in the order they were locked (the order they expire in). */
  private readonly locked = new Map<string, Entry>();
  /** Slots taken per address ({@link Entry.slot}). */
  private readonly perAddress = new Map<string, number>();
  private readonly maxPerAddress: number;

  constructor(private readonly opts: AuthLockoutOptions) {
    this.maxPerAddress = opts.maxPerAddress ?? 64;
  }

  /** True when the lockout is on (`failures` above 0). */
  get enabled(): boolean {
    return this.opts.failures > 0;
  }

  /** Entries remembered now, locked or not. */
  get size(): number {
    return this.counting.size + this.locked.size;
  }

  /** Pairs (and overflowing addresses) locked out now. */
  lockedCount(now: number): number {
    let n = 0;
    for (const e of this.locked.values()) if (now - e.last < this.opts.windowMs) n++;
    return n;
  }

  /** True when AUTHs for `user` from `address` are refused now. */
  isLocked(address: string, user: string, now: number): boolean {
    if (!this.enabled) return false;
    const a = addressKey(address);
    const k = pairKey(a, user);
    if (this.lockedNow(k, now)) return true;
    if (this.counting.has(k)) return false;
    // A name the address holds no pair for: refused while the address's overflow entry is locked.
    return this.lockedNow(overflowKey(a), now);
  }

  /**
   * Counts a failed guess for `user` from `address`. Returns what this failure locks out: `user` (the
   * pair), `address` (the overflow entry: every name the address holds no pair for), or null.
   */
  fail(address: string, user: string, now: number): 'user' | 'address' | null {
    if (!this.enabled) return null;
    const a = addressKey(address);
    let k = pairKey(a, user);
    let e = this.counting.get(k);
    if (e === undefined && this.stillLocked(k, now)) return null; // refused unchecked: not a guess
    const over = overflowKey(a);
    if (e === undefined && this.stillLocked(over, now)) return null; // refused by the overflow's lockout
    if (e === undefined && (this.perAddress.get(a) ?? 0) >= this.maxPerAddress) {
      k = over;
      e = this.counting.get(k);
    }
    if (e !== undefined) {
      this.counting.delete(k); // re-inserted below: the Map stays in order of last update
      if (now - e.last >= this.opts.windowMs) e.count = 0;
    } else {
      if (this.size >= this.opts.maxEntries) this.evictOne();
      // A name counted in the overflow until now keeps that count: freed slots give no fresh guesses.
      const spill = this.counting.get(over);
      const carried = spill !== undefined && now - spill.last < this.opts.windowMs ? spill.count : 0;
      const slot = k !== over;
      e = { address: a, slot, count: slot ? carried : 0, last: now };
      if (slot) this.perAddress.set(a, (this.perAddress.get(a) ?? 0) + 1);
    }
    e.count++;
    e.last = now;
    if (e.count >= this.opts.failures) {
      // An ended lockout of the same key the sweep has not reached yet gives its slot back first, and
      // the new one goes to the end of the Map (the sweep stops at the first entry still in force).
      const ended = this.locked.get(k);
      if (ended !== undefined) {
        this.locked.delete(k);
        if (ended !== e) this.released(ended);
      }
      this.locked.set(k, e);
      return k === over ? 'address' : 'user';
    }
    this.counting.set(k, e);
    return null;
  }

  /**
   * A granted AUTH: the pair's failures are forgotten, and it stays as a marker (count 0, no slot), so
   * the overflow's lockout does not refuse this user from this address (see the module comment).
   */
  succeed(address: string, user: string, now: number): void {
    if (!this.enabled) return;
    const a = addressKey(address);
    const k = pairKey(a, user);
    this.stillLocked(k, now); // a lockout that has just ended is forgotten (its slot given back) now
    let e = this.counting.get(k);
    if (e !== undefined) {
      this.counting.delete(k);
      this.released(e);
      e.slot = false;
      e.count = 0;
      e.last = now;
    } else {
      if (this.size >= this.opts.maxEntries) this.evictOne();
      e = { address: a, slot: false, count: 0, last: now };
    }
    this.counting.set(k, e);
  }

  /** Forgets entries a window old: counts that lapsed, lockouts that ended. */
  sweep(now: number): void {
    for (const map of [this.counting, this.locked]) {
      for (const [k, e] of map) {
        if (now - e.last < this.opts.windowMs) break; // the rest are newer
        map.delete(k);
        this.released(e);
      }
    }
  }

  /** True while `k` is locked out; an ended lockout the sweep has not reached yet is forgotten here. */
  private stillLocked(k: string, now: number): boolean {
    const e = this.locked.get(k);
    if (e === undefined) return false;
    if (now - e.last < this.opts.windowMs) return true;
    this.locked.delete(k);
    this.released(e);
    return false;
  }

  private lockedNow(k: string, now: number): boolean {
    const e = this.locked.get(k);
    return e !== undefined && now - e.last < this.opts.windowMs;
  }

  /**
   * Makes room for one entry: forgets the unlocked entry updated longest ago, or, when every entry is
   * locked, the lockout made longest ago (lifting it early; filling the table with lockouts takes
   * `failures` guesses an entry).
   */
  private evictOne(): void {
    const map = this.counting.size > 0 ? this.counting : this.locked;
    const oldest = map.entries().next();
    if (oldest.done === true) return;
    const [k, e] = oldest.value;
    map.delete(k);
    this.released(e);
  }

  /** Bookkeeping once `e` is gone or gives up its slot. */
  private released(e: Entry): void {
    if (!e.slot) return;
    const n = (this.perAddress.get(e.address) ?? 1) - 1;
    if (n > 0) this.perAddress.set(e.address, n);
    else this.perAddress.delete(e.address);
  }
}

/** The key of a pair: the counted address and the user name (hashed when long). */
function pairKey(address: string, user: string): string {
  if (user.length <= MAX_NAME) return `${address}\n${user}`;
  return `${address}\r${createHash('sha256').update(user).digest('base64')}`;
}

/** The key of an address's overflow entry (no user name makes it: a pair key has a \n or \r). */
function overflowKey(address: string): string {
  return `${address}\t`;
}
