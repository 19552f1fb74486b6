/**
 * MSRP over WebSocket (RFC 7977) behind the {@link Connection} API, and the listener that accepts it:
 * an HTTP(S) server whose upgrades go to a `ws` WebSocketServer only when they offer the `msrp`
 * subprotocol and come from an allowed Origin. Each WebSocket message carries exactly one MSRP frame:
 * {@link WsConnection.writeFrame} sends one binary message per frame, and every incoming message, text
 * or binary, reaches the owner as one `Buffer` of octets.
 *
 * ```
 *  HTTP GET ──► onHttpRequest (or 404)
 *  HTTP GET + Upgrade ──► handshake checks (msrp? Origin?) ──► 400 / 403, socket closed
 *                                      └─► WebSocketServer ──► WsConnection ──► onConnection
 * ```
 */
import {
  createServer as createHttpServer,
  STATUS_CODES,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { MIN_TLS_VERSION } from '../constants.js';
import { noteBytesRead } from '../io/read-gc.js';
import {
  CLOSE_GRACE_MS,
  connectionId,
  EMPTY_WRITE,
  formatRemote,
  type Connection,
  type ConnectionEvents,
} from './connection.js';

/** The WebSocket subprotocol of MSRP (RFC 7977 §4.1, IANA registry). */
export const WS_SUBPROTOCOL = 'msrp';

/** Default interval between keep-alive pings, ms (a peer missing one pong is cut off). */
export const WS_PING_INTERVAL_MS = 30_000;

/**
 * Octets `ws` may buffer toward one incoming message while the connection is on probation: a 64 KiB
 * chunk and a 16 KiB head (RFC 4975 §7.1 chunks; browsers send 2-64 KiB). Past it, the connection is
 * torn down (`ws-message-too-large-on-probation`); once a request is accepted, `maxPayload` applies.
 */
export const PROBATION_MAX_BUFFERED = 80 * 1024;
/** The longest header of a client's frame: 2 octets, a 64-bit length, the 4-octet mask (RFC 6455 §5.2). */
const MAX_FRAME_HEADER = 14;
/** A whole ping or pong: its header and at most 125 octets of payload (RFC 6455 §5.5). */
const MAX_CONTROL_FRAME = MAX_FRAME_HEADER + 125;

/** Plain HTTP requests served on one connection of a WebSocket listener (the page, its script and style). */
const MAX_HTTP_REQUESTS_PER_SOCKET = 16;

const kConn = Symbol('msrpConnection');
type TaggedWs = WebSocket & { [kConn]?: WsConnection };
type TaggedSocket = Duplex & { [kConn]?: WsConnection };

/** A WebSocket connection (server side) behind the {@link Connection} API. */
export class WsConnection implements Connection {
  readonly id = connectionId();
  readonly kind: 'ws' | 'wss';
  readonly remote: string;
  readonly via: string | undefined;
  readonly localPort: number;
  readonly localAddress: string;
  /** RFC 7977 §5.1: one MSRP frame per WebSocket message, so no cut-through pieces. */
  readonly messageFramed = true;
  /** The handshake's Origin header, when the client sent one (browsers do). */
  readonly origin: string | undefined;
  bytesIn = 0;
  bytesOut = 0;
  private readonly ws: TaggedWs;
  private readonly socket: TaggedSocket;
  private events: ConnectionEvents | null = null;
  private closeReason = '';
  /** An error came, or the connection closed without a closing handshake (1006). */
  private inDoubt = false;
  /**
   * When `ws` was first seen closing (a message given to it then, which it drops; else the close):
   * the closing handshake began at that moment or before.
   */
  private closingSeenAt = 0;
  /** The peer's FIN came: the closing handshake ended as it should (a timeout ends it without one). */
  private peerEnded = false;
  private ended = false;
  private gone = false;
  private alive = true;
  private closeTimer: NodeJS.Timeout | null = null;
  /**
   * Octets `ws` may hold toward one incoming message until the relay accepts a request (0: no limit).
   * TLS/WS audit: a client that announced a 1 MiB message and held back its last octets kept 1 MiB in
   * `ws`, unauthenticated, for the whole probation period (1,000 such connections: 1 GB).
   */
  private probationLimit: number;
  /**
   * Octets read from the socket while on probation, and the framing they may hold besides the payloads
   * in `bytesIn`: a header per message, a whole frame per ping or pong.
   */
  private rawIn = 0;
  private framing = 0;

  /**
   * Wraps an accepted WebSocket. `req` is the upgrade request: its socket is the one `ws` writes to, so
   * its `'drain'` event is the WebSocket's drain too (no private field of `ws` is used). `client`: the
   * address a trusted proxy's X-Forwarded-For named (the socket's peer is then the proxy, `via`).
   */
  constructor(
    ws: WebSocket,
    req: IncomingMessage,
    kind: 'ws' | 'wss',
    client?: string,
    probationLimit = PROBATION_MAX_BUFFERED,
  ) {
    this.probationLimit = probationLimit;
    this.ws = ws as TaggedWs;
    this.socket = req.socket as TaggedSocket;
    this.kind = kind;
    const peer = formatRemote(req.socket.remoteAddress, req.socket.remotePort);
    this.remote = client === undefined ? peer : formatRemote(client, 0);
    this.via = client === undefined ? undefined : peer;
    this.localPort = req.socket.localPort ?? 0;
    this.localAddress = req.socket.localAddress ?? '';
    this.origin = req.headers.origin;
    this.ws[kConn] = this;
    this.socket[kConn] = this;
  }

  /** Bytes handed to `ws` but not yet to the kernel. */
  get writableLength(): number {
    return this.ws.bufferedAmount;
  }

  get closed(): boolean {
    return this.ended || this.gone;
  }

  attach(events: ConnectionEvents): void {
    this.events = events;
    this.ws.on('message', wsOnMessage);
    this.ws.on('pong', wsOnPong);
    this.ws.on('error', wsOnError);
    this.ws.on('close', wsOnClose);
    this.socket.on('drain', socketOnDrain);
    this.socket.on('end', socketOnEnd);
    if (this.probationLimit > 0) {
      this.socket.on('data', socketOnRawData);
      this.ws.on('ping', wsOnPing);
    }
  }

  endProbation(): void {
    if (this.probationLimit === 0) return;
    this.probationLimit = 0;
    this.socket.off('data', socketOnRawData);
    this.ws.off('ping', wsOnPing);
  }

  /**
   * @internal Octets from the socket while on probation: what `ws` holds of a message not yet whole is
   * at least what came minus the payloads delivered and the most each delivered frame's header can take.
   */
  handleRawData(n: number): void {
    // The read that ended probation (its AUTH accepted inside `ws`'s own 'data' listener) still comes here:
    // Node calls every listener the event had when it began (review).
    if (this.probationLimit === 0) return;
    this.rawIn += n;
    const held = this.rawIn - this.bytesIn - this.framing;
    if (held > this.probationLimit) this.destroy('ws-message-too-large-on-probation');
  }

  /** @internal A ping from the peer (on probation: a frame whose payload `bytesIn` does not count). */
  handlePing(): void {
    this.framing += MAX_CONTROL_FRAME;
  }

  /**
   * Sends one whole frame as ONE binary message (RFC 7977 §5.1: one chunk per message; §4.2: binary,
   * since bodies need not be UTF-8). Returns false once the send buffer passes its high-water mark;
   * `onDrain` follows when it has emptied.
   */
  writeFrame(parts: readonly Buffer[]): boolean {
    if (this.closed) return false;
    // Closing (the peer's close frame read, or ours sent): `ws` drops the message without a word.
    if (this.ws.readyState !== this.ws.OPEN) this.closingSeenAt ||= Date.now();
    const data = parts.length === 1 ? parts[0]! : Buffer.concat(parts);
    this.bytesOut += data.length;
    this.ws.send(data, { binary: true, compress: false });
    return !this.socket.writableNeedDrain;
  }

  whenFlushed(cb: () => void): void {
    // Once `ws` is closing (close frame sent or received, socket ended) its 'close' may be up to 30 s
    // away: an empty write fails at once then, and calling back would only ask again, in a loop that
    // starves the event loop.
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    // `ws` writes each message to this socket as it is sent (no compression): an empty write on the
    // socket completes after them, and adds no octet to the stream.
    this.socket.write(EMPTY_WRITE, (err?: Error | null) => {
      if (!err && !this.closed && this.ws.readyState === this.ws.OPEN) cb();
    });
  }

  /** Never called: a message-framed transport only takes whole frames (the writer knows). */
  writePiece(_piece: Buffer): boolean {
    throw new Error('WsConnection.writePiece: a WebSocket carries whole frames only (RFC 7977 §5.1)');
  }

  pause(): void {
    this.ws.pause();
  }

  resume(): void {
    this.alive = true; // a pong that came while paused is only read now: a full round before the next check
    this.ws.resume();
  }

  /** Sends a close frame after pending messages; tears the socket down if the peer does not answer. */
  close(reason: string): void {
    if (this.ended) return;
    this.closeReason ||= reason;
    this.ended = true;
    this.ws.close(closeCode(reason), reason.slice(0, 120));
    this.terminateLater();
  }

  /** Tears the socket down {@link CLOSE_GRACE_MS} from now unless it closes first (one timer at most). */
  private terminateLater(): void {
    if (this.closeTimer !== null) return;
    this.closeTimer = setTimeout(() => this.ws.terminate(), CLOSE_GRACE_MS);
    this.closeTimer.unref();
  }

  destroy(reason: string): void {
    this.closeReason ||= reason;
    this.ended = true;
    this.ws.terminate();
  }

  /**
   * One keep-alive round (RFC 7977 §6: WebSocket Ping): a peer that did not answer the previous ping
   * is torn down, otherwise it is pinged again. Called by the listener's timer.
   */
  heartbeat(): void {
    // Paused for backpressure (its destination is congested), the peer's pong stays unread in the socket:
    // no check until reading resumes. A destination that stopped moving is the write-stall timer's case.
    if (this.closed || this.ws.isPaused) return;
    if (!this.alive) {
      this.destroy('ping-timeout');
      return;
    }
    this.alive = false;
    this.ws.ping();
  }

  /** @internal */
  handleMessage(data: RawData): void {
    // RFC 7977 §4.2: text and binary messages alike are MSRP octets; no UTF-8 decoding.
    this.alive = true;
    const buf = toBuffer(data);
    this.bytesIn += buf.length;
    this.framing += MAX_FRAME_HEADER;
    noteBytesRead(buf.length);
    this.events?.onData(buf);
  }

  /** @internal */
  handlePong(): void {
    this.alive = true;
    this.framing += MAX_CONTROL_FRAME;
  }

  /** @internal */
  handleDrain(): void {
    this.events?.onDrain();
  }

  get orderlyCloseAt(): number {
    const orderly = this.closeReason === 'peer-closed' && !this.inDoubt && this.peerEnded;
    return orderly && this.closingSeenAt > 0 ? this.closingSeenAt : -Infinity;
  }

  /**
   * @internal The peer's FIN on the socket under the WebSocket: `ws` ends its side, which waits behind
   * anything queued; a peer that stops reading is torn down after the grace (as a stream connection).
   */
  handleSocketEnd(): void {
    this.peerEnded = true;
    if (!this.gone) this.terminateLater();
  }

  /** @internal */
  handleError(err: Error & { code?: string }): void {
    this.inDoubt = true;
    this.closeReason ||= err.code ? `error:${err.code}` : 'error';
  }

  /** @internal `code`: the WebSocket close code (1006: the connection dropped without a closing handshake). */
  handleClose(code: number): void {
    if (code === 1006) this.inDoubt = true;
    this.closingSeenAt ||= Date.now();
    this.closeReason ||= 'peer-closed';
    this.ended = true;
    this.gone = true;
    if (this.closeTimer !== null) clearTimeout(this.closeTimer);
    this.socket.off('drain', socketOnDrain);
    this.socket.off('end', socketOnEnd);
    const ev = this.events;
    this.events = null;
    ev?.onClose(this.closeReason);
  }
}

/** WebSocket close code for a close reason: 1001 on shutdown, 1002 for protocol errors, else 1000. */
function closeCode(reason: string): number {
  if (reason === 'shutdown') return 1001;
  if (reason.startsWith('parse-error')) return 1002;
  return 1000;
}

function toBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

function wsOnMessage(this: WebSocket, data: RawData): void {
  (this as TaggedWs)[kConn]!.handleMessage(data);
}

function wsOnPong(this: WebSocket): void {
  (this as TaggedWs)[kConn]!.handlePong();
}

function wsOnError(this: WebSocket, err: Error): void {
  (this as TaggedWs)[kConn]!.handleError(err);
}

function wsOnClose(this: WebSocket, code: number): void {
  (this as TaggedWs)[kConn]!.handleClose(code);
}

function socketOnDrain(this: TaggedSocket): void {
  this[kConn]?.handleDrain();
}

function socketOnEnd(this: TaggedSocket): void {
  this[kConn]?.handleSocketEnd();
}

function socketOnRawData(this: TaggedSocket, data: Buffer): void {
  this[kConn]?.handleRawData(data.length);
}

function wsOnPing(this: WebSocket): void {
  (this as TaggedWs)[kConn]!.handlePing();
}

/** Options of {@link listenWs}. */
export interface WsListenOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  /** Serve `wss` (HTTPS) with this certificate and key; plain `ws` without. */
  tls?: { cert: string | Buffer; key: string | Buffer };
  /** Origins allowed to connect; empty: any. A handshake without Origin (no browser) is accepted. */
  allowedOrigins: readonly string[];
  /** Largest incoming WebSocket message, bytes (`ws` closes the connection with 1009 beyond). */
  maxPayload?: number;
  /** A TLS handshake failed (wss), or an HTTP request could not be parsed (answered 400 or 431). */
  onHandshakeFailed?: (
    reason: 'tls-handshake' | 'http-malformed',
    err: NodeJS.ErrnoException,
    socket: Duplex,
  ) => void;
  /**
   * The client of an upgrade request when a proxy names one (X-Forwarded-For of a trusted proxy):
   * undefined for the socket's own peer, null to refuse the upgrade (503: that client is at its limit).
   */
  clientOf?(req: IncomingMessage): string | undefined | null;
  /** Keep-alive ping interval, ms (default {@link WS_PING_INTERVAL_MS}). */
  pingIntervalMs?: number;
  /** Called with every accepted MSRP WebSocket connection. */
  onConnection(conn: WsConnection): void;
  /**
   * Called for every upgrade refused for its Origin (403) or for offering no `msrp` subprotocol (400),
   * with the HTTP status and the text sent.
   */
  onRefused?(reason: HandshakeRefusal, req: IncomingMessage, status: number, message: string): void;
  /** Plain HTTP requests (not upgrades); default: 404. */
  onHttpRequest?(req: IncomingMessage, res: ServerResponse): void;
}

