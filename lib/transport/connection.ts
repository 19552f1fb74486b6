/**
 * One `Connection` API over TCP, TLS and (in lib/transport/ws.ts) WebSocket. The relay writes whole
 * frames with {@link Connection.writeFrame} and, on byte-stream transports, body pieces as they arrive
 * with {@link Connection.writePiece}; message-framed transports (WebSocket) carry exactly one MSRP frame
 * per message (RFC 7977 §5.2), so callers must hand them whole frames only.
 */
import type { Socket } from 'node:net';
import type { DetailedPeerCertificate, TLSSocket } from 'node:tls';
import { uncorkAfterTurn } from '../io/uncork.js';
import { noteBytesRead } from '../io/read-gc.js';

/** The transport under a connection. */
export type TransportKind = 'tcp' | 'tls' | 'ws' | 'wss';

/** What a connection reports to its owner. */
export interface ConnectionEvents {
  /** Bytes read (stream transports) or one whole message (WebSocket). */
  onData(data: Buffer): void;
  /** The write buffer has drained below its high-water mark. */
  onDrain(): void;
  /** The connection is closed; `reason` is a short word for logs and metrics. */
  onClose(reason: string): void;
}

/** A transport connection as the relay sees it. */
export interface Connection {
  readonly id: number;
  readonly kind: TransportKind;
  /**
   * `address:port` of the peer, for logs and per-address rules (the AUTH lockout): the client a trusted
   * proxy named (`via` set, port 0 when the proxy gave none), else the socket's peer.
   */
  readonly remote: string;
  /** `address:port` of the trusted proxy the connection came through, when one named the client. */
  readonly via?: string;
  /** Local port the connection arrived on (listeners) or left from (outbound). */
  readonly localPort: number;
  /** The local address the connection came in on (the listener's, or the socket's for a dialed one). */
  readonly localAddress: string;
  /** True when each message carries exactly one frame (WebSocket): no cut-through pieces. */
  readonly messageFramed: boolean;
  /** Bytes accepted by {@link writeFrame}/{@link writePiece} but not yet handed to the kernel. */
  readonly writableLength: number;
  /** True once closed or closing: writes are dropped. */
  readonly closed: boolean;
  /**
   * Once closed: when (ms since the epoch) the peer began ending the connection in order — its FIN, or
   * the first sign of a WebSocket closing handshake that then completed with the peer's FIN — with no
   * error, no close of ours first, and nothing still queued at a FIN; -Infinity when it ended any other
   * way. It does not prove the peer read what came just before: a peer may half-close, or a browser
   * close, with messages in flight.
   */
  readonly orderlyCloseAt: number;
  /** MSRP octets read from the peer so far (WebSocket: message payloads, no framing). */
  readonly bytesIn: number;
  /** MSRP octets handed to the transport so far (WebSocket: message payloads, no framing). */
  readonly bytesOut: number;
  /** Registers the owner's callbacks; data starts flowing after this call. */
  attach(events: ConnectionEvents): void;
  /** Writes one whole frame given as parts (head, body, tail); returns false when over high-water. */
  writeFrame(parts: readonly Buffer[]): boolean;
  /** Writes a piece of an open frame (stream transports only). */
  writePiece(piece: Buffer): boolean;
  /**
   * Calls `cb` once everything written so far has left the process (handed to the kernel). Unlike
   * `onDrain` it fires when the buffer never passed its high-water mark too. Not called when closed.
   */
  whenFlushed(cb: () => void): void;
  /** Stops reading from the peer (backpressure toward it). */
  pause(): void;
  /** Resumes reading. */
  resume(): void;
  /** Ends the connection gracefully after pending writes; `reason` is reported to `onClose`. */
  close(reason: string): void;
  /** Tears the connection down at once. */
  destroy(reason: string): void;
  /**
   * The relay accepted a request: the limits of a connection on probation end (WebSocket: the octets
   * `ws` may buffer toward one message).
   */
  endProbation?(): void;
  /**
   * The peer's certificate, with the chain it was verified by (`issuerCertificate`), when its TLS
   * handshake verified it (a client certificate checked against the listener's CAs, or a dialed server's
   * checked for the host dialed), else null; absent off TLS.
   */
  verifiedCertificate?(): DetailedPeerCertificate | null;
  /**
   * Turns on TCP keep-alive: the kernel probes the connection after `idleMs` of silence (whole seconds,
   * at least one) and resets it when the probes go unanswered. Absent where the transport has its own
   * (WebSocket Ping).
   */
  keepAlive?(idleMs: number): void;
}

