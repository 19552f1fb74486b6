/**
 * One connection as the relay sees it: its parser, what it is sending (the frame in progress), its
 * outbound queue, its timers and its backpressure links. Every decision is the relay's; a Peer only
 * turns parser events into calls on {@link PeerOwner} and keeps per-connection state.
 */
import type { ContinuationFlag } from '../constants.js';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { getHeader, type FrameHead, type RequestHead } from '../msrp/message.js';
import { MsrpParser, type ErrorContext, type ParserHandler } from '../msrp/parser.js';
import { classifyWsMessage, firstFrameHead } from '../msrp/ws-message.js';
import type { Connection } from '../transport/connection.js';
import {
  OutboundWriter,
  type ChunkStream,
  type QueueBudget,
  type WriterCounters,
} from './outbound-writer.js';
import { LogBudget } from './log-budget.js';
import type { TrackedIm } from './relay-reports.js';
import type { RelayIdentity } from './relay-identity.js';
import type { RouteMemo } from './router.js';

/** Counters a peer and its writer bump: plain numbers the metrics layer reads. */
export interface PeerCounters extends WriterCounters {
  /** Times a connection's reading was paused because a destination's queue was full. */
  readerPauses: number;
}

/** The relay side of a peer: where parser events end up. */
export interface PeerOwner {
  /** Shared counters (the relay's). */
  readonly counters: PeerCounters;
  /** A request head: returns what to do with its body (`stream` for cut-through SENDs). */
  onRequestHead(peer: Peer, head: RequestHead): IncomingFrame;
  /** A streamed chunk carried more octets than declared: returns the frame that replaces it. */
  onOverrun(peer: Peer, frame: IncomingFrame & { kind: 'stream' }): IncomingFrame;
  /**
   * A SEND without Byte-Range held for dedupe outgrew the hold: returns the frame that forwards it from
   * its head (the peer then feeds it the held octets as any body).
   */
  onHeldOverflow(peer: Peer, frame: IncomingFrame & { kind: 'collect' }): IncomingFrame;
  /** Body octets of a tracked chunk (the report tracker keeps the CPIM head). */
  onTrackedBody(chunk: TrackedIm, piece: Buffer): void;
  /** A tracked chunk was cut by the connection closing: it ends as if with `#`. */
  onTrackedAbort(chunk: TrackedIm): void;
  /** The end of a request: finishes a streamed chunk, answers, or handles a collected body. */
  onRequestEnd(peer: Peer, frame: IncomingFrame, flag: ContinuationFlag): void;
  onResponse(peer: Peer, head: FrameHead & { kind: 'response' }): void;
  onParseError(peer: Peer, err: MsrpError, context: ErrorContext | null, frame: IncomingFrame | null): void;
  onClose(peer: Peer, reason: string): void;
}

/** What the relay decided to do with an incoming request's body. */
export type IncomingFrame =
  | {
      kind: 'stream';
      head: RequestHead;
      stream: ChunkStream;
      dest: Peer;
      ourUri: string;
      /** The chunk's handle in the report tracker, null when not tracked. */
      tracked: TrackedIm | null;
      /** Body octets the Byte-Range declares (Infinity when its end is `*`), and octets seen. */
      declared: number;
      received: number;
    }
  | {
      kind: 'collect';
      head: RequestHead;
      pieces: Buffer[];
      /**
       * A SEND held whole (dedupe): the body octets it may have (its Byte-Range's, or the hold limit when
       * it has none: `unbounded`, then forwarded as usual past the limit) and the octets read so far.
       */
      held?: { declared: number; received: number; ourUri: string; unbounded: boolean };
    }
  | {
      kind: 'drop';
      head: RequestHead;
      status: number;
      comment: string;
      ourUri: string;
      /** Body octets read (and discarded) so far; absent until the first. */
      received?: number;
      /**
       * A first chunk refused after routing (413: its message too large, or its head too large for a
       * WebSocket next hop; 400: its head too large to forward): tracked while its body is discarded, so
       * a report request at its head still gets its `failed` IMDN (issue 5).
       */
      tracked?: TrackedIm | null;
    };

