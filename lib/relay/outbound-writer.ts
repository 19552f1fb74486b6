/**
 * What goes out on one connection, in what order. Whole frames (responses, REPORTs, small requests) go
 * first; forwarded SEND chunks stream through as their bytes arrive (cut-through), one on the wire at a
 * time. RFC 4975 §7.1 / RFC 4976 §6.7: a sender with a large chunk in progress must interrupt it when
 * responses or REPORTs are waiting, so the active chunk is ended with `+` and continued later in a new
 * transaction whose Byte-Range starts at the next octet. Streams take turns (a quantum of bytes each),
 * and a stream whose source is slow yields the wire to one that has data.
 *
 * On a message-framed transport (WebSocket) each chunk must fit one message (RFC 7977 §5.2): a stream
 * is cut into sub-chunks of at most `maxChunkBody` octets with exact Byte-Ranges.
 *
 * The newest octet of a chunk is held until more octets or the chunk's end-line arrive, and the whole
 * piece that carries the octet its Byte-Range declares last (the end-line nearly always comes in the
 * same read). So an open sub-chunk can always be interrupted and continued with at least one octet: a
 * sender that withholds its end-line cannot hold the connection's responses and REPORTs, or other
 * streams, behind its chunk, and no continuation is empty (`N+1-N/T`, which receivers refuse), whether
 * the chunk declares its last octet or not (range-end and total `*`, no Byte-Range) and whether its
 * sender ends it at the declared end or earlier with `+` (as a relay that interrupts its own chunks
 * does). While the connection's queue is over its limit only the newest octet is held: the sources are
 * paused then, and held pieces must not keep them paused (their end-lines unread) for good.
 *
 * ```
 *  source ─push(piece)─► ChunkStream ─┐
 *  source ─push(piece)─► ChunkStream ─┼─► pump ─► Connection ─► socket
 *  relay ──sendFrame(response)────────┘  (control first)
 * ```
 */
import type { ContinuationFlag } from '../constants.js';
import type { Header } from '../msrp/message.js';
import { formatByteRange, type ByteRange } from '../msrp/headers.js';
import { formatHead, frameTail, randomId } from '../msrp/serializer.js';
import type { Connection } from '../transport/connection.js';

/** Bytes a stream may write before it yields to another stream with data. */
const QUANTUM = 64 * 1024;
/**
 * Pieces smaller than this are copied before they are queued, so they do not pin a whole read buffer; so
 * is a larger one that covers less than half of the buffer it is a view of (a read, a WebSocket message):
 * a queue then holds at most twice the octets it counts. (Memory audit: a WebSocket message of 1 MiB of
 * blank lines around one SEND with a 4 KiB body kept the whole MiB per queued body, 220 MiB behind a
 * queue counted at 1 MiB.)
 */
const COPY_BELOW = 4096;

/** One outgoing piece of a forwarded chunk, reported when its end-line has been written. */
export interface SubChunkSent {
  /** Transaction id used on this hop. */
  tid: string;
  /** First and last octet numbers carried (end = start - 1 for an empty body). */
  start: number;
  end: number;
  flag: ContinuationFlag;
  /** The incoming chunk's last piece (its own end-line), not an interruption. */
  last: boolean;
}

/** How to write one forwarded SEND chunk. */
export interface StreamSpec {
  /** The head to send: paths already rewritten, every other header as received. */
  headers: Header[];
  /** The incoming Byte-Range, or null when the request had none (a whole message). */
  byteRange: ByteRange | null;
  /** Index of the Byte-Range header in `headers`, -1 when absent. */
  byteRangeIndex: number;
  /** Called for every sub-chunk whose end-line was written (the relay starts its timer then). */
  onSent(sub: SubChunkSent): void;
  /**
   * Called when a sub-chunk's head goes out ahead of its body (byte streams), with its transaction id and
   * first octet: the next hop may answer before the end-line (a 413 to stop a transfer, RFC 4975 §7.1),
   * so the relay can know the transaction from then on.
   */
  onOpen?(tid: string, start: number): void;
  /**
   * Called when the destination died after the sender had finished this chunk, with the octets that
   * never went on the wire (`from` > `to` when none): the sender was answered already, so only a failure
   * REPORT can tell it. Not called while a sub-chunk is open: that transaction's REPORT covers the rest.
   */
  onAbort?(from: number, to: number): void;
}