/** Largest keep-alive idle time Linux takes (MAX_TCP_KEEPIDLE, seconds), in ms. */
const MAX_KEEPIDLE_MS = 32767 * 1000;

/** Milliseconds an ending connection may take to flush and close before it is torn down. */
export const CLOSE_GRACE_MS = 5000;

let nextConnectionId = 1;
/** The empty write behind {@link Connection.whenFlushed}. */
export const EMPTY_WRITE = Buffer.alloc(0);

/** Allocates process-unique connection ids. */
export function connectionId(): number {
  return nextConnectionId++;
}

const kConn = Symbol('msrpConnection');
type TaggedSocket = Socket & { [kConn]?: StreamConnection };

/**
 * `address:port` of a socket's peer, as {@link Connection.remote} spells it (`?` and 0 for what is not
 * known; an IPv6 address in brackets, `[::1]:55964`, as in a URI). The listeners match a raw socket to the
 * connection made on it by this string.
 */
export function formatRemote(address: string | undefined, port: number | undefined): string {
  const host = address ?? '?';
  return `${host.includes(':') ? `[${host}]` : host}:${port ?? 0}`;
}

/** The address part of a {@link formatRemote} value, without brackets (the host of a dialed connection). */
export function remoteAddress(remote: string): string {
  const colon = remote.lastIndexOf(':');
  const host = colon < 0 ? remote : remote.slice(0, colon);
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

/** A TCP or TLS socket behind the {@link Connection} API. */
export class StreamConnection implements Connection {
  readonly id = connectionId();
  readonly kind: TransportKind;
  readonly remote: string;
  readonly via: string | undefined;
  readonly localPort: number;
  readonly localAddress: string;
  readonly messageFramed = false;
  bytesIn = 0;
  bytesOut = 0;
  private readonly socket: TaggedSocket;
  private events: ConnectionEvents | null = null;
  private closeReason = '';
  /**
   * An error came (a reset, a failed write), or octets were still queued when the peer's FIN came, or
   * written after it: some may not have reached a reader.
   */
  private inDoubt = false;
  /** When the peer's FIN came (0: not yet). */
  private finAt = 0;
  private ended = false;
  /** Tears the socket down {@link CLOSE_GRACE_MS} after we ended it (see destroyLater). */
  private destroyTimer: NodeJS.Timeout | null = null;
  private corked = false;

  /**
   * `remote`: for a socket still connecting (dialed), the `host:port` it goes to; for one from a trusted
   * proxy, the client its PROXY header named (and `via`, the proxy).
   */
  constructor(socket: Socket, kind: 'tcp' | 'tls', remote?: string, via?: string) {
    this.socket = socket as TaggedSocket;
    this.kind = kind;
    this.remote = remote ?? formatRemote(socket.remoteAddress, socket.remotePort);
    this.via = via;
    this.localPort = socket.localPort ?? 0;
    this.localAddress = socket.localAddress ?? '';
    this.socket[kConn] = this;
    socket.setNoDelay(true);
  }

  keepAlive(idleMs: number): void {
    // TCP_KEEPIDLE is set in whole seconds, at most Linux's 32767 (a larger one is refused and leaves the
    // kernel's 2 h). Node's libuv also sets the probes' interval to 1 s and their count to 10, whatever
    // the sysctls say: a peer that answers none is reset 10 s after probing began. Node applies it to a
    // dialed socket once connected.
    this.socket.setKeepAlive(true, Math.min(MAX_KEEPIDLE_MS, Math.max(1000, idleMs)));
  }

  verifiedCertificate(): DetailedPeerCertificate | null {
    if (this.kind !== 'tls') return null;
    const socket = this.socket as unknown as TLSSocket;
    if (!socket.authorized) return null;
    const cert = socket.getPeerCertificate(true);
    return cert !== null && typeof cert === 'object' && cert.raw !== undefined ? cert : null;
  }

  get writableLength(): number {
    return this.socket.writableLength;
  }

  get closed(): boolean {
    return this.ended || this.socket.destroyed;
  }

  attach(events: ConnectionEvents): void {
    this.events = events;
    this.socket.on('data', socketOnData);
    this.socket.on('drain', socketOnDrain);
    this.socket.on('error', socketOnError);
    this.socket.on('close', socketOnClose);
    this.socket.on('end', socketOnEnd);
  }

  writeFrame(parts: readonly Buffer[]): boolean {
    if (this.closed) return false;
    this.batch();
    let ok = true;
    for (const p of parts) {
      if (p.length === 0) continue;
      this.bytesOut += p.length;
      ok = this.socket.write(p);
    }
    return ok;
  }

  writePiece(piece: Buffer): boolean {
    if (this.closed) return false;
    this.batch();
    this.bytesOut += piece.length;
    return this.socket.write(piece);
  }

  whenFlushed(cb: () => void): void {
    if (this.closed) return;
    // An empty write completes after every write queued before it (writes complete in order).
    this.socket.write(EMPTY_WRITE, (err?: Error | null) => {
      if (!err && !this.closed) cb();
    });
  }

  /**
   * Corks the socket until the check phase of this event-loop turn, so every frame, piece and response
   * written while the turn's reads are processed (responses to one peer, reports triggered by another's
   * 200s) leaves in a single writev instead of a syscall each.
   */
  private batch(): void {
    if (this.corked) return;
    this.corked = true;
    this.socket.cork();
    uncorkAfterTurn(this);
  }

  /** @internal */
  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  pause(): void {
    this.socket.pause();
  }

  resume(): void {
    this.socket.resume();
  }

  close(reason: string): void {
    if (this.ended) return;
    this.closeReason ||= reason;
    this.ended = true;
    this.socket.end();
    this.destroyLater();
  }

  /**
   * A peer that never reads must not keep the socket open forever: our FIN waits behind what is queued,
   * so the socket is torn down {@link CLOSE_GRACE_MS} after we end it, flushed or not.
   */
  private destroyLater(): void {
    this.destroyTimer ??= setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
    this.destroyTimer.unref();
  }

  destroy(reason: string): void {
    this.closeReason ||= reason;
    this.ended = true;
    this.socket.destroy();
  }

  /** @internal */
  handleData(data: Buffer): void {
    this.bytesIn += data.length;
    noteBytesRead(data.length);
    this.events?.onData(data);
  }

  /** @internal */
  handleDrain(): void {
    this.events?.onDrain();
  }

  get orderlyCloseAt(): number {
    return this.closeReason === 'peer-closed' && !this.inDoubt && this.finAt > 0 ? this.finAt : -Infinity;
  }

  /** @internal */
  handleError(err: Error & { code?: string }): void {
    this.inDoubt = true;
    this.closeReason ||= err.code ? `error:${err.code}` : 'error';
  }

  /** @internal */
  handleEnd(): void {
    this.closeReason ||= 'peer-closed';
    this.finAt ||= Date.now();
    // What the kernel has not taken yet goes out after the peer's FIN, to a peer that is leaving.
    if (this.socket.writableLength > 0) this.inDoubt = true;
    // Half-open MSRP connections are useless: finish our side too. A peer that half-closes and stops
    // reading would hold what is queued toward it, and its transactions, for good (chaining audit: a next
    // hop in CLOSE-WAIT for 45 s, its senders without a REPORT): torn down after the grace, it fails them.
    if (!this.ended) {
      this.ended = true;
      this.socket.end();
      this.destroyLater();
    }
  }

  /** @internal */
  handleClose(): void {
    this.ended = true;
    if (this.destroyTimer !== null) clearTimeout(this.destroyTimer);
    const ev = this.events;
    this.events = null;
    ev?.onClose(this.closeReason || 'closed');
  }
}

function socketOnData(this: TaggedSocket, data: Buffer): void {
  this[kConn]!.handleData(data);
}

function socketOnDrain(this: TaggedSocket): void {
  this[kConn]!.handleDrain();
}

function socketOnError(this: TaggedSocket, err: Error): void {
  this[kConn]!.handleError(err);
}

function socketOnEnd(this: TaggedSocket): void {
  this[kConn]!.handleEnd();
}

function socketOnClose(this: TaggedSocket): void {
  this[kConn]!.handleClose();
}
