/**
 * The transaction table: one entry per request the relay sent on (a new transaction id per hop,
 * RFC 4976 §6.4), kept until the next hop answers, the timer fires, or the next hop's connection goes.
 * Every entry has the same timeout, so insertion order is deadline order and one periodic sweep of the
 * oldest entries replaces a timer per transaction.
 *
 * An entry is added and removed for every chunk forwarded, so the table allocates nothing per entry: the
 * entries are linked into lists through their own fields (deadline order; per destination), and found by
 * transaction id in a {@link StringMap} (see there why not a Map, nor a Set per destination).
 */
import { StringMap } from '../util/string-map.js';

/** What the relay needs to finish a forwarded transaction. */
export interface ForwardedTransaction<P, T = unknown> {
  /** Transaction id used toward the next hop. */
  readonly tid: string;
  /** The peer the request was sent to. */
  readonly dest: P;
  /** The peer the request came from, and its transaction id there. */
  readonly source: P;
  readonly sourceTid: string;
  readonly method: string;
  /** Failure-Report of the request (`yes` when absent). */
  readonly failureReport: 'yes' | 'no' | 'partial';
  /** Message-ID, when the request had one. */
  readonly messageId: string | undefined;
  /**
   * Octets this hop's chunk carried (1-based, inclusive) and the message total, for failure REPORTs.
   * While the chunk is still being written ({@link open}) the end is the last octet written so far.
   */
  readonly rangeStart: number;
  rangeEnd: number;
  readonly total: number | '*';
  /** The From-Path as it arrived: where a failure REPORT goes (RFC 4976 §6.5). */
  readonly reportTo: string;
  /** The relay URI the request was addressed to: the From-Path of what the relay generates. */
  readonly ourUri: string;
  /** How many of this relay's URIs the request's To-Path lost here (2 when routed internally). */
  readonly hops: number;
  /** The tracked message this chunk belongs to (delivery reports), when tracked. */
  readonly tracked?: T;
  /** Deadline in ms since the epoch; entries with FR `partial` never produce a timeout report. */
  deadline: number;
  /**
   * How far into the destination's outbound stream the request ends (its transport's `bytesOut` once
   * its end-line was handed over, or an upper bound): an answer to it shows the peer read that far.
   */
  outAt: number;
  /**
   * True while the chunk's head is out but not its end-line (added by {@link TransactionTable.addOpen}):
   * the next hop may already answer (RFC 4975 §7.1); no timer runs yet.
   */
  open: boolean;
  /**
   * The stream writing the chunk while more of it may follow (null after its last piece), so an error can
   * stop the rest of it.
   */
  stream: {
    /** Last octet put on the wire. */
    readonly written: number;
    /** Last octet the sender gave, written or not. */
    readonly lastQueued: number;
    /** The sender's chunk has ended (its end-line read): nothing later will report on this chunk. */
    readonly sourceEnded: boolean;
    /** {@link refuse} was called. */
    readonly isRefused: boolean;
    refuse(): void;
  } | null;
  /** The next hop answered 200 while the chunk was open. */
  earlyOk: boolean;
  /** @internal {@link TransactionTable}'s links (null when not in one of its lists). */
  prevAll: ForwardedTransaction<P, T> | null;
  /** @internal */ nextAll: ForwardedTransaction<P, T> | null;
  /** @internal */ prevDest: ForwardedTransaction<P, T> | null;
  /** @internal */ nextDest: ForwardedTransaction<P, T> | null;
}

/** What the table keeps per destination: its open chunk and its waiting transactions, oldest first. */
interface DestEntry<P, T> {
  open: ForwardedTransaction<P, T> | null;
  head: ForwardedTransaction<P, T> | null;
  tail: ForwardedTransaction<P, T> | null;
}

/** Outstanding forwarded transactions, indexed by transaction id and by destination. */
export class TransactionTable<P, T = unknown> {
  private readonly byTid = new StringMap<ForwardedTransaction<P, T>>(256);
  /** Per destination (kept until {@link takeAllTo}, when its connection has closed). */
  private readonly dests = new Map<P, DestEntry<P, T>>();
  /** Every waiting transaction, oldest (first deadline) first. */
  private head: ForwardedTransaction<P, T> | null = null;
  private tail: ForwardedTransaction<P, T> | null = null;
  /**
   * Chunks whose end-line is not out yet: no deadline, so kept apart from the deadline-ordered list. A
   * connection has at most one (its writer streams one sub-chunk at a time).
   */
  private openCount = 0;

  /**
   * `onHold(tx, +1)` when a transaction enters the table, `onHold(tx, -1)` when it leaves it (answered,
   * timed out, its destination gone, replaced): what the relay counts per source connection.
   */
  constructor(private readonly onHold?: (tx: ForwardedTransaction<P, T>, sign: 1 | -1) => void) {}

  get size(): number {
    return this.byTid.size + this.openCount;
  }

  /** True when a transaction sent to `dest` still waits for its answer. */
  hasPendingTo(dest: P): boolean {
    const e = this.dests.get(dest);
    return e !== undefined && (e.open !== null || e.head !== null);
  }

  /**
   * The oldest transaction sent to `dest` that waits for an answer the peer owes (Failure-Report `yes`)
   * with its timer running (its end-line out), or undefined. A `partial` one gets no answer when it
   * succeeds (RFC 4975 §7.1.1), so it owes none.
   */
  oldestOwedTo(dest: P): ForwardedTransaction<P, T> | undefined {
    for (let tx = this.dests.get(dest)?.head ?? null; tx !== null; tx = tx.nextDest)
      if (tx.failureReport === 'yes') return tx;
    return undefined;
  }