/** A forwarded chunk in transit: the source pushes pieces and finally the end-line flag. */
export class ChunkStream {
  readonly spec: StreamSpec;
  /** @internal */ pieces: Buffer[] = [];
  /** @internal */ pendingBytes = 0;
  /** @internal */ finished: ContinuationFlag | null = null;
  /** @internal Next octet number to put on the wire. */ offset: number;
  /**
   * @internal The last octet the incoming Byte-Range declares (its end, or the total when the end is `*`),
   * -1 when unknown: held until the end-line arrives (see the module comment).
   */
  readonly lastOctet: number;
  /** @internal */ subOpen = false;
  /** @internal The open sub-chunk went out with an exact range: it is written to its end, never cut. */
  subWhole = false;
  /** @internal */ subTid = '';
  /** @internal */ subStart = 0;
  /** @internal */ subCount = 0;
  /** @internal */ turnBytes = 0;
  /** @internal */ done = false;
  private aborted = false;
  private refused = false;
  /** The sender's chunk ended ({@link finish} was called). */
  sourceEnded = false;
  private readonly writer: OutboundWriter;

  constructor(writer: OutboundWriter, spec: StreamSpec) {
    this.writer = writer;
    this.spec = spec;
    this.offset = spec.byteRange?.start ?? 1;
    const range = spec.byteRange;
    const last = range === null ? '*' : typeof range.end === 'number' ? range.end : range.total;
    this.lastOctet = typeof last === 'number' ? last : -1;
  }

  /** @internal Queued octets that may go before the end-line arrives: all but the newest one. */
  get sendableOctets(): number {
    return this.finished !== null || this.pendingBytes === 0 ? this.pendingBytes : this.pendingBytes - 1;
  }

  /** @internal True when the next queued piece is the newest and no end-line came yet: its last octet waits. */
  nextPieceHeld(): boolean {
    return this.finished === null && this.pieces.length === 1;
  }

  /** @internal True when the held piece carries the declared last octet: it waits whole unless congested. */
  heldWhole(): boolean {
    return this.lastOctet >= 0 && this.offset + this.pendingBytes > this.lastOctet;
  }

  /** Queues body octets (a view is fine: small ones are copied). */
  push(piece: Buffer): void {
    if (this.done || this.refused || piece.length === 0) return;
    const p =
      piece.length < COPY_BELOW || piece.length * 2 < piece.buffer.byteLength ? Buffer.from(piece) : piece;
    this.pieces.push(p);
    this.pendingBytes += p.length;
    this.writer.queued(p.length);
    this.writer.pump();
  }

  /** The incoming chunk ended with `flag`. */
  finish(flag: ContinuationFlag): void {
    this.sourceEnded = true;
    if (this.done || this.finished !== null) return;
    this.finished = flag;
    this.writer.pump();
  }

  /**
   * The next hop answered a sub-chunk of this chunk with an error: the rest of the chunk is not sent
   * (queued octets dropped, later pushes swallowed) and an open sub-chunk is ended with `#` (RFC 4975
   * §7.1: the sender aborts a chunk the receiver refused).
   */
  refuse(): void {
    if (this.done || this.refused) return;
    this.discardQueued();
    this.refused = true;
    if (this.subOpen) {
      this.finished = '#';
      this.writer.pump();
    } else {
      this.writer.forget(this); // between sub-chunks: nothing to end, nothing more to send
    }
  }

  /**
   * The relay refused the incoming chunk itself (over --max-message-size, longer than its Byte-Range,
   * malformed): what is queued goes out, then the `#` end-line (RFC 4975 §7.1), as with {@link finish}.
   * It counts as refused: its sender has been told, so no piece of it waits for an answer that would
   * be reported a second time (a 408 failure REPORT after the 413).
   */
  cut(): void {
    if (!this.done) this.refused = true;
    this.finish('#');
  }

