/**
 * The transaction table: one entry per request the relay sent on (a new transaction id per hop,
 * RFC 4976 §6.4), kept until the next hop answers, the timer fires, or the next hop's connection goes.
 * Every entry has the same timeout, so insertion order is deadline order and one periodic sweep of the
 * oldest entries replaces a timer per transaction.
 */

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
}

/** Outstanding forwarded transactions, indexed by transaction id and by destination. */
export class TransactionTable<P, T = unknown> {
  private readonly byTid = new Map<string, ForwardedTransaction<P, T>>();
  private readonly byDest = new Map<P, Set<ForwardedTransaction<P, T>>>();
  /**
   * Chunks whose end-line is not out yet: no deadline, so kept apart from the deadline-ordered map. A
   * connection has at most one (its writer streams one sub-chunk at a time).
   */
  private readonly openByDest = new Map<P, ForwardedTransaction<P, T>>();

  get size(): number {
    return this.byTid.size + this.openByDest.size;
  }

  /** Records a chunk whose head went out; {@link close} starts its timer when its end-line follows. */
  addOpen(tx: ForwardedTransaction<P, T>): void {
    tx.open = true;
    this.openByDest.set(tx.dest, tx);
  }

  /**
   * The open chunk `tx` got its end-line: it now waits for its response until `deadline`, its octets
   * ending at `rangeEnd`. False when it is no longer open (answered early, or its connection went).
   */
  close(tx: ForwardedTransaction<P, T>, rangeEnd: number, deadline: number): boolean {
    if (this.openByDest.get(tx.dest) !== tx) return false;
    this.openByDest.delete(tx.dest);
    tx.open = false;
    tx.rangeEnd = rangeEnd;
    tx.deadline = deadline;
    this.add(tx);
    return true;
  }

  add(tx: ForwardedTransaction<P, T>): void {
    this.byTid.set(tx.tid, tx);
    let set = this.byDest.get(tx.dest);
    if (set === undefined) this.byDest.set(tx.dest, (set = new Set()));
    set.add(tx);
  }

  /** Removes and returns the transaction `tid` if it was sent to `dest`. */
  take(tid: string, dest: P): ForwardedTransaction<P, T> | undefined {
    const tx = this.byTid.get(tid);
    if (tx === undefined) {
      const open = this.openByDest.get(dest);
      if (open === undefined || open.tid !== tid) return undefined;
      this.openByDest.delete(dest);
      return open;
    }
    if (tx.dest !== dest) return undefined;
    this.remove(tx);
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
    const open = this.openByDest.get(dest);
    if (open !== undefined) {
      this.openByDest.delete(dest);
      if (open.stream?.sourceEnded === true) {
        // The rest of the chunk never went out either: one REPORT for all of it.
        open.rangeEnd = open.stream.lastQueued;
        out.push(open);
      }
    }
    const set = this.byDest.get(dest);
    if (set === undefined) return out;
    this.byDest.delete(dest);
    for (const tx of set) {
      this.byTid.delete(tx.tid);
      out.push(tx);
    }
    return out;
  }

  /** Removes and returns every transaction whose deadline has passed. */
  takeExpired(now: number): ForwardedTransaction<P, T>[] {
    const out: ForwardedTransaction<P, T>[] = [];
    for (const tx of this.byTid.values()) {
      if (tx.deadline > now) break; // insertion order is deadline order
      out.push(tx);
    }
    for (const tx of out) this.remove(tx);
    return out;
  }

  private remove(tx: ForwardedTransaction<P, T>): void {
    this.byTid.delete(tx.tid);
    const set = this.byDest.get(tx.dest);
    set?.delete(tx);
    if (set?.size === 0) this.byDest.delete(tx.dest);
  }
}