/** Why an upgrade was refused: its Origin is not allowed, or it offered no `msrp` subprotocol. */
export type HandshakeRefusal = 'origin' | 'subprotocol' | 'handshake';

/** A bound WebSocket listener. */
export interface WsListener {
  readonly kind: 'ws' | 'wss';
  /** The HTTP(S) server; closing it stops the pings too. */
  readonly server: HttpServer;
  readonly port: number;
  /** Stops accepting, tears down open WebSocket connections and resolves once the server is closed. */
  close(): Promise<void>;
}

/** Starts an HTTP(S) server that accepts MSRP WebSocket connections; resolves once bound. */
export async function listenWs(opts: WsListenOptions): Promise<WsListener> {
  const kind = opts.tls === undefined ? 'ws' : 'wss';
  const server: HttpServer =
    opts.tls === undefined
      ? createHttpServer()
      : createHttpsServer({ cert: opts.tls.cert, key: opts.tls.key, minVersion: MIN_TLS_VERSION });
  // A browser asks for the page's three files: more requests on one connection are refused (Node answers
  // 503 and closes), so pipelined GETs cannot queue responses for a client that never reads.
  server.maxRequestsPerSocket = MAX_HTTP_REQUESTS_PER_SOCKET;
  if (opts.tls !== undefined)
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex) =>
      opts.onHandshakeFailed?.('tls-handshake', err, socket),
    );
  // Node's own answer, kept (400, or 431 for headers over its limit), and the failure counted.
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // Node's choices: 408 for its request timeout, 431 for headers over its limit, else 400; nothing
    // once a response has begun on the socket.
    const started = (socket as { _httpMessage?: { headersSent?: boolean } })._httpMessage?.headersSent;
    const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
    const status = timeout
      ? '408 Request Timeout'
      : err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : '400 Bad Request';
    if (started === true) socket.destroy();
    else socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
    setTimeout(() => socket.destroy(), 1000).unref(); // a client that does not read the answer
    if (!timeout) opts.onHandshakeFailed?.('http-malformed', err, socket);
  });
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload: opts.maxPayload,
    // RFC 7977 §4.2: a text message is handled as binary octets, so its UTF-8 is not checked.
    skipUTF8Validation: true,
    perMessageDeflate: false,
    // RFC 7977 §4.1: the agreed subprotocol is `msrp` (offers without it never get this far).
    handleProtocols: (protocols) => (protocols.has(WS_SUBPROTOCOL) ? WS_SUBPROTOCOL : false),
  });
  wss.on('headers', (headers: string[], req: IncomingMessage) => {
    // RFC 7977 §7: with an Origin in the handshake the 101 carries Access-Control-Allow-Origin.
    const origin = req.headers.origin;
    if (origin !== undefined) headers.push(`Access-Control-Allow-Origin: ${origin}`);
  });
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    if (opts.onHttpRequest !== undefined) {
      opts.onHttpRequest(req, res);
      return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain', Connection: 'close' });
    res.end('Not found\n');
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', ignore);
    const refusal = refuseHandshake(req, opts.allowedOrigins);
    if (refusal !== null) {
      abortHandshake(socket, refusal.status, refusal.message);
      opts.onRefused?.(refusal.reason, req, refusal.status, refusal.message);
      return;
    }
    const client = opts.clientOf?.(req);
    if (client === null) {
      abortHandshake(socket, 503, 'Too many connections from this address');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      socket.off('error', ignore);
      opts.onConnection(new WsConnection(ws, req, kind, client));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  // RFC 7977 §6: WebSocket Ping keeps the connection open; a peer that misses a pong is cut off.
  const ping = setInterval(() => {
    for (const ws of wss.clients) (ws as TaggedWs)[kConn]?.heartbeat();
  }, opts.pingIntervalMs ?? WS_PING_INTERVAL_MS);
  ping.unref();
  server.on('close', () => {
    clearInterval(ping);
    wss.close();
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : opts.port;
  return {
    kind,
    server,
    port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const ws of wss.clients) ws.terminate();
        server.closeAllConnections();
      }),
  };
}