  /** @internal Drops the octets queued and not written, and takes them off the writer's queue. */
  discardQueued(): void {
    this.writer.queued(-this.pendingBytes);
    this.pieces = [];
    this.pendingBytes = 0;
  }

  /** Number of the last octet put on the wire so far (start - 1 before the first). */
  get written(): number {
    return this.offset - 1;
  }

  /** Number of the last octet the source gave, written or still queued here. */
  get lastQueued(): number {
    return this.offset + this.pendingBytes - 1;
  }

  /** True once {@link refuse} or {@link cut} was called: the source's further octets go nowhere. */
  get isRefused(): boolean {
    return this.refused;
  }

  /** True once the final end-line went out (or the connection died). */
  get isDone(): boolean {
    return this.done;
  }

  /** True when the destination died before the chunk's last end-line went out. */
  get isAborted(): boolean {
    return this.aborted;
  }

  /** @internal The destination is gone; `notify`: tell {@link StreamSpec.onAbort}. */
  abort(notify = true): void {
    // A refused chunk was reported when it was refused: its loss is not news to the sender.
    if (!this.done && !this.refused) {
      this.aborted = true;
      if (notify && this.sourceEnded) this.spec.onAbort?.(this.offset, this.lastQueued);
    }
    this.done = true;
  }
}

/**
 * Octets held for many connections together, with a limit per connection that shrinks to `floor` while
 * the total is past `max` (until it is back under half: {@link pressing}). The relay has two: the
 * octets queued in every writer (`--max-total-queued-bytes`; past its limit a queue counts as congested
 * and pauses its sources, so many slow readers cannot hold `--max-queued-bytes` each), and what the
 * requests waiting for each next hop's answer hold (past its limit, more toward that hop are refused).
 * Under the floor a connection goes on: its normal traffic is not stopped by others'.
 */
export class QueueBudget {
  /** Octets held, all connections together. */
  total = 0;
  /** True from passing `max` until the total is back under half of it. */
  pressing = false;
  /** Writers congested while under pressure, to look again once it ends. */
  private readonly throttled = new Set<OutboundWriter>();
  private waking = false;

  constructor(
    readonly max: number,
    readonly floor: number,
  ) {}

  /** The limit of one connection whose own limit is `perConnection`: the floor while under pressure. */
  limit(perConnection: number): number {
    return this.pressing ? Math.min(perConnection, this.floor) : perConnection;
  }

  /** @internal */
  add(n: number): void {
    this.total += n;
    if (!this.pressing && this.total > this.max) this.pressing = true;
  }

  /** @internal */
  sub(n: number): void {
    this.total -= n;
    if (this.pressing && this.total < this.max / 2) {
      this.pressing = false;
      // Not from inside the writer whose dequeue ended it: the others are pumped on their own turn.
      if (this.throttled.size > 0 && !this.waking) {
        this.waking = true;
        setImmediate(() => {
          this.waking = false;
          const writers = [...this.throttled];
          this.throttled.clear();
          for (const w of writers) w.pump();
        });
      }
    }
  }

  /** @internal */
  watch(w: OutboundWriter): void {
    this.throttled.add(w);
  }

  /** @internal */
  unwatch(w: OutboundWriter): void {
    this.throttled.delete(w);
  }
}

/** Options of an {@link OutboundWriter}. */
export interface OutboundWriterOptions {
  /** Largest body per outgoing chunk (message-framed transports); Infinity for byte streams. */
  maxChunkBody: number;
  /** Queued bytes above which the producers toward this connection are paused. */
  maxQueuedBytes: number;
  /** Called when the queue falls below half of `maxQueuedBytes` after having passed it. */
  onLowWater: () => void;
  /** Where re-chunking is counted (the relay's counters); default: a private object. */
  counters?: WriterCounters;
  /** The relay-wide budget this writer's queue counts in; default: none (a private, unlimited one). */
  budget?: QueueBudget;
}