/** Limits a peer applies to what it reads. */
export interface PeerLimits {
  maxHeadBytes?: number;
  maxChunkBytes: number;
  maxOtherBodyBytes: number;
  maxQueuedBytes: number;
  /** The relay-wide budget of queued bytes (`--max-total-queued-bytes`). */
  budget?: QueueBudget;
  /** Largest body per outgoing chunk toward this peer (Infinity on byte streams). */
  maxChunkBody: number;
}

/** A connection plus the relay's per-connection state. */
export class Peer implements ParserHandler {
  readonly conn: Connection;
  readonly writer: OutboundWriter;
  /** Lines this connection's malformed or refused traffic may still add to the log. */
  readonly logBudget = new LogBudget();
  /** True when the relay dialed this connection (a next hop); false for accepted ones. */
  readonly dialed: boolean;
  /**
   * True once the connection was up: at once for an accepted one, on connect (TLS: handshake done) for a
   * dialed one. A next hop that never came up fails its transactions with 408, one lost with 481.
   */
  established: boolean;
  /** A dialed `msrps` connection whose TCP connect succeeded (its TLS handshake then failed, or not yet). */
  tcpConnected = false;
  /** Authority key (`scheme://host:port`) of a dialed connection, for reuse. */
  readonly dialKey: string | undefined;
  /** Requests seen so far. */
  requests = 0;
  /** Requests the relay accepted: forwarded, or AUTH granted (RFC 4976 §6.3: probation ends with the first). */
  accepted = 0;
  /** True once a token was issued on this connection (a client that authenticated). */
  authenticated = false;
  /** AUTH attempts refused on this connection since its last granted one (RFC 4976 §6.3: close after several). */
  authFailures = 0;
  /** Time of the last byte read, ms. */
  lastActivity = Date.now();
  // The relay's dead-peer rule (lib/relay/relay.ts deadPeers).
  /**
   * How far into the relay's outbound stream the peer has shown it read: the end of its last answered
   * request, credited as time passes (relay.ts creditReading).
   */
  consumedOut = 0;
  /**
   * A request that timed out here unanswered: when it went out (0: none), where it ended in the outbound
   * stream, and when it timed out. Forgotten once anything is read after that.
   */
  owedSince = 0;
  owedOutAt = 0;
  owedAt = 0;
  /** When the relay last resumed reading this connection (after backpressure, or a late tick), ms. */
  resumedAt = 0;
  /** When {@link consumedOut} was last credited for time passing. */
  creditedAt = 0;
  /** What the transport had flushed when its queue was last seen moving, for the dead-peer rule. */
  outMark: { flushed: number; since: number } | null = null;
  /** The last To-Path value of a response on this connection found addressed to this relay. */
  ourResponseTo: string | null = null;
  /** The route of this connection's last routed request (lib/relay/router.ts). */
  routeMemo: RouteMemo<Peer> | null = null;
  /** Set once the relay asked this connection to close. */
  closing = false;
  /**
   * The relay this connection's certificate proves (digest §2.5): a client certificate verified against
   * `--relay-ca`, or a dialed next hop's server certificate; null otherwise.
   */
  relayIdentity: RelayIdentity | null = null;
  /** What the transport held when the queue was last seen moving while over its limit (see {@link stalledFor}). */
  private stallMark: { bytesOut: number; unflushed: number; since: number } | null = null;
  /** Destinations whose full queues pause our reading. */
  readonly blockedBy = new Set<Peer>();
  /** Sources paused because our queue is full. */
  readonly pausedSources = new Set<Peer>();
  /**
   * What the requests the relay sent to this connection and that still wait for its answers hold (octets,
   * estimated: lib/relay/relay.ts `txCost`); past the relay's limit, more toward it are refused.
   */
  pendingCost = 0;
  /** True while a chunk from this connection is being read (its head seen, its end-line not yet). */
  get isReadingChunk(): boolean {
    return this.frame !== null;
  }
  private readonly owner: PeerOwner;
  private readonly parser: MsrpParser;
  private frame: IncomingFrame | null = null;
  private closedReason: string | null = null;

