/**
 * The RFC 4976 relay: listeners, peers, AUTH, routing, forwarding, the transaction table, failure
 * REPORTs, relay chaining and shutdown. The data path (DESIGN.md):
 *
 * ```
 * socket ─► Peer (parser) ─► Relay.onRequestHead ─► routeRequest ─► dest Peer's OutboundWriter ─► socket
 *                                    │ (SEND bodies stream through as they arrive)
 *                                    └─► TransactionTable ◄── responses / timeouts / connection loss
 *                                                 └─► failure REPORT toward the sender
 * ```
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect, type TlsOptions } from 'node:tls';
import { DEFAULTS, type ContinuationFlag } from '../constants.js';
import type { MsrpError } from '../errors.js';
import { getHeader, type FrameHead, type Header, type RequestHead } from '../msrp/message.js';
import { parseByteRange, parseFailureReport, type ByteRange } from '../msrp/headers.js';
import type { ErrorContext } from '../msrp/parser.js';
import { formatHead, frameTail, randomId, serializeResponse } from '../msrp/serializer.js';
import type { MsrpUri } from '../msrp/uri.js';
import { StreamConnection, type Connection, type TransportKind } from '../transport/connection.js';
import { listenWs } from '../transport/ws.js';
import { authenticate, type AuthContext } from './auth.js';
import { DigestAuthenticator } from './digest-auth.js';
import { silentLogger, type Logger } from './logger.js';
import type { SubChunkSent } from './outbound-writer.js';
import { Peer, type IncomingFrame, type PeerLimits, type PeerOwner } from './peer.js';
import { failureReport, firstUri, splitPath, transactionResponse } from './replies.js';
import { routeRequest, type RouteContext, type RouteResult } from './router.js';
import { RelayReports, type TrackedIm, type TrackedImMessage } from './relay-reports.js';
import {
  createRelayCounters,
  KNOWN_METHODS,
  perTransport,
  type ConnectionState,
  type RelayCounters,
  type RelayStats,
} from './stats.js';
import { TokenTable } from './tokens.js';
import { TransactionTable, type ForwardedTransaction } from './transactions.js';
import type { UserStore } from './users.js';

export type { ConnectionState, RelayCounters, RelayStats } from './stats.js';

/** A `host:port` to listen on (port 0: any free port). */
export interface ListenSpec {
  host: string;
  port: number;
}

/** Options of {@link createRelay}; every limit defaults to DESIGN.md's table. */
export interface RelayOptions {
  /** Delivery-report injection (DESIGN.md "Report policy"): `on-ack` (default), `on-receipt` or `off`. */
  reports?: 'on-ack' | 'on-receipt' | 'off';
  /** Drop the recipient's own delivery IMDN for a message already reported (default true). */
  reportsDedupe?: boolean;
  /** Answer `processing` requests with `processed` (default false). */
  reportsProcessing?: boolean;
  /** Plain TCP listeners (default 127.0.0.1:2855 when no listener at all is given). */
  listen?: ListenSpec[];
  /** TLS listeners; need `tls.cert` and `tls.key`. */
  tlsListen?: ListenSpec[];
  /** WebSocket listeners (RFC 7977, plain `ws://`: for tests and TLS-terminating proxies). */
  wsListen?: ListenSpec[];
  /** Secure WebSocket listeners (`wss://`); need `tls.cert` and `tls.key`. */
  wssListen?: ListenSpec[];
  /** Origins a WebSocket handshake may come from (403 otherwise); empty or absent: any. */
  wsAllowedOrigins?: string[];
  /**
   * Largest WebSocket message the relay sends: each forwarded SEND chunk toward a WebSocket client is
   * cut to fit, head and end-line included (default 64 KiB). Incoming messages may be as large as
   * `max(wsMaxMessageBytes, maxQueuedBytes)`.
   */
  wsMaxMessageBytes?: number;
  /** Plain HTTP requests reaching a WebSocket listener (default 404). */
  onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /** TLS material for listeners, plus trust settings for outbound `msrps` connections. */
  tls?: { cert?: string | Buffer; key?: string | Buffer; ca?: string | Buffer; rejectUnauthorized?: boolean };
  /** Host name put in Use-Path URIs (default: the first listen host). */
  publicHost?: string;
  /** Digest realm (default: publicHost). */
  realm?: string;
  /** Where AUTH credentials come from. */
  users?: UserStore;
  /** false: AUTH is granted without a challenge (`--no-auth`). Default true. */
  auth?: boolean;
  /** AUTH lifetime in seconds: default, minimum, maximum. */
  authExpires?: number;
  authMinExpires?: number;
  authMaxExpires?: number;
  /** Failed AUTHs on one connection before it is closed. */
  maxAuthFailures?: number;
  /** Largest message (and chunk) accepted, bytes. */
  maxMessageBytes?: number;
  /** Largest body of a non-SEND request, bytes. */
  maxOtherBodyBytes?: number;
  /** Queued bytes toward one connection before its sources pause. */
  maxQueuedBytes?: number;
  transactionTimeoutMs?: number;
  probationMs?: number;
  idleTimeoutMs?: number;
  logger?: Logger;
}