/** Counters an {@link OutboundWriter} bumps. */
export interface WriterCounters {
  /**
   * Sub-chunks written beyond the first of a forwarded chunk: interruptions (RFC 4975 §7.1) and
   * WebSocket splits (RFC 7977 §5.1).
   */
  rechunked: number;
}

/** Orders and writes everything sent on one connection. */
export class OutboundWriter {
  private readonly conn: Connection;
  private readonly framed: boolean;
  private readonly maxChunkBody: number;
  private readonly maxQueuedBytes: number;
  private readonly highWater: number;
  private readonly onLowWater: () => void;
  private readonly counters: WriterCounters;
  private control: Buffer[][] = [];
  private waiting: ChunkStream[] = [];
  private active: ChunkStream | null = null;
  private queuedBytes = 0;
  /** Octets of whole frames waiting in {@link control} (not yet handed to the transport). */
  private controlBytes = 0;
  private pumping = false;
  private overLimit = false;
  private dead = false;
  /** A {@link Connection.whenFlushed} call is pending (see {@link pump}). */
  private flushWatch = false;
  /** Called once the whole frames queued now have been handed to the transport ({@link whenControlSent}). */
  private controlSent: (() => void) | null = null;
  private readonly budget: QueueBudget;

  constructor(conn: Connection, options: OutboundWriterOptions) {
    this.conn = conn;
    this.framed = conn.messageFramed;
    this.maxChunkBody = options.maxChunkBody;
    this.maxQueuedBytes = options.maxQueuedBytes;
    this.highWater = Math.min(256 * 1024, Math.max(16 * 1024, options.maxQueuedBytes / 2));
    this.onLowWater = options.onLowWater;
    this.counters = options.counters ?? { rechunked: 0 };
    this.budget = options.budget ?? new QueueBudget(Infinity, Infinity);
  }

  /** The queue size past which sources pause: `maxQueuedBytes`, or the budget's floor under pressure. */
  private get limit(): number {
    return this.budget.limit(this.maxQueuedBytes);
  }

  /** Accounts bytes leaving the queue. */
  private dequeued(n: number): void {
    this.queuedBytes -= n;
    this.budget.sub(n);
  }

  /** Bytes waiting here, not yet handed to the transport. */
  get heldBytes(): number {
    return this.queuedBytes;
  }

  /** Bytes of whole frames waiting here: they go out ahead of the streams' pieces. */
  get controlQueued(): number {
    return this.controlBytes;
  }

  /** Bytes waiting here plus bytes the transport has not flushed yet. */
  get totalQueued(): number {
    return this.queuedBytes + this.conn.writableLength;
  }

  /** True while the queue is past `maxQueuedBytes`: producers should pause. */
  get congested(): boolean {
    return this.overLimit;
  }

  /** Queues a whole frame ahead of any streaming chunk. */
  sendFrame(parts: Buffer[]): void {
    if (this.dead) return;
    let n = 0;
    for (const p of parts) n += p.length;
    this.control.push(parts);
    this.controlBytes += n;
    this.queued(n);
    this.pump();
  }

  /**
   * True when whole frames (responses, REPORTs) waiting here, not forwarded chunks, fill half the queue:
   * the peer does not read what the relay answers it. A connection that also carries forwarded chunks
   * (to a chained relay) is congested by those as well, and pausing it for them could stop both relays
   * reading the one connection between them for good.
   */
  get controlCongested(): boolean {
    return this.overLimit && this.controlBytes > this.maxQueuedBytes / 2;
  }

  /**
   * Calls `cb` once every whole frame queued so far (responses, REPORTs) has been handed to the
   * transport: at once when none waits, else when the queue next moves (on `drain`). For a close that must
   * not drop what was just queued to say goodbye. Not called if the connection dies first.
   */
  whenControlSent(cb: () => void): void {
    if (this.control.length === 0) cb();
    else this.controlSent = cb;
  }

  /** Starts a forwarded chunk; its bytes follow through {@link ChunkStream.push}. */
  openStream(spec: StreamSpec): ChunkStream {
    const s = new ChunkStream(this, spec);
    // Toward a dead connection: aborted from the start, so the sender is refused at its end-line.
    if (this.dead) s.abort(false);
    else this.waiting.push(s);
    return s;
  }