  constructor(owner: PeerOwner, conn: Connection, limits: PeerLimits, dialKey?: string) {
    this.owner = owner;
    this.conn = conn;
    this.dialed = dialKey !== undefined;
    this.established = !this.dialed;
    this.dialKey = dialKey;
    this.parser = new MsrpParser(this, {
      maxHeadBytes: limits.maxHeadBytes,
      maxChunkBytes: limits.maxChunkBytes,
      maxOtherBodyBytes: limits.maxOtherBodyBytes,
    });
    this.writer = new OutboundWriter(conn, {
      maxChunkBody: limits.maxChunkBody,
      maxQueuedBytes: limits.maxQueuedBytes,
      ...(limits.budget && { budget: limits.budget }),
      onLowWater: () => this.releaseSources(),
      counters: owner.counters,
    });
    conn.attach({
      onData: (data) => this.onData(data),
      onDrain: () => this.writer.pump(),
      onClose: (reason) => this.onConnClose(reason),
    });
  }

  /** Short id for logs. */
  get id(): number {
    return this.conn.id;
  }

  /** True once the connection has closed. */
  get isClosed(): boolean {
    return this.closedReason !== null;
  }

  /** Octets handed to the kernel so far: given to the transport, less what it still holds. */
  get flushedOut(): number {
    return this.conn.bytesOut - this.conn.writableLength;
  }

  /** True while reading from this connection is paused by backpressure. */
  get isPaused(): boolean {
    return this.blockedBy.size > 0;
  }

  /**
   * True while reading from this connection is paused for another connection's queue: its silence is
   * the relay's doing. Paused only for its own unread answers, it is silent by its own.
   */
  get isPausedByOthers(): boolean {
    return this.blockedBy.size > (this.blockedBy.has(this) ? 1 : 0);
  }

  /** Writes a whole frame (response, REPORT, collected request) ahead of streaming chunks. */
  send(parts: Buffer[], producer?: Peer): void {
    if (this.closedReason !== null) return;
    this.writer.sendFrame(parts);
    if (producer !== undefined) this.throttle(producer);
  }

  /**
   * Pauses `source` while this peer's queue is over its limit (backpressure across the relay). A peer
   * pauses itself (its answers pile up) only for what it does not read of the relay's answers: on a
   * connection between two relays that carries chunks both ways, each relay pausing it for the chunks
   * queued on it would wait for the other to read first (a deadlock).
   */
  throttle(source: Peer): void {
    if (this.isClosed || !this.writer.congested || source.isClosed) return;
    if (source === this && !this.writer.controlCongested) return;
    if (!this.pausedSources.has(source)) {
      this.pausedSources.add(source);
      source.blockedBy.add(this);
      if (source.blockedBy.size === 1) {
        source.conn.pause();
        this.owner.counters.readerPauses++;
      }
    }
  }

  /**
   * How long (ms) the queue toward this connection has been over its limit with nothing leaving: no octet
   * handed to the transport, none of those it holds flushed. 0 while the queue is under its limit or
   * moving. Called from the relay's housekeeping tick, which samples it.
   *
   * Only a rise of the octets handed over or a fall of those the transport holds counts as movement: a
   * WebSocket heartbeat ping adds to what the transport holds, and must not pass for the peer reading.
   * The transport's count falls when a whole write completes, and the kernel wakes a blocked writer
   * only once a good part of its send buffer is free: movement shows in steps of up to the writer's
   * high-water mark (256 KiB) plus that part (docs/operations.md).
   */
  stalledFor(now: number): number {
    if (!this.writer.congested || this.isClosed) {
      this.stallMark = null;
      return 0;
    }
    const bytesOut = this.conn.bytesOut;
    const unflushed = this.conn.writableLength;
    const m = this.stallMark;
    if (m === null || bytesOut > m.bytesOut || unflushed < m.unflushed) {
      this.stallMark = { bytesOut, unflushed, since: now };
      return 0;
    }
    m.unflushed = unflushed; // risen without anything handed over (a ping): not movement
    return now - m.since;
  }

  /** Counts a request the relay accepted; the first ends the connection's probation (RFC 4976 §6.3). */
  accept(): void {
    if (this.accepted++ === 0) this.conn.endProbation?.();
  }

  /** Ends the connection (after pending writes). */
  close(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.conn.close(reason);
  }