/** Why a handshake is refused (status and one line), or null to accept it. */
function refuseHandshake(
  req: IncomingMessage,
  allowedOrigins: readonly string[],
): { reason: HandshakeRefusal; status: number; message: string } | null {
  // RFC 6455 §4.2.1: what `ws` would refuse on its own, without a word to the relay (TLS/WS audit).
  const key = req.headers['sec-websocket-key'];
  if (
    req.method !== 'GET' ||
    (req.headers.upgrade ?? '').toLowerCase() !== 'websocket' ||
    key === undefined ||
    !/^[+/0-9A-Za-z]{22}==$/.test(key.trim()) ||
    (req.headers['sec-websocket-version'] !== '13' && req.headers['sec-websocket-version'] !== '8')
  )
    return {
      reason: 'handshake',
      status: 400,
      message: 'Not a WebSocket version 13 handshake (RFC 6455 §4.2.1)',
    };
  // RFC 7977 §4.1: the client MUST offer `msrp` and the 101 MUST carry it: without the offer, no 101.
  const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',').map((p) => p.trim());
  if (!offered.includes(WS_SUBPROTOCOL))
    return {
      reason: 'subprotocol',
      status: 400,
      message: `Sec-WebSocket-Protocol must offer "${WS_SUBPROTOCOL}"`,
    };
  // RFC 7977 §7: the server may inspect Origin to authorize the connection; browsers always send it.
  const origin = req.headers.origin;
  if (allowedOrigins.length > 0 && origin !== undefined && !allowedOrigins.includes(origin))
    return { reason: 'origin', status: 403, message: `Origin ${origin} is not allowed` };
  return null;
}

/** Answers a refused upgrade with a plain HTTP error and closes the socket. */
function abortHandshake(socket: Duplex, status: number, message: string): void {
  const body = message + '\n';
  socket.once('finish', () => socket.destroy());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'Connection: close\r\nContent-Type: text/plain\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
}

function ignore(): void {}