  /** The connection is gone: drop everything queued; open streams swallow further pushes. */
  kill(): void {
    this.dead = true;
    // Streams cut off before their last end-line went out: their senders must hear of it (relay).
    for (const s of this.waiting) s.abort();
    if (this.active) this.active.abort();
    this.waiting = [];
    this.active = null;
    this.control = [];
    this.controlBytes = 0;
    this.dequeued(this.queuedBytes);
    // A dead connection never drains: it must not keep (or start) pausing its sources.
    this.overLimit = false;
    this.budget.unwatch(this);
  }

  /** True while forwarded chunks wait here or one is being written. */
  get hasStreams(): boolean {
    return this.active !== null || this.waiting.length > 0;
  }

  /**
   * Shutdown: forwarded chunks with nothing on the wire now (no sub-chunk open) are dropped and their
   * senders told through {@link StreamSpec.onAbort}, while the connections can still carry the failure
   * REPORTs; a chunk with a sub-chunk open is left to end (its transaction's REPORT covers the rest).
   */
  abandonStreams(): void {
    const open: ChunkStream[] = [];
    for (const s of this.waiting)
      if (s.subOpen) open.push(s);
      else this.drop(s);
    this.waiting = open;
    const a = this.active;
    if (a !== null && !a.subOpen) {
      this.drop(a);
      this.active = null;
    }
    this.pump();
  }

  /** Aborts `s` (telling its sender) and frees what it had queued. */
  private drop(s: ChunkStream): void {
    s.abort();
    s.discardQueued();
  }

  /** @internal Accounts bytes entering the queue (leaving it when negative). */
  queued(n: number): void {
    this.queuedBytes += n;
    if (n >= 0) this.budget.add(n);
    else this.budget.sub(-n);
    if (!this.overLimit && this.totalQueued > this.limit) {
      this.overLimit = true;
      if (this.budget.pressing) this.budget.watch(this);
    }
  }

  /** Writes as much as the transport accepts; called on every change and on `drain`. */
  pump(): void {
    if (this.pumping || this.dead) return;
    this.pumping = true;
    try {
      this.pumpLoop();
    } finally {
      this.pumping = false;
    }
    if (!this.overLimit) return;
    // Pressure may have come back before a wake-up reached this writer: it is watched again.
    if (this.budget.pressing) this.budget.watch(this);
    if (this.totalQueued < this.limit / 2) {
      this.overLimit = false;
      this.budget.unwatch(this);
      this.onLowWater();
    } else if (
      !this.flushWatch &&
      this.queuedBytes < this.limit / 2 &&
      this.conn.writableLength < this.highWater
    ) {
      // Only octets in the transport keep the queue over half its limit, and below its high-water mark
      // the transport owes no 'drain': without another look once they have left, the paused sources
      // (and the end-lines of held pieces) would never be read again.
      this.flushWatch = true;
      this.conn.whenFlushed(() => {
        this.flushWatch = false;
        this.pump();
      });
    }
  }

  private pumpLoop(): void {
    for (;;) {
      if (this.conn.closed) return;
      if (this.conn.writableLength >= this.highWater) return; // wait for drain
      let a = this.active;
      if (this.control.length > 0) {
        // RFC 4975 §7.1: interrupt a chunk in progress when responses or REPORTs are waiting. Its newest
        // octet is still queued (held for the end-line), so the continuation is not empty.
        if (a !== null && a.subOpen) {
          if (a.pendingBytes === 0 && a.finished !== null) {
            // Only the end-line is left and its flag is known: it goes now. Interrupting here would
            // leave an empty continuation chunk (`N+1-N/T`) to carry the flag.
            this.closeSub(a, a.finished);
            this.retire(a);
          } else {
            this.closeSub(a, '+');
          }
        }
        this.flushControl();
        continue;
      }
      const rotate = a !== null && a.finished === null && a.turnBytes >= QUANTUM;
      if (a === null || !this.ready(a) || (rotate && this.waiting.some((s) => this.ready(s)))) {
        const next = this.waiting.find((s) => this.ready(s));
        if (next === undefined) {
          if (a === null || !this.ready(a)) return;
        } else {
          if (a !== null) {
            if (a.subOpen) this.closeSub(a, '+');
            this.waiting.push(a);
          }
          this.waiting.splice(this.waiting.indexOf(next), 1);
          next.turnBytes = 0;
          this.active = a = next;
        }
      }
      if (this.framed) this.writeMessage(a!);
      else this.writeStream(a!);
    }
  }