/** A bound listener. */
export interface RelayAddress {
  kind: TransportKind;
  host: string;
  port: number;
}

interface BoundListener {
  kind: TransportKind;
  server: Server;
  host: string;
  port: number;
}

/** Creates a relay; call {@link Relay.listen} to start it. */
export function createRelay(options: RelayOptions = {}): Relay {
  return new Relay(options);
}

/** An MSRP relay (RFC 4976) over TCP, TLS and WebSocket (RFC 7977). */
export class Relay implements PeerOwner, RouteContext<Peer> {
  readonly tokens = new TokenTable<Peer>();
  readonly transactions = new TransactionTable<Peer, TrackedImMessage>();
  readonly counters: RelayCounters = createRelayCounters();
  readonly log: Logger;
  /** Message tracking and delivery-report injection. */
  readonly reports: RelayReports;
  private readonly opts: Required<
    Omit<
      RelayOptions,
      | 'tls'
      | 'users'
      | 'logger'
      | 'publicHost'
      | 'realm'
      | 'listen'
      | 'tlsListen'
      | 'wsListen'
      | 'wssListen'
      | 'wsAllowedOrigins'
      | 'onHttpRequest'
      | 'reports'
      | 'reportsDedupe'
      | 'reportsProcessing'
    >
  >;
  private readonly listenSpecs: ListenSpec[];
  private readonly tlsListenSpecs: ListenSpec[];
  private readonly wsOptions: {
    wsListen: ListenSpec[];
    wssListen: ListenSpec[];
    allowedOrigins: string[];
    onHttpRequest: RelayOptions['onHttpRequest'];
  };
  private readonly tlsOptions: RelayOptions['tls'];
  private readonly authenticator: DigestAuthenticator | null;
  private readonly listeners: BoundListener[] = [];
  private readonly peers = new Set<Peer>();
  private readonly dialedPeers = new Map<string, Peer>();
  private readonly connectedAt = new WeakMap<Peer, number>();
  private readonly authorities = new Set<string>();
  private publicHost: string;
  private housekeeping: NodeJS.Timeout | null = null;
  private draining = false;
  /** Octets of connections already closed, by transport ({@link stats} adds the open ones). */
  private readonly retiredBytes = { in: perTransport(() => 0), out: perTransport(() => 0) };

  constructor(options: RelayOptions) {
    this.log = options.logger ?? silentLogger;
    this.reports = new RelayReports({
      mode: options.reports ?? 'on-ack',
      dedupe: options.reportsDedupe ?? true,
      processing: options.reportsProcessing ?? false,
      log: this.log,
    });
    const plain = options.listen ?? [];
    const tls = options.tlsListen ?? [];
    const ws = [...(options.wsListen ?? []), ...(options.wssListen ?? [])];
    this.listenSpecs =
      plain.length === 0 && tls.length === 0 && ws.length === 0
        ? [{ host: '127.0.0.1', port: DEFAULTS.port }]
        : plain;
    this.tlsListenSpecs = tls;
    this.tlsOptions = options.tls;
    this.wsOptions = {
      wsListen: options.wsListen ?? [],
      wssListen: options.wssListen ?? [],
      allowedOrigins: options.wsAllowedOrigins ?? [],
      onHttpRequest: options.onHttpRequest,
    };
    this.publicHost = options.publicHost ?? (this.listenSpecs[0] ?? this.tlsListenSpecs[0] ?? ws[0])!.host;
    this.opts = {
      auth: options.auth ?? true,
      authExpires: options.authExpires ?? DEFAULTS.authExpires,
      authMinExpires: options.authMinExpires ?? DEFAULTS.authMinExpires,
      authMaxExpires: options.authMaxExpires ?? DEFAULTS.authMaxExpires,
      maxAuthFailures: options.maxAuthFailures ?? DEFAULTS.maxAuthFailures,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
      maxOtherBodyBytes: options.maxOtherBodyBytes ?? DEFAULTS.maxOtherBodyBytes,
      maxQueuedBytes: options.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes,
      wsMaxMessageBytes: options.wsMaxMessageBytes ?? DEFAULTS.wsMaxMessageBytes,
      transactionTimeoutMs: options.transactionTimeoutMs ?? DEFAULTS.transactionTimeoutMs,
      probationMs: options.probationMs ?? DEFAULTS.probationMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
    };
    const realm = options.realm ?? this.publicHost;
    this.authenticator = this.opts.auth
      ? new DigestAuthenticator({ realm, users: options.users ?? { lookup: () => undefined } })
      : null;
  }

  /** Replaces the user store (SIGHUP reload); live connections and tokens are kept. */
  setUsers(users: UserStore): void {
    if (this.authenticator !== null) this.authenticator.users = users;
  }

