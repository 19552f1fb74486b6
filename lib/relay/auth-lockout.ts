/**
 * Lockout of password guessing: failed Digest AUTHs counted per (client address, user name). A run of
 * failures counts while each comes within `windowMs` of the one before it; once a pair's run reaches
 * `failures`, AUTHs for that user from that address are refused with 403, their credentials unchecked,
 * until `windowMs` after the last counted failure (refused attempts do not extend it). RFC 4976 §6.3 only asks
 * that a connection be closed after several failures; a client that reconnects could otherwise guess
 * at the speed of the network.
 *
 * The key holds the user name so that users behind one NAT address do not lock each other out; a
 * guesser that tries many user names from one address is left to the connection caps and to log-based
 * tools (each failure is logged with its address and user name: docs/operations.md).
 *
 * Memory is bounded: at most `maxEntries` pairs are remembered; when full, the pair updated longest ago
 * is forgotten first.
 */
import { addressKey } from './listeners.js';

/** Settings of {@link AuthLockout}. */
export interface AuthLockoutOptions {
  /** Failed guesses that lock a pair out; 0 turns the lockout off. */
  failures: number;
  /** A gap this long ends a run of failures, and a lockout lasts this long after its last one (ms). */
  windowMs: number;
  /** Pairs remembered at most. */
  maxEntries: number;
}

interface Entry {
  /** Failures in the current run. */
  count: number;
  /** When the last counted failure came (ms). */
  last: number;
}

/** The per-(address, user) failure counts; see the module comment. */
export class AuthLockout {
  /** In order of last update (an updated entry is moved to the end), oldest first. */
  private readonly entries = new Map<string, Entry>();

  constructor(private readonly opts: AuthLockoutOptions) {}

  /** True when the lockout is on (`failures` above 0). */
  get enabled(): boolean {
    return this.opts.failures > 0;
  }

  /** Pairs remembered now (for metrics). */
  get size(): number {
    return this.entries.size;
  }

  /** Pairs locked out now (for metrics; walks the entries). */
  lockedCount(now: number): number {
    let n = 0;
    for (const e of this.entries.values()) if (this.locks(e, now)) n++;
    return n;
  }

  /** True when AUTHs for `user` from `address` are refused now. */
  isLocked(address: string, user: string, now: number): boolean {
    if (!this.enabled) return false;
    const e = this.entries.get(key(address, user));
    return e !== undefined && this.locks(e, now);
  }

  /**
   * Counts a failed guess for `user` from `address`; returns true when this failure locks the pair out
   * (it reaches the limit now).
   */
  fail(address: string, user: string, now: number): boolean {
    if (!this.enabled) return false;
    const k = key(address, user);
    let e = this.entries.get(k);
    if (e !== undefined) {
      this.entries.delete(k); // re-inserted below: the Map stays in order of last update
      if (now - e.last >= this.opts.windowMs) e = undefined;
    }
    if (e === undefined) {
      e = { count: 0, last: now };
      if (this.entries.size >= this.opts.maxEntries) {
        const oldest = this.entries.keys().next();
        if (oldest.done !== true) this.entries.delete(oldest.value);
      }
    }
    e.count++;
    e.last = now;
    this.entries.set(k, e);
    return e.count === this.opts.failures;
  }

  /** A granted AUTH: the pair's failures are forgotten. */
  succeed(address: string, user: string): void {
    if (this.enabled) this.entries.delete(key(address, user));
  }

  /** Forgets pairs whose last failure is a window old (they neither count nor lock any more). */
  sweep(now: number): void {
    for (const [k, e] of this.entries) {
      if (now - e.last < this.opts.windowMs) break; // the rest were updated later
      this.entries.delete(k);
    }
  }

  private locks(e: Entry, now: number): boolean {
    return e.count >= this.opts.failures && now - e.last < this.opts.windowMs;
  }
}

/** The address as counted (an IPv4 address, or an IPv6 /64) and the user name. */
function key(address: string, user: string): string {
  return `${addressKey(address)}\n${user}`;
}