  /** A stream can use the wire now. */
  private ready(s: ChunkStream): boolean {
    if (s.finished !== null) return true;
    // Framed: a full message leaves only once more octets follow it, so the chunk's last message is
    // never empty (`N+1-N/T`) when the end-line arrives just after exactly `maxChunkBody` octets.
    // When the queue is over its limit a partial message goes too: otherwise streams each holding less
    // than one message could fill the queue with nothing ready to write, and never drain.
    if (this.framed) return s.pendingBytes > this.maxChunkBody || (this.overLimit && s.sendableOctets > 0);
    if (!s.nextPieceHeld()) return s.pendingBytes > 0;
    return (this.overLimit || !s.heldWhole()) && s.sendableOctets > 0;
  }

  private flushControl(): void {
    const frames = this.control;
    this.control = [];
    this.controlBytes = 0;
    for (const parts of frames) {
      for (const p of parts) this.dequeued(p.length);
      this.conn.writeFrame(parts);
    }
    const cb = this.controlSent;
    if (cb !== null) {
      this.controlSent = null;
      cb();
    }
  }

  /** Byte-stream transport: write pending pieces of `s`, or its end-line once finished. */
  private writeStream(s: ChunkStream): void {
    if (s.pendingBytes > 0) {
      if (!s.subOpen) this.openSub(s);
      // A whole sub-chunk goes on past the high-water mark (by its head at most: see openSub), so that
      // nothing can interrupt it; any other goes on until it carries one octet at least, so that an
      // interruption never leaves an empty `+` sub-chunk (whose failure REPORT would say `1-0/T`).
      while (
        s.pieces.length > 0 &&
        (s.subWhole || s.offset === s.subStart || this.conn.writableLength < this.highWater)
      ) {
        let p = s.pieces[0]!;
        if (s.nextPieceHeld()) {
          // All of it but the held octet; a piece with the declared last octet only when congested (see
          // the module comment).
          const n = s.sendableOctets;
          if (n === 0 || (!this.overLimit && s.heldWhole())) break;
          s.pieces[0] = p.subarray(n);
          p = p.subarray(0, n);
        } else {
          s.pieces.shift();
        }
        s.pendingBytes -= p.length;
        this.dequeued(p.length);
        s.offset += p.length;
        s.turnBytes += p.length;
        this.conn.writePiece(p);
      }
      // Everything written and the flag known: the end-line goes with it (a whole sub-chunk always ends
      // here, so nothing queued meanwhile can interrupt it).
      if (s.pendingBytes > 0 || s.finished === null) return;
    }
    this.closeSub(s, s.finished!);
    this.retire(s);
  }

  private openSub(s: ChunkStream): void {
    const tid = randomId();
    // RFC 4975 §7.1 (digest §1.7, §2.8): range-end is `*` while the relay may still interrupt the chunk.
    // It is exact (the head as received, for a first sub-chunk) only when the end-line came and every
    // octet left goes out in this same pass (below the transport's high-water mark), with no interruption.
    const whole = s.finished !== null && s.pendingBytes + this.conn.writableLength < this.highWater;
    const end = !whole ? '*' : s.subCount === 0 ? null : s.offset + s.pendingBytes - 1;
    const head = formatHead(`MSRP ${tid} SEND`, this.subHeaders(s, end), true);
    s.subOpen = true;
    s.subWhole = whole;
    s.subTid = tid;
    s.subStart = s.offset;
    if (s.subCount++ > 0) this.counters.rechunked++;
    this.conn.writeFrame([head]);
    s.spec.onOpen?.(tid, s.offset);
  }