  /** Starts every listener; resolves when all are bound. */
  async listen(): Promise<void> {
    for (const spec of this.listenSpecs) {
      const server = createServer((socket) => this.accept(new StreamConnection(socket, 'tcp')));
      await this.bind(server, 'tcp', spec);
    }
    if (this.tlsListenSpecs.length > 0) {
      const t = this.tlsOptions;
      if (t?.cert === undefined || t.key === undefined)
        throw new Error('TLS listeners need a certificate and key');
      const tlsOpts: TlsOptions = { cert: t.cert, key: t.key, minVersion: 'TLSv1.2' };
      for (const spec of this.tlsListenSpecs) {
        const server = createTlsServer(tlsOpts, (socket) => this.accept(new StreamConnection(socket, 'tls')));
        await this.bind(server, 'tls', spec);
      }
    }
    await this.listenWebSocket();
    const tick = Math.max(
      10,
      Math.min(
        1000,
        this.opts.probationMs / 4,
        this.opts.transactionTimeoutMs / 4,
        this.opts.idleTimeoutMs / 4,
      ),
    );
    this.housekeeping = setInterval(() => this.tick(), tick);
    this.housekeeping.unref();
  }

  /** The bound listeners (ports resolved). */
  addresses(): RelayAddress[] {
    return this.listeners.map((l) => ({ kind: l.kind, host: l.host, port: l.port }));
  }

  /** Live connections. */
  get connectionCount(): number {
    return this.peers.size;
  }

  /** Bytes queued toward the most loaded connection (what backpressure bounds). */
  queuedBytes(): number {
    let max = 0;
    for (const p of this.peers) max = Math.max(max, p.writer.totalQueued);
    return max;
  }

  /**
   * A snapshot for metrics and health checks: counters (copied) plus levels read now. Walks every open
   * connection once; meant for a scrape every few seconds, not for the data path.
   */
  stats(): RelayStats {
    const connections = perTransport<Record<ConnectionState, number>>(() => ({
      authenticated: 0,
      unauthenticated: 0,
      dialed: 0,
    }));
    const bytesIn = { ...this.retiredBytes.in };
    const bytesOut = { ...this.retiredBytes.out };
    let queuedBytesMax = 0;
    let queuedBytesTotal = 0;
    let pausedReaders = 0;
    for (const p of this.peers) {
      const kind = p.conn.kind;
      const state: ConnectionState = p.dialed
        ? 'dialed'
        : this.tokens.hasOwner(p)
          ? 'authenticated'
          : 'unauthenticated';
      connections[kind][state]++;
      bytesIn[kind] += p.conn.bytesIn;
      bytesOut[kind] += p.conn.bytesOut;
      const queued = p.writer.totalQueued;
      queuedBytesTotal += queued;
      if (queued > queuedBytesMax) queuedBytesMax = queued;
      if (p.isPaused) pausedReaders++;
    }
    return {
      connections,
      bytesIn,
      bytesOut,
      tokens: this.tokens.size,
      transactions: this.transactions.size,
      queuedBytesMax,
      queuedBytesTotal,
      pausedReaders,
      draining: this.draining,
      counters: structuredClone(this.counters),
      reports: structuredClone(this.reports.counters),
    };
  }