  /** @internal The chunks whose head is out and whose end-line is not (tests look at them). */
  openChunks(): ForwardedTransaction<P, T>[] {
    const out: ForwardedTransaction<P, T>[] = [];
    for (const e of this.dests.values()) if (e.open !== null) out.push(e.open);
    return out;
  }

  private dest(dest: P): DestEntry<P, T> {
    let e = this.dests.get(dest);
    if (e === undefined) this.dests.set(dest, (e = { open: null, head: null, tail: null }));
    return e;
  }

  /** Records a chunk whose head went out; {@link close} starts its timer when its end-line follows. */
  addOpen(tx: ForwardedTransaction<P, T>): void {
    tx.open = true;
    const e = this.dest(tx.dest);
    if (e.open === null) this.openCount++;
    else if (e.open !== tx) this.onHold?.(e.open, -1);
    e.open = tx;
    this.onHold?.(tx, 1);
  }

  /**
   * The open chunk `tx` got its end-line: it now waits for its response until `deadline`, its octets
   * ending at `rangeEnd`. False when it is no longer open (answered early, or its connection went).
   */
  close(tx: ForwardedTransaction<P, T>, rangeEnd: number, deadline: number): boolean {
    const e = this.dests.get(tx.dest);
    if (e === undefined || e.open !== tx) return false;
    e.open = null;
    this.openCount--;
    tx.open = false;
    tx.rangeEnd = rangeEnd;
    tx.deadline = deadline;
    this.link(tx); // held since addOpen
    return true;
  }

  add(tx: ForwardedTransaction<P, T>): void {
    this.link(tx);
    this.onHold?.(tx, 1);
  }

  private link(tx: ForwardedTransaction<P, T>): void {
    const stale = this.byTid.get(tx.tid);
    if (stale !== undefined) {
      this.remove(stale); // a reused id: the newer transaction wins
      this.onHold?.(stale, -1);
    }
    this.byTid.set(tx.tid, tx);
    tx.prevAll = this.tail;
    tx.nextAll = null;
    if (this.tail === null) this.head = tx;
    else this.tail.nextAll = tx;
    this.tail = tx;
    const e = this.dest(tx.dest);
    tx.prevDest = e.tail;
    tx.nextDest = null;
    if (e.tail === null) e.head = tx;
    else e.tail.nextDest = tx;
    e.tail = tx;
  }

  /** Removes and returns the transaction `tid` if it was sent to `dest`. */
  take(tid: string, dest: P): ForwardedTransaction<P, T> | undefined {
    const tx = this.byTid.get(tid);
    if (tx === undefined) {
      const e = this.dests.get(dest);
      const open = e?.open ?? null;
      if (open === null || open.tid !== tid) return undefined;
      e!.open = null;
      this.openCount--;
      this.onHold?.(open, -1);
      return open;
    }
    if (tx.dest !== dest) return undefined;
    this.remove(tx);
    this.onHold?.(tx, -1);
    return tx;
  }

  /**
   * Removes and returns every transaction sent to `dest` (its connection closed). An open chunk is
   * returned, its range ending at the chunk's last octet (the rest never went out either), only when its
   * sender's chunk has ended;
   * otherwise its stream is aborted with the connection and the relay reports it at that end-line.
   */
  takeAllTo(dest: P): ForwardedTransaction<P, T>[] {
    const out: ForwardedTransaction<P, T>[] = [];
    const e = this.dests.get(dest);
    if (e === undefined) return out;
    this.dests.delete(dest);
    const open = e.open;
    if (open !== null) {
      this.openCount--;
      this.onHold?.(open, -1);
      if (open.stream?.sourceEnded === true) {
        // The rest of the chunk never went out either: one REPORT for all of it.
        open.rangeEnd = open.stream.lastQueued;
        out.push(open);
      }
    }
    for (let tx = e.head; tx !== null;) {
      const nextTx = tx.nextDest;
      this.unlinkAll(tx);
      this.byTid.delete(tx.tid);
      tx.prevDest = tx.nextDest = null;
      this.onHold?.(tx, -1);
      out.push(tx);
      tx = nextTx;
    }
    return out;
  }

  /** Removes and returns every transaction whose deadline has passed. */
  takeExpired(now: number): ForwardedTransaction<P, T>[] {
    const out: ForwardedTransaction<P, T>[] = [];
    // Insertion order is deadline order.
    while (this.head !== null && this.head.deadline <= now) {
      const tx = this.head;
      this.remove(tx);
      this.onHold?.(tx, -1);
      out.push(tx);
    }
    this.byTid.shrink();
    // Entries of destinations with nothing waiting go (a closed connection's, should one have come back
    // after takeAllTo); a live one's is made again by its next chunk. Once per sweep, not per chunk.
    for (const [dest, e] of this.dests) if (e.open === null && e.head === null) this.dests.delete(dest);
    return out;
  }

  private remove(tx: ForwardedTransaction<P, T>): void {
    this.byTid.delete(tx.tid);
    this.unlinkAll(tx);
    const e = this.dests.get(tx.dest);
    if (e === undefined) return;
    if (tx.prevDest === null) e.head = tx.nextDest;
    else tx.prevDest.nextDest = tx.nextDest;
    if (tx.nextDest === null) e.tail = tx.prevDest;
    else tx.nextDest.prevDest = tx.prevDest;
    tx.prevDest = tx.nextDest = null;
  }

  private unlinkAll(tx: ForwardedTransaction<P, T>): void {
    if (tx.prevAll === null) this.head = tx.nextAll;
    else tx.prevAll.nextAll = tx.nextAll;
    if (tx.nextAll === null) this.tail = tx.prevAll;
    else tx.nextAll.prevAll = tx.prevAll;
    tx.prevAll = tx.nextAll = null;
  }
}