  /**
   * Ends the connection once the responses and REPORTs queued toward it have been handed to the
   * transport (shutdown: the last failure REPORTs must not be dropped behind a congested queue).
   */
  closeAfterAnswers(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    // Nothing new is taken in meanwhile (it could not be answered); reading resumes for the close, so
    // that the peer's own FIN is seen.
    this.conn.pause();
    this.writer.whenControlSent(() => {
      this.conn.resume();
      this.conn.close(reason);
    });
  }

  // ---- parser events -------------------------------------------------------------------------------

  onHead(head: FrameHead): void {
    if (head.kind === 'response') {
      this.owner.onResponse(this, head);
      return;
    }
    this.requests++;
    this.frame = this.owner.onRequestHead(this, head);
  }

  onBody(piece: Buffer): void {
    const f = this.frame;
    if (f === null) return;
    if (f.kind === 'stream') {
      f.received += piece.length;
      if (f.received > f.declared) {
        // More octets than the Byte-Range declared: the chunk is refused (400) and what was forwarded
        // of it is aborted, so no destination waits on an end-line that cannot be trusted.
        this.frame = this.owner.onOverrun(this, f);
        return;
      }
      f.stream.push(piece);
      if (f.tracked !== null) this.owner.onTrackedBody(f.tracked, piece);
      f.dest.throttle(this);
    } else if (f.kind === 'collect') {
      const held = f.held;
      if (held !== undefined && (held.received += piece.length) > held.declared) {
        if (held.unbounded) {
          // Too long to be an IMDN: forwarded like any SEND, what was held first, through this same path.
          this.forwardHeld(f);
          this.onBody(piece);
          return;
        }
        // A held SEND longer than its Byte-Range: refused like a streamed one, nothing more is kept.
        this.frame = {
          kind: 'drop',
          head: f.head,
          status: 400,
          comment: 'Body longer than its Byte-Range',
          ourUri: held.ourUri,
          received: held.received,
        };
        return;
      }
      f.pieces.push(Buffer.from(piece));
      coalesceSmallTail(f.pieces);
    } else {
      f.received = (f.received ?? 0) + piece.length;
      if (f.tracked != null) this.owner.onTrackedBody(f.tracked, piece);
    }
  }

  onEnd(flag: ContinuationFlag): void {
    const f = this.frame;
    this.frame = null;
    if (f === null) return; // a response, already handled
    this.owner.onRequestEnd(this, f, flag); // finishes a stream frame's chunk
  }

  onError(err: MsrpError, context: ErrorContext | null): void {
    let f = this.frame;
    // A held SEND that passes --max-message-size (a limit below the hold's) fails like a streamed chunk
    // over it: forwarded from its head, then cut, so the message gets its `failed` IMDN when asked.
    if (f?.kind === 'collect' && f.held?.unbounded === true && err.statusCode === 413)
      f = this.forwardHeld(f);
    this.frame = null;
    // Refused here (400, 413): the forwarded part ends with `#` (RFC 4975 §7.1).
    if (f !== null && f.kind === 'stream') f.stream.cut();
    this.owner.onParseError(this, err, context, f);
  }

  /** Opens the forward of a held SEND and feeds it the octets held so far; returns the new frame. */
  private forwardHeld(f: IncomingFrame & { kind: 'collect' }): IncomingFrame | null {
    this.frame = this.owner.onHeldOverflow(this, f);
    for (const p of f.pieces) this.onBody(p);
    return this.frame;
  }

  // ---- connection events ---------------------------------------------------------------------------

  private onData(data: Buffer): void {
    // Closing: nothing read now could be answered, and forwarding it would pass --max-queued-bytes (a
    // connection paused for backpressure is read again during the close, to see the peer's FIN).
    if (this.closing) return;
    this.lastActivity = Date.now();
    if (this.conn.messageFramed) this.onMessage(data);
    else this.parser.write(data);
  }