  /** True between {@link close} being called and the relay having stopped. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops accepting, lets in-flight transactions finish for up to `graceMs`, then closes every
   * connection. Resolves when everything is closed.
   */
  async close(graceMs = 5000): Promise<void> {
    this.draining = true;
    // server.close() stops accepting now; its callback fires once every accepted connection is gone.
    const stopped = Promise.all(
      this.listeners.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))),
    );
    const deadline = Date.now() + graceMs;
    while (this.transactions.size > 0 && Date.now() < deadline) await sleep(20);
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    const closed = [...this.peers].map((p) => new Promise<void>((resolve) => closeWaiters.set(p, resolve)));
    for (const p of this.peers) p.close('shutdown');
    const timeout = sleep(2000).then(() => {
      for (const p of this.peers) p.conn.destroy('shutdown');
    });
    await Promise.race([Promise.all(closed), timeout]);
    await Promise.all(closed);
    await stopped;
  }

  // ---- RouteContext --------------------------------------------------------------------------------

  /** True when `uri` names this relay (host and port of one of its authorities). */
  isOurs(uri: MsrpUri): boolean {
    return uri.port !== undefined && this.authorities.has(`${uri.host.toLowerCase()}:${uri.port}`);
  }

  // ---- PeerOwner -----------------------------------------------------------------------------------

  onRequestHead(peer: Peer, head: RequestHead): IncomingFrame {
    bump(this.counters.requestsIn, KNOWN_METHODS.has(head.method) ? head.method : 'other');
    if (head.method !== 'SEND' || !head.hasBody) return { kind: 'collect', head, pieces: [] };
    // Cut-through: a SEND with a body is routed on its head and streamed while it arrives.
    return this.openForward(peer, head, this.route(peer, head), true);
  }

  /**
   * Starts forwarding a SEND chunk whose body follows: checks its Byte-Range, opens a stream toward
   * the next hop, and starts report tracking. With `mayHold`, a small CPIM SEND that may be a
   * recipient's duplicate delivery IMDN is collected whole first (`--reports-dedupe`).
   */
  private openForward(
    peer: Peer,
    head: RequestHead,
    route: RouteResult<Peer>,
    mayHold: boolean,
  ): IncomingFrame {
    if (!route.ok)
      return { kind: 'drop', head, status: route.statusCode, comment: route.comment, ourUri: route.ourUri };
    let byteRange: ByteRange | null = null;
    const brIndex = findHeader(head.headers, 'byte-range');
    if (brIndex >= 0) {
      try {
        byteRange = parseByteRange(head.headers[brIndex]![1]);
      } catch {
        return { kind: 'drop', head, status: 400, comment: 'Bad Byte-Range', ourUri: route.ourUri };
      }
      const max = this.opts.maxMessageBytes;
      if ((typeof byteRange.total === 'number' && byteRange.total > max) || byteRange.start > max) {
        this.reports.refused(route.toPath, getHeader(head.headers, 'message-id'), 413);
        return { kind: 'drop', head, status: 413, comment: 'Message too large', ourUri: route.ourUri };
      }
    }
    // A small CPIM SEND from a recipient may be its own delivery IMDN, dropped when already reported.
    if (mayHold && this.reports.holdForDedupe(head, byteRange)) return { kind: 'collect', head, pieces: [] };
    const dest = this.nextPeer(route);
    const headers = rewritePaths(head.headers, route.toPath, route.fromPath);
    // RFC 7977 §5.1: toward a WebSocket peer every sub-chunk must fit one message; a head that leaves
    // no room for the body within wsMaxMessageBytes cannot be forwarded there.
    if (dest.conn.messageFramed && headBytes(headers) > this.wsHeadRoom())
      return {
        kind: 'drop',
        head,
        status: 413,
        comment: 'Head too large for WebSocket',
        ourUri: route.ourUri,
      };
    const fr = failureReportOf(head);
    const messageId = getHeader(head.headers, 'message-id');
    const reportTo = head.headers[1]![1];
    const ourUri = route.ourUri;
    const total = byteRange?.total ?? '*';
    const tracked = this.reports.begin(peer, head, route.toPath, byteRange, dest);
    const stream = dest.writer.openStream({
      headers,
      byteRange,
      byteRangeIndex: brIndex,
      onSent: (sub: SubChunkSent) => {
        const trackedMsg = tracked === null ? undefined : this.reports.sent(tracked, fr, sub.start, sub.end);
        if (fr === 'no') return;
        this.track({
          tracked: trackedMsg,
          tid: sub.tid,
          dest,
          source: peer,
          sourceTid: head.transactionId,
          method: 'SEND',
          failureReport: fr,
          messageId,
          rangeStart: sub.start,
          rangeEnd: sub.end,
          total,
          reportTo,
          ourUri,
          hops: 0,
          deadline: 0,
        });
      },
    });
    this.counters.forwarded++;
    const declared =
      byteRange !== null && typeof byteRange.end === 'number'
        ? byteRange.end - byteRange.start + 1
        : Infinity;
    return { kind: 'stream', head, stream, dest, ourUri, tracked, declared, received: 0 };
  }

  onOverrun(_peer: Peer, frame: IncomingFrame & { kind: 'stream' }): IncomingFrame {
    frame.stream.finish('#');
    this.reports.end(frame.tracked, '#');
    bump(this.counters.parseErrors, 'MSRP_ERR_BODY_OVERRUN');
    return {
      kind: 'drop',
      head: frame.head,
      status: 400,
      comment: 'Body longer than its Byte-Range',
      ourUri: frame.ourUri,
    };
  }

  onTrackedBody(chunk: TrackedIm, piece: Buffer): void {
    this.reports.data(chunk, piece);
  }

  onRequestEnd(peer: Peer, frame: IncomingFrame, flag: ContinuationFlag): void {
    const head = frame.head;
    switch (frame.kind) {
      case 'stream':
        // DESIGN.md on-receipt: the delivery report is injected before the final end-line goes on.
        this.reports.end(frame.tracked, flag);
        frame.stream.finish(flag);
        if (frame.stream.isAborted) {
          // The next hop went away before the chunk was through: not received, so no 200.
          if (frame.tracked !== null) this.reports.failed(frame.tracked.msg, 481);
          this.refuse(peer, head, 481, 'Next hop connection lost', frame.ourUri);
          return;
        }
        // RFC 4976 §6.5: with Failure-Report yes the relay answers 200 at once, meaning "received".
        if (failureReportOf(head) === 'yes')
          peer.send([transactionResponse(head, 200, 'OK', frame.ourUri)], peer);
        return;
      case 'drop':
        this.refuse(peer, head, frame.status, frame.comment, frame.ourUri);
        return;
      case 'collect':
        this.onCollected(peer, head, frame.pieces, flag);
    }
  }

  onResponse(peer: Peer, head: FrameHead & { kind: 'response' }): void {
    bump(this.counters.responsesIn, String(head.statusCode));
    const tx = this.transactions.take(head.transactionId, peer);
    if (tx === undefined) {
      this.log.debug({ conn: peer.id, tid: head.transactionId }, 'response for no known transaction dropped');
      return;
    }
    if (tx.method === 'SEND') {
      if (tx.tracked !== undefined)
        this.reports.answered(tx.tracked, head.statusCode, tx.rangeStart, tx.rangeEnd);
      // RFC 4976 §6.5: a non-200 from the next hop becomes a failure REPORT (FR yes or partial).
      if (head.statusCode !== 200) this.sendFailureReport(tx, head.statusCode, head.comment || 'Failed');
      return;
    }
    // End-to-end response (AUTH through, extension methods): pop our URI, push it, restore the tid.
    if (tx.source.isClosed) return;
    // Pop as many of our URIs as the request lost here (two when it was routed internally).
    const to = splitPath(head.headers[0]![1]);
    const from = splitPath(head.headers[1]![1]);
    for (let i = 0; i < tx.hops && to.length > 1; i++) from.unshift(to.shift()!);
    const headers = rewritePaths(head.headers, to.join(' '), from.join(' '));
    const start = `MSRP ${tx.sourceTid} ${head.statusCode}` + (head.comment === '' ? '' : ' ' + head.comment);
    tx.source.send(
      [formatHead(start, headers, false), Buffer.from(frameTail(tx.sourceTid, '$', false), 'latin1')],
      peer,
    );
  }

  onParseError(peer: Peer, err: MsrpError, context: ErrorContext | null, frame: IncomingFrame | null): void {
    bump(this.counters.parseErrors, err.code);
    if (frame?.kind === 'stream') this.reports.end(frame.tracked, '#');
    this.log.info({ conn: peer.id, remote: peer.conn.remote, code: err.code, fatal: err.fatal }, err.message);
    // RFC 4975 §7.2: a malformed request gets 400 (413 for a body over the limit) when its paths are known.
    const toPath = context === null ? undefined : getHeader(context.headers, 'to-path');
    const fromPath = context === null ? undefined : getHeader(context.headers, 'from-path');
    if (context !== null && context.method !== undefined && toPath !== undefined && fromPath !== undefined) {
      const head: RequestHead = {
        kind: 'request',
        transactionId: context.transactionId,
        method: context.method,
        headers: [['To-Path', toPath], ['From-Path', fromPath], ...context.headers.slice(2)],
        hasBody: false,
      };
      const ourUri = frame?.kind === 'stream' ? frame.ourUri : firstUri(toPath);
      this.refuse(peer, head, err.statusCode, err.message, ourUri);
    }
    if (err.fatal) peer.close(`parse-error:${err.code}`);
  }

  onClose(peer: Peer, reason: string): void {
    this.peers.delete(peer);
    if (peer.dialKey !== undefined && this.dialedPeers.get(peer.dialKey) === peer)
      this.dialedPeers.delete(peer.dialKey);
    const tokens = this.tokens.dropOwner(peer);
    const pending = this.transactions.takeAllTo(peer);
    const { kind, bytesIn, bytesOut } = peer.conn;
    this.counters.connectionsClosed++;
    bump(this.counters.closed[kind], reason);
    this.retiredBytes.in[kind] += bytesIn;
    this.retiredBytes.out[kind] += bytesOut;
    this.log.info(
      {
        conn: peer.id,
        remote: peer.conn.remote,
        transport: kind,
        reason,
        durationMs: Date.now() - (this.connectedAt.get(peer) ?? Date.now()),
        requests: peer.requests,
        bytesIn,
        bytesOut,
        tokens,
        pending: pending.length,
      },
      'connection closed',
    );
    // RFC 4976 §6.5: the next hop is gone, so what was sent to it failed.
    const everConnected = peer.requests > 0 || !peer.dialed || reason !== 'error:ECONNREFUSED';
    for (const tx of pending) {
      if (tx.tracked !== undefined) this.reports.failed(tx.tracked, everConnected ? 481 : 408);
      if (tx.method === 'SEND')
        this.sendFailureReport(tx, everConnected ? 481 : 408, 'Next hop connection lost');
      else this.answerUpstream(tx, 408, 'Next hop connection lost');
    }
    this.reports.peerClosed(peer);
    closeWaiters.get(peer)?.();
  }

  // ---- internals -----------------------------------------------------------------------------------

  private async bind(server: Server, kind: TransportKind, spec: ListenSpec): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(spec.port, spec.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const addr = server.address();
    this.register(server, kind, spec, typeof addr === 'object' && addr !== null ? addr.port : spec.port);
  }

  /** WebSocket listeners (RFC 7977): one HTTP(S) server each, closed with the others in {@link close}. */
  private async listenWebSocket(): Promise<void> {
    const { wsListen, wssListen, allowedOrigins, onHttpRequest } = this.wsOptions;
    const t = this.tlsOptions;
    if (wssListen.length > 0 && (t?.cert === undefined || t.key === undefined))
      throw new Error('WSS listeners need a certificate and key');
    const specs = [
      ...wsListen.map((spec) => ({ spec, secure: false })),
      ...wssListen.map((spec) => ({ spec, secure: true })),
    ];
    for (const { spec, secure } of specs) {
      const l = await listenWs({
        host: spec.host,
        port: spec.port,
        tls: secure ? { cert: t!.cert!, key: t!.key! } : undefined,
        allowedOrigins,
        maxPayload: Math.max(this.opts.wsMaxMessageBytes, this.opts.maxQueuedBytes),
        onConnection: (conn) => this.accept(conn),
        onHttpRequest,
      });
      this.register(l.server, l.kind, spec, l.port);
    }
  }

  private register(server: Server, kind: TransportKind, spec: ListenSpec, port: number): void {
    server.on('error', (err) => this.log.error({ err: String(err), kind }, 'listener error'));
    this.listeners.push({ kind, server, host: spec.host, port });
    this.authorities.add(`${this.publicHost.toLowerCase()}:${port}`);
    this.authorities.add(`${spec.host.toLowerCase()}:${port}`);
    if (spec.host.includes(':')) this.authorities.add(`[${spec.host.toLowerCase()}]:${port}`);
  }

  private limits(conn: Connection): PeerLimits {
    return {
      maxChunkBytes: this.opts.maxMessageBytes,
      maxOtherBodyBytes: this.opts.maxOtherBodyBytes,
      maxQueuedBytes: this.opts.maxQueuedBytes,
      // RFC 7977 §5.1: a chunk toward a WebSocket peer must fit one message, head and end-line included.
      maxChunkBody: conn.messageFramed ? this.opts.wsMaxMessageBytes - this.wsHeadRoom() : Infinity,
    };
  }

  /** Octets of a WebSocket message kept for a forwarded chunk's head and end-line (4 KiB at most). */
  private wsHeadRoom(): number {
    return Math.min(WS_HEAD_ROOM, this.opts.wsMaxMessageBytes >> 1);
  }

  /** Adopts an accepted connection. */
  accept(conn: Connection): void {
    if (this.draining) {
      conn.destroy('draining');
      return;
    }
    const peer = new Peer(this, conn, this.limits(conn));
    this.peers.add(peer);
    this.connectedAt.set(peer, Date.now());
    this.counters.connectionsOpened++;
    this.counters.opened[conn.kind]++;
    this.log.info({ conn: peer.id, remote: conn.remote, transport: conn.kind }, 'connection opened');
  }

  private route(peer: Peer, head: RequestHead): RouteResult<Peer> {
    return routeRequest(this, peer, head.headers[0]![1], head.headers[1]![1]);
  }

  private nextPeer(route: RouteResult<Peer> & { ok: true }): Peer {
    return route.next.kind === 'peer' ? route.next.peer : this.dial(route.next.uri);
  }

  /** A connection toward another relay or endpoint (relay chaining), reused per scheme/host/port. */
  private dial(uri: MsrpUri): Peer {
    const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
    const port = uri.port ?? DEFAULTS.port;
    const key = `${uri.scheme}://${host.toLowerCase()}:${port}`;
    const existing = this.dialedPeers.get(key);
    if (existing !== undefined && !existing.closing && !existing.isClosed) return existing;
    let socket: Socket;
    let kind: 'tcp' | 'tls';
    if (uri.scheme === 'msrps') {
      const t = this.tlsOptions;
      socket = tlsConnect({
        host,
        port,
        servername: /^[\d.]+$|:/.test(host) ? undefined : host,
        ca: t?.ca,
        rejectUnauthorized: t?.rejectUnauthorized ?? true,
      });
      kind = 'tls';
    } else {
      socket = netConnect({ host, port });
      kind = 'tcp';
    }
    const conn = new StreamConnection(socket, kind);
    const peer = new Peer(this, conn, this.limits(conn), key);
    this.peers.add(peer);
    this.connectedAt.set(peer, Date.now());
    this.dialedPeers.set(key, peer);
    this.counters.connectionsOpened++;
    this.counters.opened[kind]++;
    this.log.info({ conn: peer.id, to: key, transport: kind }, 'connecting to next hop');
    return peer;
  }

  private onCollected(peer: Peer, head: RequestHead, pieces: Buffer[], flag: ContinuationFlag): void {
    const to = head.headers[0]![1];
    if (head.method === 'AUTH' && splitPath(to).length === 1) {
      this.onAuth(peer, head);
      return;
    }
    const route = this.route(peer, head);
    if (!route.ok) {
      this.refuse(peer, head, route.statusCode, route.comment, route.ourUri);
      return;
    }
    const body = head.hasBody ? Buffer.concat(pieces) : null;
    if (head.method === 'SEND' && body !== null && this.reports.isDuplicate(head, body)) {
      // DESIGN.md "Exactly one": the relay already reported delivery; the recipient's copy is dropped.
      if (failureReportOf(head) === 'yes')
        peer.send([transactionResponse(head, 200, 'OK', route.ourUri)], peer);
      return;
    }
    if (head.method === 'SEND' && body !== null) {
      // A held SEND that is not a duplicate is forwarded like any chunk (and tracked for reports).
      const frame = this.openForward(peer, head, route, false);
      if (frame.kind === 'stream') {
        if (frame.tracked !== null) this.reports.data(frame.tracked, body);
        frame.stream.push(body);
      }
      this.onRequestEnd(peer, frame, flag);
      return;
    }
    const dest = this.nextPeer(route);
    let tid = randomId();
    if (body !== null) while (body.includes('\r\n-------' + tid)) tid = randomId();
    const headers = rewritePaths(head.headers, route.toPath, route.fromPath);
    const parts = [formatHead(`MSRP ${tid} ${head.method}`, headers, body !== null)];
    if (body !== null) parts.push(body);
    parts.push(Buffer.from(frameTail(tid, flag, body !== null), 'latin1'));
    const fr = failureReportOf(head);
    if (head.method !== 'REPORT' && fr !== 'no') {
      let range: ByteRange = { start: 1, end: 0, total: 0 };
      const br = getHeader(head.headers, 'byte-range');
      if (br !== undefined) {
        try {
          range = parseByteRange(br);
        } catch {
          /* keep the empty range: only used in a failure REPORT */
        }
      }
      this.track({
        tid,
        dest,
        source: peer,
        sourceTid: head.transactionId,
        method: head.method,
        failureReport: fr,
        messageId: getHeader(head.headers, 'message-id'),
        rangeStart: range.start,
        rangeEnd: typeof range.end === 'number' ? range.end : range.start - 1,
        total: range.total,
        reportTo: head.headers[1]![1],
        ourUri: route.ourUri,
        hops: splitPath(to).length - splitPath(route.toPath).length,
        deadline: 0,
      });
    }
    dest.send(parts, peer);
    this.counters.forwarded++;
    if (head.method === 'SEND' && fr === 'yes')
      peer.send([transactionResponse(head, 200, 'OK', route.ourUri)], peer);
  }

  private onAuth(peer: Peer, head: RequestHead): void {
    const ctx: AuthContext = {
      authenticator: this.authenticator,
      expires: { def: this.opts.authExpires, min: this.opts.authMinExpires, max: this.opts.authMaxExpires },
      maxFailures: this.opts.maxAuthFailures,
      issueToken: (client, username, expiresSec) => {
        const listener = this.useListener(peer);
        const kind = listener?.kind ?? peer.conn.kind;
        const scheme = kind === 'tls' || kind === 'wss' ? 'msrps' : 'msrp';
        const port = listener?.port ?? DEFAULTS.port;
        const token = this.tokens.issue(peer, client, username, Date.now() + expiresSec * 1000, (id) => {
          return `${scheme}://${this.publicHost}:${port}/${id};tcp`;
        });
        return token.uri;
      },
    };
    const outcome = authenticate(ctx, head, peer.authFailures);
    const ourUri = head.headers[0]![1].trim();
    peer.send(
      [transactionResponse(head, outcome.statusCode, outcome.comment, ourUri, outcome.headers)],
      peer,
    );
    bump(this.counters.auth, outcome.result);
    if (outcome.result === 'ok') this.counters.authOk++;
    else if (outcome.result === 'challenge' || outcome.result === 'stale') this.counters.authChallenged++;
    else this.counters.authFailed++;
    if (outcome.result === 'failed' || outcome.result === 'bad-request' || outcome.result === 'bad-expires') {
      if (outcome.result === 'failed') peer.authFailures++;
      this.log.warn(
        {
          conn: peer.id,
          remote: peer.conn.remote,
          result: outcome.result,
          status: outcome.statusCode,
          reason: outcome.reason,
          failures: peer.authFailures,
        },
        'AUTH failed',
      );
    } else if (outcome.result === 'ok') {
      this.log.debug({ conn: peer.id, user: outcome.username }, 'AUTH ok');
    }
    if (outcome.close) peer.close('auth-failures');
  }

  /**
   * The listener written in Use-Path: the TCP/TLS listener the client came in on; for a WebSocket
   * client a TCP/TLS listener of the same security (RFC 7977 §5.2.2, §8.1.2: the Use-Path URI is a `;tcp`
   * URI, what the far end connects to), else any TCP/TLS one, else the first listener.
   */
  private useListener(peer: Peer): BoundListener | undefined {
    const kind = peer.conn.kind;
    const stream = (l: BoundListener): boolean => l.kind === 'tcp' || l.kind === 'tls';
    const own = this.listeners.find((l) => stream(l) && l.kind === kind && l.port === peer.conn.localPort);
    if (own !== undefined) return own;
    const secure = kind === 'wss' || kind === 'tls';
    return (
      this.listeners.find((l) => l.kind === (secure ? 'tls' : 'tcp')) ??
      this.listeners.find(stream) ??
      this.listeners[0]
    );
  }

  /**
   * Tells the sender a request was not forwarded. SEND: an error response when Failure-Report is yes,
   * a failure REPORT when partial, nothing when no (RFC 4975 §7.1.1). REPORT: never answered. Other
   * methods: an error response unless Failure-Report is no.
   */
  private refuse(peer: Peer, head: RequestHead, statusCode: number, comment: string, ourUri: string): void {
    if (head.method === 'REPORT') return;
    const fr = failureReportOf(head);
    if (fr === 'no') return;
    if (head.method === 'SEND' && fr === 'partial') {
      let range: ByteRange = { start: 1, end: '*', total: '*' };
      try {
        const br = getHeader(head.headers, 'byte-range');
        if (br !== undefined) range = parseByteRange(br);
      } catch {
        /* the REPORT still says which message failed */
      }
      bump(this.counters.failureReports, String(statusCode));
      const messageId = getHeader(head.headers, 'message-id');
      const end = typeof range.end === 'number' ? range.end : range.start - 1;
      this.log.info(
        { conn: peer.id, messageId, status: statusCode, range: `${range.start}-${end}` },
        'failure REPORT',
      );
      peer.send(
        [
          failureReport({
            reportTo: head.headers[1]![1],
            ourUri,
            messageId,
            start: range.start,
            end,
            total: range.total,
            statusCode,
            comment,
          }),
        ],
        peer,
      );
      return;
    }
    peer.send([transactionResponse(head, statusCode, comment, ourUri)], peer);
  }

  private track(tx: ForwardedTransaction<Peer, TrackedImMessage>): void {
    tx.deadline = Date.now() + this.opts.transactionTimeoutMs;
    this.transactions.add(tx);
  }

  private sendFailureReport(
    tx: ForwardedTransaction<Peer, TrackedImMessage>,
    statusCode: number,
    comment: string,
  ): void {
    if (tx.failureReport === 'no' || tx.source.isClosed) return;
    bump(this.counters.failureReports, String(statusCode));
    this.log.info(
      {
        conn: tx.source.id,
        messageId: tx.messageId,
        status: statusCode,
        range: `${tx.rangeStart}-${tx.rangeEnd}`,
      },
      'failure REPORT',
    );
    tx.source.send([
      failureReport({
        reportTo: tx.reportTo,
        ourUri: tx.ourUri,
        messageId: tx.messageId,
        start: tx.rangeStart,
        end: tx.rangeEnd,
        total: tx.total,
        statusCode,
        comment,
      }),
    ]);
  }

  /** Answers a forwarded end-to-end request upstream on the relay's own behalf (timeout, loss). */
  private answerUpstream(
    tx: ForwardedTransaction<Peer, TrackedImMessage>,
    statusCode: number,
    comment: string,
  ): void {
    if (tx.failureReport === 'no' || tx.source.isClosed) return;
    tx.source.send([
      serializeResponse({
        transactionId: tx.sourceTid,
        statusCode,
        comment,
        toPath: tx.reportTo.trim(),
        fromPath: tx.ourUri,
      }),
    ]);
  }

  private tick(): void {
    const now = Date.now();
    for (const tx of this.transactions.takeExpired(now)) {
      if (tx.tracked !== undefined) this.reports.failed(tx.tracked, 408);
      if (tx.failureReport !== 'yes') continue; // RFC 4976 §6.5: no timer for partial
      this.counters.transactionTimeouts++;
      if (tx.method === 'SEND') this.sendFailureReport(tx, 408, 'Request Timeout');
      else this.answerUpstream(tx, 408, 'Request Timeout');
    }
    this.tokens.sweep(now);
    this.reports.sweep(now);
    for (const peer of this.peers) {
      if (peer.closing) continue;
      const age = now - (this.connectedAt.get(peer) ?? now);
      // RFC 4976 §6.3: a connection that sends no request within the probation period is closed.
      if (peer.requests === 0 && !peer.dialed && age > this.opts.probationMs) peer.close('probation');
      else if (!this.tokens.hasOwner(peer) && !peer.dialed && now - peer.lastActivity > this.opts.probationMs)
        // Holding no token, a connection only gets the probation period of silence (RFC 4976 §6.3).
        peer.close('idle-unauthenticated');
      else if (now - peer.lastActivity > this.opts.idleTimeoutMs && !this.tokens.hasOwner(peer))
        peer.close('idle');
    }
  }
}