  /** Ends the open sub-chunk of `s` (opening an empty one if none is open) with `flag`. */
  private closeSub(s: ChunkStream, flag: ContinuationFlag): void {
    if (!s.subOpen) this.openSub(s);
    s.subOpen = false;
    this.conn.writeFrame([Buffer.from(frameTail(s.subTid, flag, true), 'latin1')]);
    const last = s.finished !== null && s.pendingBytes === 0;
    s.spec.onSent({ tid: s.subTid, start: s.subStart, end: s.offset - 1, flag, last });
  }

  /** Message-framed transport: one whole sub-chunk of at most `maxChunkBody` octets per message. */
  private writeMessage(s: ChunkStream): void {
    const last = s.finished !== null && s.pendingBytes <= this.maxChunkBody;
    // A shorter message only when congested (see ready()), never with the held last octet: its Byte-Range
    // is exact all the same.
    const len = last ? s.pendingBytes : Math.min(s.sendableOctets, this.maxChunkBody);
    const body = takeBytes(s, len);
    this.dequeued(len);
    const flag: ContinuationFlag = last ? s.finished! : '+';
    // The head as received only when it says exactly what this message carries: none, or an exact range
    // (RFC 4976 §6.7: the relay makes the range exact when it knows it; RFC 7977 §5.1).
    const range = s.spec.byteRange;
    const whole = last && s.subCount === 0 && (range === null || typeof range.end === 'number');
    let tid = randomId();
    while (body.includes('\r\n-------' + tid)) tid = randomId();
    const headers = this.subHeaders(s, whole ? null : s.offset + len - 1);
    const head = formatHead(`MSRP ${tid} SEND`, headers, true);
    const start = s.offset;
    s.offset += len;
    if (s.subCount++ > 0) this.counters.rechunked++;
    this.conn.writeFrame([head, body, Buffer.from(frameTail(tid, flag, true), 'latin1')]);
    s.spec.onSent({ tid, start, end: s.offset - 1, flag, last });
    if (last) this.retire(s);
  }

  /**
   * Headers of the next sub-chunk. `end` null keeps the incoming Byte-Range verbatim (first piece of an
   * unsplit chunk); otherwise Byte-Range becomes `offset-end/total` (RFC 4976 §6.7: exact when known,
   * `*` when the relay may still interrupt), with the incoming total.
   */
  private subHeaders(s: ChunkStream, end: number | '*' | null): Header[] {
    const { headers, byteRange, byteRangeIndex } = s.spec;
    if (end === null) return headers;
    const range: ByteRange = { start: s.offset, end, total: byteRange?.total ?? '*' };
    const out = headers.slice();
    const h: Header = [
      byteRangeIndex >= 0 ? headers[byteRangeIndex]![0] : 'Byte-Range',
      formatByteRange(range),
    ];
    if (byteRangeIndex >= 0) out[byteRangeIndex] = h;
    else out.splice(2, 0, h);
    return out;
  }

  /** @internal Drops a stream that has no sub-chunk open: it writes nothing more. */
  forget(s: ChunkStream): void {
    if (this.active === s) this.active = null;
    const i = this.waiting.indexOf(s);
    if (i !== -1) this.waiting.splice(i, 1);
    s.done = true;
  }

  private retire(s: ChunkStream): void {
    s.done = true;
    if (this.active === s) this.active = null;
  }
}

/** Removes exactly `len` octets from the front of the stream's queue (one copy when pieces join). */
function takeBytes(s: ChunkStream, len: number): Buffer {
  s.pendingBytes -= len;
  const first = s.pieces[0];
  if (first !== undefined && first.length === len) return s.pieces.shift()!;
  if (first !== undefined && first.length > len) {
    s.pieces[0] = first.subarray(len);
    return first.subarray(0, len);
  }
  const out = Buffer.allocUnsafe(len);
  let filled = 0;
  while (filled < len) {
    const p = s.pieces[0]!;
    const n = Math.min(p.length, len - filled);
    p.copy(out, filled, 0, n);
    filled += n;
    if (n === p.length) s.pieces.shift();
    else s.pieces[0] = p.subarray(n);
  }
  return out;
}