  /**
   * One WebSocket message. RFC 7977 §5.1: it carries exactly one MSRP frame, never less, never more.
   * The boundary is checked before the parser acts on anything, so a message holding half a frame or
   * two is refused whole: 400 to its first frame when that frame can be answered, otherwise the
   * connection is closed. After the parser ran it must be idle again (a frame left open is the same
   * error, found late: that frame is aborted and answered 400).
   */
  private onMessage(message: Buffer): void {
    if (this.parser.failed) return;
    const shape = classifyWsMessage(message);
    if (shape === 'one' || shape === 'unframed') {
      // 'unframed': no MSRP start line; the parser reports that itself (fatal).
      this.parser.write(message);
      if (!this.parser.idle && !this.parser.failed) this.onMessageEndedInFrame();
      return;
    }
    const context = firstFrameHead(message);
    const what = shape === 'several' ? 'more than one MSRP frame' : 'an incomplete MSRP frame';
    const err = createError(
      ErrorCodes.WS_FRAMING,
      `WebSocket message holds ${what}`,
      400,
      !answerable(context),
    );
    this.owner.onParseError(this, err, context, null);
  }

  /** The parser is inside a frame at the end of a message: abort that frame (400) and start afresh. */
  private onMessageEndedInFrame(): void {
    const f = this.frame;
    this.parser.reset();
    const err = createError(
      ErrorCodes.WS_FRAMING,
      'WebSocket message ended inside an MSRP frame',
      400,
      f === null || !answerable(f.head),
    );
    if (f === null) this.owner.onParseError(this, err, null, null);
    else {
      const { transactionId, method, headers } = f.head;
      this.onError(err, { transactionId, method, headers, headEmitted: true });
    }
  }

  private onConnClose(reason: string): void {
    this.closedReason = reason;
    const f = this.frame;
    this.frame = null;
    // The source is gone mid-chunk: the message cannot complete, so the chunk ends with `#`.
    if (f !== null && f.kind === 'stream') f.stream.finish('#');
    if (f !== null && f.kind !== 'collect' && f.tracked != null) this.owner.onTrackedAbort(f.tracked);
    this.writer.kill();
    this.releaseSources();
    for (const dest of this.blockedBy) dest.pausedSources.delete(this);
    this.blockedBy.clear();
    // A closed connection's memo must not keep its last destination (and that one's memo...) alive. A
    // live connection's memo may still name this one until its next request: one closed peer at most.
    this.routeMemo = null;
    this.owner.onClose(this, reason);
  }

  private releaseSources(): void {
    for (const source of this.pausedSources) {
      source.blockedBy.delete(this);
      if (source.blockedBy.size === 0 && !source.isClosed) {
        source.conn.resume();
        source.resumedAt = Date.now();
      }
    }
    this.pausedSources.clear();
  }
}

/** True when the relay would answer this request (RFC 4975 §7.1.1: not a REPORT, not Failure-Report no). */
function answerable(head: { method: string | undefined; headers: RequestHead['headers'] } | null): boolean {
  if (head === null || head.method === undefined || head.method === 'REPORT') return false;
  if (head.headers.length < 2) return false;
  return (getHeader(head.headers, 'failure-report') ?? 'yes').trim().toLowerCase() !== 'no';
}

/** Trailing pieces under this size are merged once there are {@link SMALL_PIECES_MERGED} of them. */
const SMALL_PIECE = 1024;
const SMALL_PIECES_MERGED = 16;

/**
 * Merges the small pieces at the end of a body being collected once there are 16 of them: a body sent an
 * octet at a time otherwise cost a Buffer object per octet, ~160 octets of memory each, past every limit
 * that counts body octets (memory audit: 10 MiB for a 64 KiB body). A merged piece stops being small at
 * 1 KiB, so an octet is copied a bounded number of times (about 30 when each comes alone, as the merged
 * piece grows by 15 octets a merge); it has its own memory (not a slice of the shared pool, which it would
 * keep whole).
 */
function coalesceSmallTail(pieces: Buffer[]): void {
  const n = pieces.length;
  if (n < SMALL_PIECES_MERGED) return;
  let k = n;
  let bytes = 0;
  while (k > 0 && pieces[k - 1]!.length < SMALL_PIECE) bytes += pieces[--k]!.length;
  if (n - k < SMALL_PIECES_MERGED) return;
  const merged = Buffer.allocUnsafeSlow(bytes);
  let at = 0;
  for (let i = k; i < n; i++) at += pieces[i]!.copy(merged, at);
  pieces.splice(k, n - k, merged);
}
