/**
 * One connection as the relay sees it: its parser, what it is sending (the frame in progress), its
 * outbound queue, its timers and its backpressure links. Every decision is the relay's; a Peer only
 * turns parser events into calls on {@link PeerOwner} and keeps per-connection state.
 */
import type { ContinuationFlag } from '../constants.js';
import type { MsrpError } from '../errors.js';
import type { FrameHead, RequestHead } from '../msrp/message.js';
import { MsrpParser, type ErrorContext, type ParserHandler } from '../msrp/parser.js';
import type { Connection } from '../transport/connection.js';
import { OutboundWriter, type ChunkStream } from './outbound-writer.js';

/** The relay side of a peer: where parser events end up. */
export interface PeerOwner {
  /** A request head: returns what to do with its body (`stream` for cut-through SENDs). */
  onRequestHead(peer: Peer, head: RequestHead): IncomingFrame;
  /** A complete request whose body was collected (or a dropped one, to answer). */
  onRequestEnd(peer: Peer, frame: IncomingFrame, flag: ContinuationFlag): void;
  onResponse(peer: Peer, head: FrameHead & { kind: 'response' }): void;
  onParseError(peer: Peer, err: MsrpError, context: ErrorContext | null, frame: IncomingFrame | null): void;
  onClose(peer: Peer, reason: string): void;
}

/** What the relay decided to do with an incoming request's body. */
export type IncomingFrame =
  | { kind: 'stream'; head: RequestHead; stream: ChunkStream; dest: Peer; ourUri: string }
  | { kind: 'collect'; head: RequestHead; pieces: Buffer[] }
  | { kind: 'drop'; head: RequestHead; status: number; comment: string; ourUri: string };

/** Limits a peer applies to what it reads. */
export interface PeerLimits {
  maxHeadBytes?: number;
  maxChunkBytes: number;
  maxOtherBodyBytes: number;
  maxQueuedBytes: number;
  /** Largest body per outgoing chunk toward this peer (Infinity on byte streams). */
  maxChunkBody: number;
}

/** A connection plus the relay's per-connection state. */
export class Peer implements ParserHandler {
  readonly conn: Connection;
  readonly writer: OutboundWriter;
  /** True when the relay dialed this connection (a next hop); false for accepted ones. */
  readonly dialed: boolean;
  /** Authority key (`scheme://host:port`) of a dialed connection, for reuse. */
  readonly dialKey: string | undefined;
  /** Requests seen so far (probation ends with the first). */
  requests = 0;
  /** AUTH attempts refused on this connection (RFC 4976 §6.3: close after several). */
  authFailures = 0;
  /** Time of the last byte read, ms. */
  lastActivity = Date.now();
  /** Set once the relay asked this connection to close. */
  closing = false;
  /** Destinations whose full queues pause our reading. */
  readonly blockedBy = new Set<Peer>();
  /** Sources paused because our queue is full. */
  readonly pausedSources = new Set<Peer>();
  private readonly owner: PeerOwner;
  private readonly parser: MsrpParser;
  private frame: IncomingFrame | null = null;
  private closedReason: string | null = null;

  constructor(owner: PeerOwner, conn: Connection, limits: PeerLimits, dialKey?: string) {
    this.owner = owner;
    this.conn = conn;
    this.dialed = dialKey !== undefined;
    this.dialKey = dialKey;
    this.parser = new MsrpParser(this, {
      maxHeadBytes: limits.maxHeadBytes,
      maxChunkBytes: limits.maxChunkBytes,
      maxOtherBodyBytes: limits.maxOtherBodyBytes,
    });
    this.writer = new OutboundWriter(conn, {
      maxChunkBody: limits.maxChunkBody,
      maxQueuedBytes: limits.maxQueuedBytes,
      onLowWater: () => this.releaseSources(),
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

  /** Writes a whole frame (response, REPORT, collected request) ahead of streaming chunks. */
  send(parts: Buffer[], producer?: Peer): void {
    if (this.closedReason !== null) return;
    this.writer.sendFrame(parts);
    if (producer !== undefined) this.throttle(producer);
  }

  /** Pauses `source` while this peer's queue is over its limit (backpressure across the relay). */
  throttle(source: Peer): void {
    if (!this.writer.congested || source.isClosed) return;
    if (!this.pausedSources.has(source)) {
      this.pausedSources.add(source);
      source.blockedBy.add(this);
      if (source.blockedBy.size === 1) source.conn.pause();
    }
  }

  /** Ends the connection (after pending writes). */
  close(reason: string): void {
    if (this.closing) return;
    this.closing = true;
    this.conn.close(reason);
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
      f.stream.push(piece);
      f.dest.throttle(this);
    } else if (f.kind === 'collect') {
      f.pieces.push(Buffer.from(piece));
    }
  }

  onEnd(flag: ContinuationFlag): void {
    const f = this.frame;
    this.frame = null;
    if (f === null) return; // a response, already handled
    if (f.kind === 'stream') f.stream.finish(flag);
    this.owner.onRequestEnd(this, f, flag);
  }

  onError(err: MsrpError, context: ErrorContext | null): void {
    const f = this.frame;
    this.frame = null;
    if (f !== null && f.kind === 'stream') f.stream.finish('#');
    this.owner.onParseError(this, err, context, f);
  }

  // ---- connection events ---------------------------------------------------------------------------

  private onData(data: Buffer): void {
    this.lastActivity = Date.now();
    this.parser.write(data);
  }

  private onConnClose(reason: string): void {
    this.closedReason = reason;
    const f = this.frame;
    this.frame = null;
    // The source is gone mid-chunk: the message cannot complete, so the chunk ends with `#`.
    if (f !== null && f.kind === 'stream') f.stream.finish('#');
    this.writer.kill();
    this.releaseSources();
    for (const dest of this.blockedBy) dest.pausedSources.delete(this);
    this.blockedBy.clear();
    this.owner.onClose(this, reason);
  }

  private releaseSources(): void {
    for (const source of this.pausedSources) {
      source.blockedBy.delete(this);
      if (source.blockedBy.size === 0 && !source.isClosed) source.conn.resume();
    }
    this.pausedSources.clear();
  }
}