const closeWaiters = new WeakMap<Peer, () => void>();

/** Octets of a WebSocket message kept for a forwarded chunk's head and end-line, at most. */
const WS_HEAD_ROOM = 4096;

/**
 * Upper bound of the octets a forwarded chunk's head and end-line take besides its headers: start line
 * with a 32-character transaction id, blank line, end-line, and a Byte-Range rewritten to exact values.
 */
const HEAD_OVERHEAD = 200;

/** Bytes a head with these headers takes on the wire, with margin (see {@link HEAD_OVERHEAD}). */
function headBytes(headers: readonly Header[]): number {
  let n = HEAD_OVERHEAD;
  for (const [name, value] of headers) n += name.length + value.length + 4;
  return n;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

function findHeader(headers: readonly Header[], lower: string): number {
  for (let i = 2; i < headers.length; i++) if (headers[i]![0].toLowerCase() === lower) return i;
  return -1;
}

function failureReportOf(head: RequestHead): 'yes' | 'no' | 'partial' {
  try {
    return parseFailureReport(getHeader(head.headers, 'failure-report'));
  } catch {
    return 'yes';
  }
}

/** The headers with To-Path and From-Path replaced (they are always the first two). */
function rewritePaths(headers: readonly Header[], toPath: string, fromPath: string): Header[] {
  const out = headers.slice();
  out[0] = [headers[0]![0], toPath];
  out[1] = [headers[1]![0], fromPath];
  return out;
}
