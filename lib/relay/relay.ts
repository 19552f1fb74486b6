/**
 * The RFC 4976 relay: listeners, peers, AUTH, routing, forwarding, the transaction table, failure
 * REPORTs, relay chaining and shutdown. Options resolve in `options.ts`; the bound servers live in
 * `listeners.ts`, outbound connections in `next-hops.ts`, failure answers in `failure-replies.ts`.
 * The data path (DESIGN.md):
 *
 * ```
 * socket ─► Peer (parser) ─► Relay.onRequestHead ─► routeRequest ─► dest Peer's OutboundWriter ─► socket
 *                                    │ (SEND bodies stream through as they arrive)
 *                                    └─► TransactionTable ◄── responses / timeouts / connection loss
 *                                                 └─► failure REPORT toward the sender
 * ```
 */
import type { X509Certificate } from 'node:crypto';
import { DEFAULTS, type ContinuationFlag } from '../constants.js';
import type { MsrpError } from '../errors.js';
import type { ByteRange } from '../msrp/headers.js';
import { getHeader, type FrameHead, type RequestHead } from '../msrp/message.js';
import type { ErrorContext } from '../msrp/parser.js';
import { formatHead, frameTail, randomId } from '../msrp/serializer.js';
import { formatUri, hostKey, type MsrpUri } from '../msrp/uri.js';
import { remoteAddress, type Connection, type TransportKind } from '../transport/connection.js';
import { authenticate, type AuthContext } from './auth.js';
import { AuthLockout, MAX_NAME } from './auth-lockout.js';
import { DigestAuthenticator } from './digest-auth.js';
import { FailureReplies } from './failure-replies.js';
import {
  readByteRange,
  failureReportOf,
  findHeader,
  headBytes,
  partsBytes,
  rewritePaths,
  WS_HEAD_ROOM,
} from './frame-utils.js';
import {
  addressKey,
  Listeners,
  type RefusalReason,
  type RelayCa,
  type TlsCertificateInfo,
  type TlsCredentials,
} from './listeners.js';
import { caCertificates, verifiedIdentity } from './relay-identity.js';
import { ownString } from '../util/own-string.js';
import { clip, logWithin } from './log-budget.js';
import type { Logger, LogFields } from './logger.js';
import { dialAuthority, DIAL_TIMEOUT_MS, NextHops, usable, type OutboundCa } from './next-hops.js';
import { resolveRelayOptions, type RelayAddress, type RelayLimits, type RelayOptions } from './options.js';
import { QueueBudget, type ChunkStream, type SubChunkSent } from './outbound-writer.js';
import { Peer, type IncomingFrame, type PeerLimits, type PeerOwner } from './peer.js';
import { firstUri, splitPath, transactionResponse } from './replies.js';
import { ReturnPaths } from './return-paths.js';
import { routeRequest, tryParse, type RouteContext, type RouteResult } from './router.js';
import { RelayReports, type TrackedIm, type TrackedImMessage } from './relay-reports.js';
import {
  bump,
  connectionLevels,
  createRelayCounters,
  KNOWN_METHODS,
  perTransport,
  statusLabel,
  type RelayCounters,
  type RelayStats,
} from './stats.js';
import { TokenTable, type Token } from './tokens.js';
import { TransactionTable, type ForwardedTransaction } from './transactions.js';
import type { UserStore } from './users.js';

export type { ConnectionState, RelayCounters, RelayStats } from './stats.js';
export type { ListenSpec, RelayAddress, RelayOptions } from './options.js';

/** Creates a relay; call {@link Relay.listen} to start it. */
export function createRelay(options: RelayOptions = {}): Relay {
  return new Relay(options);
}

/** An MSRP relay (RFC 4976) over TCP, TLS and WebSocket (RFC 7977). */
export class Relay implements PeerOwner, RouteContext<Peer> {
  readonly tokens = new TokenTable<Peer>();
  /** Accepted connections whose client certificate proved them a relay (`--relay-ca`). */
  private readonly certified = new Set<Peer>();
  /** URIs of proven relays and the connection each opened to us that carries them. */
  private readonly returnPaths: ReturnPaths<Peer>;
  /** The `--relay-ca` certificates: a dialed next hop whose certificate they sign is a relay of ours. */
  private relayCaCerts: X509Certificate[];
  readonly transactions = new TransactionTable<Peer, TrackedImMessage>((tx, sign) => this.onTxHold(tx, sign));
  readonly counters: RelayCounters = createRelayCounters();
  readonly log: Logger;
  /** Message tracking and delivery-report injection. */
  readonly reports: RelayReports;
  private readonly opts: RelayLimits;
  private readonly authenticator: DigestAuthenticator | null;
  private readonly lockout: AuthLockout;
  private readonly listeners: Listeners;
  private readonly failures: FailureReplies;
  private readonly nextHops: NextHops;
  private readonly peers = new Set<Peer>();
  private readonly connectedAt = new WeakMap<Peer, number>();
  private housekeeping: NodeJS.Timeout | null = null;
  /** The housekeeping interval, and when it last ran (or started), ms. */
  private tickMs = 1000;
  private lastTick = 0;
  private draining = false;
  /** Queued bytes of every connection together (`--max-total-queued-bytes`). */
  private readonly queueBudget: QueueBudget;
  /** What pending transactions hold, all destinations together (see {@link onTxHold}). */
  private readonly pendingBudget: QueueBudget;
  /** True while {@link shutDown} drops the chunks still queued (their failure REPORTs say 408). */
  private abandoning = false;
  /** The shutdown under way or done ({@link close}). */
  private closed: Promise<void> | null = null;
  /** Octets of connections already closed, by transport ({@link stats} adds the open ones). */
  private readonly retiredBytes = { in: perTransport(() => 0), out: perTransport(() => 0) };
  /** While set, refusals at accept are summed in {@link refusedInWindow} rather than logged each. */
  private refusalWindow: NodeJS.Timeout | null = null;
  /** Refusals at accept held for the next summary line, by `transport/reason`. */
  private refusedInWindow: Record<string, number> = {};

  constructor(options: RelayOptions) {
    const resolved = resolveRelayOptions(options);
    this.log = resolved.log;
    this.reports = new RelayReports({
      ...resolved.reports,
      log: this.log,
      wsMaxMessageBytes: resolved.limits.wsMaxMessageBytes,
      relayRouteAfter: (gone, path) => this.relayRouteAfter(gone, path),
      provenRelay: (peer) => this.vouched(peer),
      relayLink: (peer) => this.isRelayLink(peer),
    });
    this.opts = resolved.limits;
    this.returnPaths = new ReturnPaths<Peer>(this.opts.maxRelayedTokens);
    this.queueBudget = new QueueBudget(
      this.opts.maxTotalQueuedBytes > 0 ? this.opts.maxTotalQueuedBytes : Infinity,
      DEFAULTS.queueFloorBytes,
    );
    this.pendingBudget = new QueueBudget(this.opts.pendingBytesTotal, DEFAULTS.pendingFloorBytes);
    this.relayCaCerts = caCertificates(resolved.tls?.relayCa);
    this.nextHops = new NextHops(
      resolved.tls,
      resolved.nextHopAllow,
      resolved.nextHopDeny,
      Math.min(DIAL_TIMEOUT_MS, this.opts.probationMs),
      resolved.nextHopPerSession,
    );
    this.listeners = new Listeners({
      ...resolved,
      wsMaxPayload: Math.max(this.opts.wsMaxMessageBytes, this.opts.maxQueuedBytes),
      maxConnections: this.opts.maxConnections,
      maxConnectionsPerIp: this.opts.maxConnectionsPerIp,
      log: this.log,
      onConnection: (conn, acceptedAt) => this.accept(conn, acceptedAt),
      onRefused: (kind, reason, remote) => this.onRefused(kind, reason, remote),
      handshakeTimeoutMs: this.opts.probationMs,
      onHandshakeTimeout: (kind) => {
        this.counters.handshakeTimeouts[kind]++;
        this.log.debug({ transport: kind }, 'handshake not finished within the probation time: closed');
      },
    });
    this.failures = new FailureReplies(this.counters, this.log, (gone, path) =>
      this.relayRouteAfter(gone, path),
    );
    this.authenticator = this.opts.auth
      ? new DigestAuthenticator({ realm: resolved.realm, users: resolved.users })
      : null;
    this.lockout = new AuthLockout({
      failures: this.opts.authLockoutFailures,
      windowMs: this.opts.authLockoutMs,
      maxEntries: DEFAULTS.authLockoutEntries,
    });
  }

  /**
   * A socket closed at accept by a connection limit: counted, and logged so that a flood of connections
   * cannot flood the log too. The first refusal is logged at once with its address; those that follow
   * within `refusalLogIntervalMs` (10 s) are summed into one line when that time is up (by transport
   * and limit), and so on while refusals go on.
   */
  private onRefused(kind: TransportKind, reason: RefusalReason, remote: string): void {
    bump(this.counters.refusedConnections[kind], reason);
    // Logged by the listeners, with the reason: not a limit.
    if (
      reason === 'proxy-header' ||
      reason === 'ws-origin' ||
      reason === 'ws-subprotocol' ||
      reason === 'ws-handshake' ||
      reason === 'tls-handshake' ||
      reason === 'http-malformed'
    )
      return;
    if (this.refusalWindow !== null) {
      bump(this.refusedInWindow, `${kind}/${reason}`);
      return;
    }
    const limit = reason === 'max-connections' ? this.opts.maxConnections : this.opts.maxConnectionsPerIp;
    this.log.warn({ transport: kind, reason, limit, remote }, 'connection refused: limit reached');
    this.openRefusalWindow();
  }

  private openRefusalWindow(): void {
    this.refusalWindow = setTimeout(() => {
      this.refusalWindow = null;
      const held = this.refusedInWindow;
      let refused = 0;
      for (const k in held) refused += held[k]!;
      if (refused === 0) return;
      this.refusedInWindow = {};
      this.log.warn(
        {
          refused,
          byLimit: held,
          limits: this.connectionLimits,
          seconds: this.opts.refusalLogIntervalMs / 1000,
        },
        'connections refused: limit reached',
      );
      this.openRefusalWindow();
    }, this.opts.refusalLogIntervalMs);
    this.refusalWindow.unref();
  }

  /** Replaces the user store (SIGHUP reload); live connections and tokens are kept. */
  setUsers(users: UserStore): void {
    if (this.authenticator !== null) this.authenticator.users = users;
  }

  /**
   * Replaces the certificate and key of the TLS and WSS listeners (SIGHUP reload): new handshakes get
   * them, live connections are kept. Throws, changing nothing, on a pair that does not match.
   */
  setTlsCredentials(creds: TlsCredentials): void {
    this.listeners.setTlsCredentials(creds);
    this.nextHops.setClientCertificate(creds);
  }

  /** Replaces the `--relay-ca` CAs (SIGHUP reload); only for a relay started with some. */
  setRelayCa(ca: RelayCa): void {
    this.listeners.setRelayCa(ca);
    if (this.listeners.asksForCertificates) this.relayCaCerts = caCertificates(ca);
  }

  /** True when the TLS listeners ask for client certificates (started with `--relay-ca`). */
  get checksRelayCertificates(): boolean {
    return this.listeners.asksForCertificates;
  }

  /**
   * Replaces the CAs trusted when dialing next hops over `msrps` (SIGHUP reload); connections already up
   * are kept. Undefined: Node's bundled roots.
   */
  setOutboundCa(ca: OutboundCa): void {
    this.nextHops.setCa(ca);
  }

  /** The certificate the TLS and WSS listeners present (subject, expiry, fingerprint), or null. */
  tlsCertificate(): TlsCertificateInfo | null {
    return this.listeners.tlsCertificate();
  }

  /** Starts every listener; resolves when all are bound. */
  async listen(): Promise<void> {
    await this.listeners.listen();
    const tick = Math.max(
      10,
      Math.min(
        1000,
        this.opts.probationMs / 4,
        this.opts.transactionTimeoutMs / 4,
        this.opts.idleTimeoutMs / 4,
        this.opts.writeStallMs > 0 ? this.opts.writeStallMs / 4 : Infinity,
        this.opts.deadPeerMs > 0 ? this.opts.deadPeerMs / 4 : Infinity,
      ),
    );
    this.tickMs = tick;
    this.lastTick = Date.now();
    this.housekeeping = setInterval(() => this.tick(), tick);
    this.housekeeping.unref();
  }

  /** The bound listeners (ports resolved). */
  addresses(): RelayAddress[] {
    return this.listeners.addresses();
  }

  /** Accepted connections allowed open at once, in all and per IP (0: no limit), as resolved. */
  get connectionLimits(): { maxConnections: number; maxConnectionsPerIp: number } {
    return { maxConnections: this.opts.maxConnections, maxConnectionsPerIp: this.opts.maxConnectionsPerIp };
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
    const levels = connectionLevels(this.peers, (p) => this.tokens.hasOwner(p), this.retiredBytes);
    return {
      connections: levels.connections,
      bytesIn: levels.bytesIn,
      bytesOut: levels.bytesOut,
      tokens: this.tokens.size,
      returnPaths: this.returnPaths.size,
      transactions: this.transactions.size,
      queuedBytesMax: levels.queuedBytesMax,
      queuedBytesTotal: levels.queuedBytesTotal,
      queuePressure: this.queueBudget.pressing,
      pausedReaders: levels.pausedReaders,
      handshakesPending: this.listeners.handshakesPending,
      authLockedOut: this.lockout.lockedCount(Date.now()),
      draining: this.draining,
      counters: structuredClone(this.counters),
      reports: structuredClone(this.reports.counters),
      reportsTracked: this.reports.tracker.size,
      reportsTrackedBytes: this.reports.tracker.headBytesReserved,
    };
  }

  /** True between {@link close} being called and the relay having stopped. */
  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops accepting, lets in-flight transactions and queued chunks finish for up to `graceMs`, fails
   * what is left as a timeout would (408 failure REPORTs while the senders can still hear them), then
   * closes every connection, reading nothing more from them (up to 2 s more for them to flush). Resolves
   * when everything is closed.
   */
  close(graceMs = 5000): Promise<void> {
    // One shutdown: a second call (a second signal, a test's cleanup) waits for the first.
    return (this.closed ??= this.shutDown(graceMs));
  }

  private async shutDown(graceMs: number): Promise<void> {
    this.draining = true;
    // server.close() stops accepting now; its callback fires once every accepted connection is gone.
    const stopped = this.listeners.close();
    const deadline = Date.now() + graceMs;
    const busy = (): boolean =>
      this.transactions.size > 0 || [...this.peers].some((p) => p.writer.hasStreams);
    while (busy() && Date.now() < deadline) await sleep(20);
    if (this.housekeeping !== null) clearInterval(this.housekeeping);
    if (this.refusalWindow !== null) clearTimeout(this.refusalWindow);
    // What is still unanswered fails now, as at its timeout (a 408 failure REPORT, a `failed` report when
    // one was asked), while every sender's connection is still up to carry it: closed first, the senders
    // would hear nothing. So do chunks answered 200 but still queued toward a destination that does not
    // read (RFC 4976 §6.5: the relay owes their senders a failure REPORT).
    for (const tx of this.transactions.takeExpired(Infinity)) this.expire(tx);
    this.abandoning = true;
    try {
      for (const p of this.peers) {
        p.writer.abandonStreams();
        // Left: a chunk whose sub-chunk is on the wire, toward a destination that has not taken it all.
        // Its transaction has no timer yet (that starts at its end-line): failed now as well.
        if (!p.writer.hasStreams) continue;
        for (const tx of this.transactions.takeAllTo(p)) {
          this.expire(tx);
          // Its REPORT covers the rest of the chunk: the rest is not sent (the open sub-chunk ends with `#`),
          // so no second REPORT comes when the connection is torn down (review of the drain change).
          tx.stream?.refuse();
        }
      }
    } finally {
      this.abandoning = false;
    }
    const closed = [...this.peers].map((p) => new Promise<void>((resolve) => closeWaiters.set(p, resolve)));
    for (const p of this.peers) p.closeAfterAnswers('shutdown');
    // Those that do not finish flushing within 2 s are torn down.
    const laggards = setTimeout(() => {
      for (const p of this.peers) p.conn.destroy('shutdown');
    }, 2000);
    await Promise.all(closed);
    clearTimeout(laggards);
    // Sockets that never became peers (a TLS handshake, a WebSocket upgrade that never came) hold the
    // servers open: nothing is in flight on them.
    this.listeners.destroySockets();
    await stopped;
  }

  // ---- RouteContext --------------------------------------------------------------------------------

  /** True when `uri` names this relay (host and port of one of its authorities). */
  isOurs(uri: MsrpUri): boolean {
    return this.listeners.isOurs(uri);
  }

  /**
   * Digest §2.5: a relay that proved itself with a client certificate writes its own URI first in the
   * From-Path of what it forwards; any other host there is refused. (A dialed next hop is not held to
   * it: the name it was dialed by was checked, not the names its requests carry.)
   */
  fromAllowed(source: Peer, first: MsrpUri | null): boolean {
    const id = source.relayIdentity;
    if (id === null || source.dialed) return true;
    return first !== null && id.matches(first.host);
  }

  /**
   * True when `source` is a live connection of the relay `host`, proven as `--relay-ca` says: one it
   * opened to us with a client certificate those CAs verified, or one we dialed to it whose server
   * certificate one of them signed (`RelayIdentity.chainsTo`, each link checked). Only such a connection
   * acts for a relay-bound token. (A next hop proven only by `--tls-ca` or Node's roots does not: any
   * client can make the relay dial anywhere.)
   */
  isRelay(source: Peer, host: string): boolean {
    return (
      source.relayIdentity?.matches(host) === true &&
      this.vouched(source) &&
      !source.closing &&
      !source.isClosed
    );
  }

  /** True when `peer`'s certificate was verified against `--relay-ca` (see {@link isRelay}). */
  private vouched(peer: Peer): boolean {
    if (!peer.dialed) return peer.relayIdentity !== null;
    return peer.relayIdentity?.chainsTo(this.relayCaCerts) === true;
  }

  /**
   * A live connection to relay `host`, to send it what a relay-bound token routes its way: one it opened
   * to us with its certificate, or one we dialed to it whose server certificate named it.
   */
  relayPeer(host: string): Peer | undefined {
    for (const p of this.certified) if (this.isRelay(p, host)) return p;
    for (const p of this.nextHops.peers()) {
      if (!p.established || !usable(p)) continue;
      if (p.relayIdentity?.matches(host) === true) return p;
    }
    return undefined;
  }

  /**
   * Hands a relay-bound token to `owner`, another connection of its relay proven as {@link isRelay}
   * says (a next hop that is only a destination never holds it). A connection the relay opened to us
   * takes it from any other: the newest is the one it uses, and an older one may be half-open. One we
   * dialed takes it only from none, or from another we dialed: the relay's own link keeps it, else the
   * two would take turns at it, a new token object and a missed route memo at each request.
   */
  rebind(token: Token<Peer>, owner: Peer): Token<Peer> {
    if (!this.vouched(owner)) return token;
    const held = token.owner;
    if (held !== null && !held.closing && !held.isClosed && !held.dialed && owner.dialed) return token;
    const moved = this.tokens.rebind(token, owner);
    if (moved !== token)
      this.log.debug(
        { conn: owner.id, relay: token.relay },
        'relay-bound token moved to another connection of its relay',
      );
    return moved;
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
    const brIndex = findHeader(head.headers, 'byte-range');
    const byteRange = readByteRange(head, brIndex);
    if (byteRange === 'bad')
      return { kind: 'drop', head, status: 400, comment: 'Bad Byte-Range', ourUri: route.ourUri };
    if (byteRange !== null) {
      const max = this.opts.maxMessageBytes;
      if ((typeof byteRange.total === 'number' && byteRange.total > max) || byteRange.start > max) {
        return this.refuseTracked(peer, head, route, byteRange, 413, 'Message too large');
      }
    }
    const start = byteRange?.start ?? 1;
    // The octets the Byte-Range allows: up to its end, or up to the total when the end is `*`.
    const last =
      byteRange === null ? Infinity : typeof byteRange.end === 'number' ? byteRange.end : byteRange.total;
    const fromRange = typeof last === 'number' ? last - start + 1 : Infinity;
    // A small CPIM SEND from a recipient may be its own delivery IMDN, dropped when already reported.
    if (mayHold && this.reports.holdForDedupe(head, byteRange)) {
      // Held in memory, so bounded: by its Byte-Range (1-N/N, N at most the hold limit), else by the limit.
      const unbounded = byteRange === null;
      const declared = unbounded ? this.reports.holdLimit : fromRange;
      return {
        kind: 'collect',
        head,
        pieces: [],
        held: { declared, received: 0, ourUri: route.ourUri, unbounded },
      };
    }
    const headers = rewritePaths(head.headers, route.toPath, route.fromPath);
    const forwardedHead = headBytes(headers);
    if (forwardedHead > DEFAULTS.maxHeadBytes)
      return this.refuseTracked(peer, head, route, byteRange, 400, HEAD_TOO_LARGE);
    const dest = this.nextConnection(route);
    if (isRefusal(dest))
      return { kind: 'drop', head, status: dest[0], comment: dest[1], ourUri: route.ourUri };
    // RFC 7977 §5.1: toward a WebSocket peer every sub-chunk must fit one message; a head that leaves
    // no room for the body within wsMaxMessageBytes cannot be forwarded there.
    if (dest.conn.messageFramed && forwardedHead > this.wsHeadRoom())
      return this.refuseTracked(peer, head, route, byteRange, 413, 'Head too large for WebSocket', dest);
    // Not tracked: a 408 for a recipient that owes too many answers is temporary, and a `failed` for it
    // would stand for an hour in the dedupe log against the retry's `delivered` (review).
    if (this.awaitsTooMuch(head, dest))
      return {
        kind: 'drop',
        head,
        status: NOT_ANSWERING[0],
        comment: NOT_ANSWERING[1],
        ourUri: route.ourUri,
      };
    const fr = failureReportOf(head);
    const messageId = getHeader(head.headers, 'message-id');
    const reportTo = head.headers[1]![1];
    const ourUri = route.ourUri;
    const total = byteRange?.total ?? '*';
    const tracked = this.reports.begin(peer, head, route.toPath, byteRange, dest);
    const transaction = (
      tid: string,
      start: number,
      end: number,
    ): ForwardedTransaction<Peer, TrackedImMessage> => ({
      // With FR no nothing answers; otherwise the transaction carries the message (see reports.sent).
      tracked: tracked === null || fr === 'no' ? undefined : tracked.msg,
      tid,
      dest,
      source: peer,
      sourceTid: head.transactionId,
      method: 'SEND',
      failureReport: fr,
      messageId,
      rangeStart: start,
      rangeEnd: end,
      total,
      reportTo,
      ourUri,
      hops: 0,
      deadline: 0,
      outAt: 0,
      open: false,
      stream: null,
      earlyOk: false,
      prevAll: null,
      nextAll: null,
      prevDest: null,
      nextDest: null,
    });
    // The sub-chunk whose head is out and whose end-line is not: the next hop may answer it early.
    let open: ForwardedTransaction<Peer, TrackedImMessage> | null = null;
    const stream: ChunkStream = dest.writer.openStream({
      headers,
      byteRange,
      byteRangeIndex: brIndex,
      onOpen: (tid: string, start: number) => {
        if (fr === 'no') return;
        open = transaction(tid, start, start - 1);
        open.stream = stream;
        this.transactions.addOpen(open);
      },
      onAbort: (from: number, to: number) => {
        // The sender had its 200 (or, with `partial`, waits for a REPORT on failure): the octets that never
        // went out are reported lost (RFC 4976 §6.5, digest §2.11).
        if (fr === 'no' || open !== null) return; // an open sub-chunk's REPORT covers the rest
        // Dropped at shutdown: as at its timeout. Otherwise the destination died.
        const code = this.abandoning ? 408 : lostCode(dest);
        if (tracked !== null) this.reports.failed(tracked.msg, code);
        if (to >= from) {
          const comment = this.abandoning ? 'Not forwarded before shutdown' : lostComment(dest);
          this.failures.sendFailureReport(transaction('', from, to), code, comment);
        }
      },
      onSent: (sub: SubChunkSent) => {
        if (tracked !== null) this.reports.sent(tracked, fr, sub.start, sub.end);
        if (fr === 'no') return;
        const tx = open;
        open = null;
        if (tx !== null && tx.tid === sub.tid) {
          if (tx.earlyOk === true) {
            // Answered 200 before its end-line: that answer covers the whole sub-chunk, now out.
            this.transactions.take(tx.tid, dest);
            if (tx.tracked !== undefined) this.reports.answered(tx.tracked, 200, sub.start, sub.end);
            return;
          }
          if (stream.isRefused) {
            // Cut because the chunk was refused (the sender has been told): no answer is awaited.
            this.transactions.take(tx.tid, dest);
            return;
          }
          // Known since its head went out: its timer starts now, unless it was answered already. The
          // stream stays reachable only while more of the chunk follows this piece (an interruption):
          // otherwise it would outlive its last octet until the answer comes (thousands of them in a
          // large transfer).
          if (sub.last) tx.stream = null;
          tx.outAt = dest.conn.bytesOut; // its end-line was just handed over
          this.transactions.close(tx, sub.end, Date.now() + this.opts.transactionTimeoutMs);
          return;
        }
        // A message-framed sub-chunk (WebSocket), recorded once it is out. While more of the chunk follows,
        // its transaction keeps the stream, so an error for it stops the rest (RFC 4975 §7.1). The `#`
        // piece of a chunk the relay cut (its sender was told) awaits no answer, as above.
        if (stream.isRefused) return;
        const framed = transaction(sub.tid, sub.start, sub.end);
        if (!sub.last) framed.stream = stream;
        this.track(framed);
      },
    });
    this.counters.forwarded++;
    peer.accept();
    // DESIGN.md limits: no octet of a message past --max-message-size, even when its total is `*`.
    const declared = Math.min(fromRange, this.opts.maxMessageBytes - start + 1);
    return { kind: 'stream', head, stream, dest, ourUri, tracked, declared, received: 0 };
  }

  onOverrun(_peer: Peer, frame: IncomingFrame & { kind: 'stream' }): IncomingFrame {
    frame.stream.cut();
    const start = frame.stream.spec.byteRange?.start ?? 1;
    const tooLarge = start - 1 + frame.received > this.opts.maxMessageBytes;
    // Issue 5 / DESIGN.md: a 413 fails the message (a `failed` IMDN when asked); the abort that follows
    // would only forget it, so the failure goes first.
    this.failTracked(frame.tracked, tooLarge ? 413 : 0);
    bump(this.counters.parseErrors, tooLarge ? 'MSRP_ERR_MESSAGE_TOO_LARGE' : 'MSRP_ERR_BODY_OVERRUN');
    return {
      kind: 'drop',
      head: frame.head,
      status: tooLarge ? 413 : 400,
      comment: tooLarge ? 'Message too large' : 'Body longer than its Byte-Range',
      ourUri: frame.ourUri,
      received: frame.received,
    };
  }

  /**
   * Refuses a SEND chunk after routing for good (its message too large, its head too large to forward
   * or for a WebSocket next hop) as a `drop` frame: a later chunk fails its tracked message, and a first
   * one is tracked while its body is discarded, so a negative-delivery request at its head still gets
   * its `failed` (issue 5: failure paths end in a report). `dest` is the connection it would have gone
   * to: by default the route's, when it names one; null (no dial yet) leaves it untracked, as only a
   * local recipient's relay reports. (An audit found only the first of these tracked.)
   */
  private refuseTracked(
    peer: Peer,
    head: RequestHead,
    route: RouteResult<Peer> & { ok: true },
    byteRange: ByteRange | null,
    status: number,
    comment: string,
    dest: Peer | null = route.next.kind === 'peer' ? route.next.peer : null,
  ): IncomingFrame {
    // A later chunk fails its message here; tracking it again would only count it `late`.
    const failed = this.reports.refused(peer, route.toPath, getHeader(head.headers, 'message-id'), status);
    // Tracked under no connection: the one it would have gone to closing meanwhile is no 481 for it.
    const tracked =
      dest === null || failed ? null : this.reports.begin(peer, head, route.toPath, byteRange, null);
    return { kind: 'drop', head, status, comment, ourUri: route.ourUri, tracked };
  }

  /**
   * A tracked chunk ends unfinished: with `code` (a refusal: 413, 400) its message fails first (a
   * `failed` IMDN when asked); the abort that follows would only forget it. `code` 0: only the abort.
   */
  private failTracked(tracked: TrackedIm | null, code: number): void {
    if (tracked === null) return;
    if (code !== 0) this.reports.failed(tracked.msg, code);
    this.reports.end(tracked, '#');
  }

  onHeldOverflow(peer: Peer, frame: IncomingFrame & { kind: 'collect' }): IncomingFrame {
    return this.openForward(peer, frame.head, this.route(peer, frame.head), false);
  }

  onTrackedBody(chunk: TrackedIm, piece: Buffer): void {
    this.reports.data(chunk, piece);
  }

  onTrackedAbort(chunk: TrackedIm): void {
    this.reports.end(chunk, '#');
  }

  onRequestEnd(peer: Peer, frame: IncomingFrame, flag: ContinuationFlag): void {
    const head = frame.head;
    switch (frame.kind) {
      case 'stream': {
        const aborted = frame.stream.isAborted;
        // RFC 4976 §6.5: with Failure-Report yes the relay answers 200 at once, meaning "received" (unless
        // the next hop refused the chunk while it came in: then it was answered with that error). It goes
        // before an on-receipt report for the message, so the sender has its 200 before the IMDN.
        if (!aborted && failureReportOf(head) === 'yes' && !frame.stream.isRefused)
          peer.send([transactionResponse(head, 200, 'OK', frame.ourUri)], peer);
        // DESIGN.md on-receipt: the delivery report is injected before the final end-line goes on.
        this.reports.end(frame.tracked, flag);
        frame.stream.finish(flag);
        if (aborted) {
          // The next hop went away before the chunk was through: not received, so no 200.
          const code = lostCode(frame.dest);
          if (frame.tracked !== null) this.reports.failed(frame.tracked.msg, code);
          this.failures.refuse(peer, head, code, lostComment(frame.dest), frame.ourUri, frame.received);
        }
        return;
      }
      case 'drop':
        this.failTracked(frame.tracked ?? null, frame.status);
        this.failures.refuse(peer, head, frame.status, frame.comment, frame.ourUri, frame.received);
        return;
      case 'collect':
        this.onCollected(peer, head, frame.pieces, flag);
    }
  }

  /** True when the first URI of To-Path value `to` names this relay (host and port of a listener). */
  private addressedHere(to: string): boolean {
    const addressee = tryParse(firstUri(to));
    return addressee !== null && this.isOurs(addressee);
  }

  onResponse(peer: Peer, head: FrameHead & { kind: 'response' }): void {
    bump(this.counters.responsesIn, statusLabel(head.statusCode));
    // RFC 4976 §6.6: a response whose To-Path does not name this relay is dropped (the transaction stays).
    // A connection's responses repeat one To-Path: the last one found ours is remembered, by its value.
    const toPath = head.headers[0]![1];
    if (toPath !== peer.ourResponseTo && !this.addressedHere(toPath)) {
      this.log.debug(
        { conn: peer.id, tid: head.transactionId },
        'response not addressed to this relay dropped',
      );
      return;
    }
    peer.ourResponseTo = toPath;
    const tx = this.transactions.take(head.transactionId, peer);
    if (tx === undefined) {
      this.log.debug({ conn: peer.id, tid: head.transactionId }, 'response for no known transaction dropped');
      return;
    }
    if (tx.outAt > peer.consumedOut) peer.consumedOut = tx.outAt; // it read that far (the dead-peer rule)
    if (tx.method === 'SEND') {
      // RFC 4975 §7.1: an error stops the rest of the chunk toward the next hop (an open sub-chunk ends
      // with `#`). Answered before its end-line went out, it is reported for the octets written so far.
      const stream = tx.stream;
      const early = tx.open ? stream : null;
      if (early !== null) {
        if (head.statusCode === 200) {
          tx.earlyOk = true; // counted once the whole sub-chunk is out (onSent)
          this.transactions.addOpen(tx);
          return;
        }
        tx.rangeEnd = early.written;
      }
      // The message fails before its stream is cut, so no octet written meanwhile can complete it.
      if (tx.tracked !== undefined)
        this.reports.answered(tx.tracked, head.statusCode, tx.rangeStart, tx.rangeEnd);
      if (head.statusCode !== 200) {
        // Another piece of a chunk already refused: its sender has been told.
        if (stream?.isRefused === true) return;
        // While the sender is still sending the chunk (FR yes) its own transaction is open: it gets the
        // error as its response and can stop (RFC 4975 §7.1), and no 200 follows (onRequestEnd).
        // Otherwise, RFC 4976 §6.5: the non-200 becomes a failure REPORT (FR yes or partial).
        if (stream !== null && !stream.sourceEnded && tx.failureReport === 'yes')
          this.failures.answerUpstream(tx, head.statusCode, head.comment || 'Failed');
        else this.failures.sendFailureReport(tx, head.statusCode, head.comment || 'Failed');
        stream?.refuse();
      }
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
    // A request refused before its head was whole is still a request read (requests_total is the
    // denominator of the refusal ratio: observability audit).
    const method = context?.headEmitted === false ? context.method : undefined;
    if (method !== undefined) bump(this.counters.requestsIn, KNOWN_METHODS.has(method) ? method : 'other');
    // A body over the limit is answered 413, which fails the message as in onOverrun; then the abort.
    if (frame !== null && frame.kind !== 'collect')
      this.failTracked(frame.tracked ?? null, err.statusCode === 413 ? 413 : 0);
    // One line per malformed frame, within the connection's log budget (a flood of them is counted, not
    // logged line by line); the error's text, which may quote the sender's octets, in a field of its own.
    const fields = {
      conn: peer.id,
      remote: peer.conn.remote,
      code: err.code,
      fatal: err.fatal,
      detail: clip(err.message),
    };
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
      const received = frame?.kind === 'stream' || frame?.kind === 'drop' ? frame.received : 0;
      this.logMalformed(peer, 'info', fields, 'malformed input', err.fatal);
      this.failures.refuse(peer, head, err.statusCode, err.message, ourUri, received);
    } else if (context !== null && context.method !== undefined && !err.fatal) {
      // A request whose paths cannot be read cannot be answered: rather than drop it unseen, the
      // connection is closed (logged), as for a fatal error. A REPORT, or a request with Failure-Report
      // no, would get no answer anyway: it is dropped, logged, and the connection kept.
      const log = { ...fields, method: clip(context.method) };
      if (context.method === 'REPORT' || getHeader(context.headers, 'failure-report') === 'no') {
        this.logMalformed(peer, 'warn', log, 'malformed request that takes no answer dropped', false);
        return;
      }
      this.logMalformed(peer, 'warn', log, 'unanswerable request: closing', true);
      peer.close(`parse-error:${err.code}`);
      return;
    } else {
      this.logMalformed(peer, 'info', fields, 'malformed input', err.fatal);
    }
    if (err.fatal) peer.close(`parse-error:${err.code}`);
  }

  /**
   * Logs a line about `peer`'s malformed input within its log budget; `closing`: the line that closes
   * the connection, always written — once: the rest of the read it came in is still parsed (review).
   */
  private logMalformed(
    peer: Peer,
    level: 'info' | 'warn',
    fields: LogFields,
    msg: string,
    closing: boolean,
  ): void {
    logWithin(peer.logBudget, this.log, level, fields, msg, closing && !peer.closing);
  }

  onClose(peer: Peer, reason: string): void {
    this.peers.delete(peer);
    this.certified.delete(peer);
    this.returnPaths.forget(peer);
    this.nextHops.forget(peer);
    this.nextHops.ended(peer, Date.now());
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
        ...(peer.logBudget.unlogged > 0 && { unlogged: peer.logBudget.unlogged }),
      },
      'connection closed',
    );
    // RFC 4976 §6.5: the next hop is gone, so what was sent to it failed.
    const code = lostCode(peer);
    const comment = lostComment(peer);
    // With Failure-Report `partial` the recipient answers only failures (RFC 4975 §7.1.1; digest §2.7: a
    // REPORT on a non-200 or a local error), so a chunk handed whole to the connection has no answer to
    // wait for. One handed over more than PARTIAL_READ_GRACE_MS before a peer closed in order (FIN or
    // closing handshake, no reset, nothing written after it) is taken as read: no REPORT. Any other may
    // have been lost in the socket buffers or dropped by a peer already leaving: a REPORT, as for one
    // still being written. Silence lost 25-80 % of such messages in an audit's trials; the price is a
    // false failure for a chunk the peer did read.
    const readBefore = peer.conn.orderlyCloseAt - PARTIAL_READ_GRACE_MS + this.opts.transactionTimeoutMs;
    for (const tx of pending) {
      // A closed transaction's deadline is when its end-line went out plus the transaction timeout.
      if (tx.failureReport === 'partial' && !tx.open && tx.deadline < readBefore) continue;
      if (tx.stream?.isRefused === true) continue; // a piece of a refused chunk: its sender was told
      if (tx.tracked !== undefined) this.reports.failed(tx.tracked, code);
      if (tx.method === 'SEND') this.failures.sendFailureReport(tx, code, comment);
      else this.failures.answerUpstream(tx, 408, comment);
    }
    this.reports.peerClosed(peer);
    closeWaiters.get(peer)?.();
  }

  // ---- internals -----------------------------------------------------------------------------------

  private limits(conn: Connection): PeerLimits {
    return {
      maxChunkBytes: this.opts.maxMessageBytes,
      maxOtherBodyBytes: this.opts.maxOtherBodyBytes,
      maxQueuedBytes: this.opts.maxQueuedBytes,
      budget: this.queueBudget,
      // RFC 7977 §5.1: a chunk toward a WebSocket peer must fit one message, head and end-line included.
      maxChunkBody: conn.messageFramed ? this.opts.wsMaxMessageBytes - this.wsHeadRoom() : Infinity,
    };
  }

  /** Octets of a WebSocket message kept for a forwarded chunk's head and end-line (4 KiB at most). */
  private wsHeadRoom(): number {
    return Math.min(WS_HEAD_ROOM, Math.floor(this.opts.wsMaxMessageBytes / 2));
  }

  /**
   * Adopts an accepted connection; `acceptedAt` (ms since the epoch) is when its socket was accepted,
   * before any TLS handshake, WebSocket upgrade or PROXY header: the probation period counts from there.
   */
  accept(conn: Connection, acceptedAt = Date.now()): void {
    if (this.draining) {
      conn.destroy('draining');
      return;
    }
    const peer = new Peer(this, conn, this.limits(conn));
    this.keepAlive(conn);
    this.peers.add(peer);
    this.connectedAt.set(peer, acceptedAt);
    peer.relayIdentity = verifiedIdentity(conn);
    if (peer.relayIdentity !== null) this.certified.add(peer);
    this.counters.connectionsOpened++;
    this.counters.opened[conn.kind]++;
    const opened = {
      conn: peer.id,
      remote: conn.remote,
      transport: conn.kind,
      ...(peer.relayIdentity !== null && { relayCertificate: peer.relayIdentity.names }),
    };
    this.log.info(conn.via === undefined ? opened : { ...opened, via: conn.via }, 'connection opened');
  }

  private route(peer: Peer, head: RequestHead): RouteResult<Peer> {
    const route = routeRequest(this, peer, head.headers[0]![1], head.headers[1]![1], Date.now(), peer);
    // A relay proven by its client certificate (incoming: `certified`) wrote its own URI first in
    // From-Path (fromAllowed checked it): what goes back to that URI takes this connection.
    if (route.ok && peer.relayIdentity !== null && !peer.dialed)
      this.returnPaths.learn(peer, peer.relayIdentity.fingerprint, firstUri(head.headers[1]![1]), tryParse);
    return route;
  }

  /**
   * The connection toward the route's next hop for `head`: the client's, one dialed before, or a new
   * dial; or why the request goes nowhere: its next hop's address is ruled out by
   * `--next-hop-allow`/`--next-hop-deny` (403), a new dial would pass `maxNextHops` with no dialed
   * connection idle enough to close for it (408; security audit: any client naming new host:ports made
   * the relay dial and keep a connection each, for an hour, until accepting failed with EMFILE), or the
   * request awaits an answer from a next hop that leaves too many unanswered (408, {@link refusesMoreTo}).
   */
  private nextPeer(route: RouteResult<Peer> & { ok: true }, head: RequestHead): Peer | Refusal {
    const dest = this.nextConnection(route);
    if (isRefusal(dest) || !this.awaitsTooMuch(head, dest)) return dest;
    return NOT_ANSWERING;
  }

  /** True when `head` would await an answer from `dest`, which leaves too many unanswered. */
  private awaitsTooMuch(head: RequestHead, dest: Peer): boolean {
    return head.method !== 'REPORT' && failureReportOf(head) !== 'no' && this.refusesMoreTo(dest);
  }

  /** {@link nextPeer} without the check of what `dest` leaves unanswered. */
  private nextConnection(route: RouteResult<Peer> & { ok: true }): Peer | Refusal {
    let dest: Peer;
    const back = route.next.kind === 'dial' ? this.returnPathTo(route.next.uri) : undefined;
    if (route.next.kind === 'peer') {
      dest = route.next.peer;
    } else if (back !== undefined) {
      dest = back; // the connection that relay opened for this URI (ReturnPaths)
    } else {
      const dialed = this.dialChecked(route.next.uri);
      if (isRefusal(dialed)) return dialed;
      dest = dialed;
    }
    return dest;
  }

  /** The connection a proven relay opened to us for `uri` (ReturnPaths), when it still takes traffic. */
  private returnPathTo(uri: MsrpUri): Peer | undefined {
    const p = this.returnPaths.lookup(uri);
    return p !== undefined && usable(p) ? p : undefined;
  }

  /** The connection toward `uri` already dialed, or a new dial, within the next-hop rules; or why not. */
  private dialChecked(uri: MsrpUri): Peer | Refusal {
    // --next-hop-allow / --next-hop-deny (security audit: any client could make the relay connect, and
    // write, to any host and port it names, internal ones included). Names are checked once resolved.
    if (this.nextHops.refuses(uri)) return NEXT_HOP_DENIED;
    // Its last dial failed a moment ago: refused at once rather than dialed again for every SEND.
    if (this.nextHops.existing(uri) === undefined && this.nextHops.backingOff(uri, Date.now()))
      return NEXT_HOP_UNREACHABLE;
    if (
      this.nextHops.existing(uri) === undefined &&
      this.nextHops.size >= this.opts.maxNextHops &&
      !this.closeIdleNextHop()
    ) {
      this.log.debug(
        { to: formatUri(uri), dialed: this.nextHops.size },
        'next hop refused: --max-next-hops reached',
      );
      return NO_NEXT_HOP;
    }
    return this.dial(uri);
  }

  /**
   * Where a request toward the relay that sent us something over `gone`, a connection now closed, can
   * go instead (its path `path`, the sender's From-Path): another connection of that relay, or a new one
   * to the path's first URI over TLS; only when `gone` was a relay's proven as {@link isRelay} says and its
   * certificate names this URI's host (digest §2.5, §2.6). Null otherwise: the From-Path is the sender's word alone, and a relay that
   * trusted it would dial wherever a stranger pointed.
   */
  relayRouteAfter(gone: Peer, path: string): Peer | null {
    const id = gone.relayIdentity;
    if (id === null || !this.vouched(gone)) return null;
    const first = tryParse(firstUri(path));
    if (first === null || !id.matches(first.host)) return null;
    // The connection that relay opened for this URI, if another is left.
    const back = this.returnPathTo(first);
    if (back !== undefined) return back;
    // A relay that binds each connection to one session (--next-hop-per-session) refuses this session's
    // traffic on another's: only a connection for this URI (ours, or a new dial) will do.
    const live = this.nextHops.isPerSession(first)
      ? this.nextHops.existing(first)
      : this.relayPeer(hostKey(first.host));
    if (live !== undefined) return live;
    if (first.scheme.toLowerCase() !== 'msrps' || first.transport.toLowerCase() !== 'tcp') return null;
    const dialed = this.dialChecked(first);
    return isRefusal(dialed) ? null : dialed;
  }

  /** Closes the dialed connection silent longest with nothing in flight (5 s at least); false if none. */
  private closeIdleNextHop(): boolean {
    const now = Date.now();
    let idlest: Peer | null = null;
    for (const p of this.nextHops.peers()) {
      if (!usable(p) || now - p.lastActivity < DEFAULTS.nextHopIdleMs) continue;
      if (p.writer.hasStreams || p.writer.totalQueued > 0 || this.transactions.hasPendingTo(p)) continue;
      // Nor one whose own traffic is in the middle of something: a chunk being read, reading paused.
      if (this.tokens.hasOwner(p) || p.isReadingChunk || p.isPaused) continue;
      if (idlest === null || p.lastActivity < idlest.lastActivity) idlest = p;
    }
    if (idlest === null) return false;
    idlest.close('next-hop-room');
    return true;
  }

  /**
   * `--tcp-keepalive`: a quiet link between relays would otherwise lose a firewall's or NAT's state and
   * turn into a black hole found only by a transaction timeout, and a client whose host vanished would
   * keep its connection until its tokens expire.
   */
  private keepAlive(conn: Connection): void {
    if (this.opts.tcpKeepAliveMs > 0) conn.keepAlive?.(this.opts.tcpKeepAliveMs);
  }

  /** A connection toward another relay or endpoint (relay chaining), reused per scheme/host/port. */
  private dial(uri: MsrpUri): Peer {
    return this.nextHops.dial(uri, (conn, key) => {
      const peer = new Peer(this, conn, this.limits(conn), key);
      this.keepAlive(conn);
      this.peers.add(peer);
      this.connectedAt.set(peer, Date.now());
      this.counters.connectionsOpened++;
      this.counters.opened[conn.kind]++;
      // The authority only: a per-session key's session-id is the next relay's credential.
      this.log.info(
        { conn: peer.id, to: dialAuthority(key), transport: conn.kind },
        'connecting to next hop',
      );
      return peer;
    });
  }

  private onCollected(peer: Peer, head: RequestHead, pieces: Buffer[], flag: ContinuationFlag): void {
    const to = head.headers[0]![1];
    if (head.method === 'AUTH' && splitPath(to).length === 1) {
      // Answered here whatever host its one URI names: the client connected to this relay, which it may
      // know by a name the relay does not (a DNS alias, a load balancer's); see architecture.md.
      this.onAuth(peer, head);
      return;
    }
    const route = this.route(peer, head);
    if (!route.ok) {
      const received = partsBytes(pieces);
      this.failures.refuse(peer, head, route.statusCode, route.comment, route.ourUri, received);
      return;
    }
    const body = head.hasBody ? Buffer.concat(pieces) : null;
    // Only a whole message can be a duplicate IMDN: its one chunk ended with `$`.
    if (head.method === 'SEND' && body !== null && flag === '$' && this.reports.isDuplicate(head, body)) {
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
      } else if (frame.kind === 'drop' && frame.tracked != null) {
        this.reports.data(frame.tracked, body); // refused (refuseTracked): its head says what was asked
      }
      this.onRequestEnd(peer, frame, flag);
      return;
    }
    const byteRange = readByteRange(head);
    if (head.method === 'SEND' && byteRange === 'bad') {
      // As for a SEND with a body (openForward): a Byte-Range that does not parse is refused here.
      this.failures.refuse(peer, head, 400, 'Bad Byte-Range', route.ourUri);
      return;
    }
    const headers = rewritePaths(head.headers, route.toPath, route.fromPath);
    if (headBytes(headers) > DEFAULTS.maxHeadBytes) {
      this.failures.refuse(peer, head, 400, HEAD_TOO_LARGE, route.ourUri);
      return;
    }
    const dest = this.nextPeer(route, head);
    if (isRefusal(dest)) {
      this.failures.refuse(peer, head, dest[0], dest[1], route.ourUri);
      return;
    }
    let tid = randomId();
    if (body !== null) while (body.includes('\r\n-------' + tid)) tid = randomId();
    const parts = [formatHead(`MSRP ${tid} ${head.method}`, headers, body !== null)];
    if (body !== null) parts.push(body);
    parts.push(Buffer.from(frameTail(tid, flag, body !== null), 'latin1'));
    // RFC 7977 §5.1: one frame per WebSocket message, and only SEND can be cut into chunks: a whole
    // request (a REPORT, an extension method with a body) that passes the peer's message limit is refused.
    if (dest.conn.messageFramed && partsBytes(parts) > this.opts.wsMaxMessageBytes) {
      this.failures.refuse(peer, head, 413, 'Too large for one WebSocket message', route.ourUri);
      return;
    }
    const fr = failureReportOf(head);
    let tracked: ForwardedTransaction<Peer, TrackedImMessage> | null = null;
    if (head.method !== 'REPORT' && fr !== 'no') {
      const range = byteRange === null || byteRange === 'bad' ? { start: 1, end: 0, total: 0 } : byteRange;
      // The same fields in the same order as a SEND chunk's (one object shape in the table).
      tracked = {
        tracked: undefined,
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
        outAt: 0,
        open: false,
        stream: null,
        earlyOk: false,
        prevAll: null,
        nextAll: null,
        prevDest: null,
        nextDest: null,
      };
      this.track(tracked);
    }
    // Where it ends (the dead-peer rule): whole frames go out ahead of the streams' pieces, and an open
    // chunk's interruption (its end-line) may go just before it.
    if (tracked !== null)
      tracked.outAt = dest.conn.bytesOut + dest.writer.controlQueued + partsBytes(parts) + 128;
    dest.send(parts, peer);
    this.counters.forwarded++;
    peer.accept();
    if (head.method === 'SEND' && fr === 'yes')
      peer.send([transactionResponse(head, 200, 'OK', route.ourUri)], peer);
  }

  private onAuth(peer: Peer, head: RequestHead): void {
    const address = remoteAddress(peer.conn.remote);
    const now = Date.now();
    // RFC 4976 §5.1: a client behind another relay authenticates here through it; its From-Path names that
    // relay first. That relay's connection carries other clients' sessions: their failures add up on it,
    // and closing it for them would end every session it carries (digest §2.2: not for relay-relay
    // connections). The lockout still counts them, by that relay's address.
    const fromPath = splitPath(head.headers[1]![1]);
    const forwarded = fromPath.length > 1;
    // Digest §2.5: a relay known by its certificate speaks with a From-Path that starts with its own URI.
    const proven = peer.relayIdentity !== null && !peer.dialed;
    const sender = proven ? tryParse(fromPath[0]) : null;
    if (!this.fromAllowed(peer, sender)) {
      const comment = 'From-Path does not match the relay certificate';
      peer.send([transactionResponse(head, 403, comment, head.headers[0]![1].trim())], peer);
      bump(this.counters.auth, 'bad-request');
      this.counters.authFailed++;
      this.log.info({ conn: peer.id, relayCertificate: peer.relayIdentity?.names }, comment);
      return;
    }
    // A token granted through a relay its client certificate proves (the first From-Path URI is its) is
    // bound to that relay, not to this connection (digest §2.6 step 4). A next hop we dialed is not: any
    // client can make the relay dial a host, whose certificate then proves only that host's name.
    const relay = forwarded && sender !== null ? ownString(hostKey(sender.host)) : undefined;
    const ctx: AuthContext = {
      authenticator: this.authenticator,
      expires: { def: this.opts.authExpires, min: this.opts.authMinExpires, max: this.opts.authMaxExpires },
      maxFailures: this.opts.maxAuthFailures,
      isLockedOut: (username) => this.lockout.isLocked(address, username, now),
      issueToken: (client, username, expiresSec) => {
        const listener = this.listeners.useListener(peer);
        const kind = listener?.kind ?? peer.conn.kind;
        const scheme = kind === 'tls' || kind === 'wss' ? 'msrps' : 'msrp';
        const port = listener?.port ?? DEFAULTS.port;
        // A client on this very connection, not one whose AUTH a relay before us forwarded (RFC 4976 §5.1:
        // its From-Path then names that relay too): the relay's connection serves other sessions.
        if (!forwarded) peer.authenticated = true;
        // The tokens of a relay's clients count apart from a client's own 64: one link carries them all.
        // Together per certificate for a proven relay; else per address (IPv4, IPv6 /64), since anyone can
        // write a second From-Path URI and claim a relay's cap: one address gets it once, not per connection.
        const group =
          relay !== undefined ? `relay:${peer.relayIdentity!.fingerprint}` : `relayed:${addressKey(address)}`;
        const cap = forwarded ? { group, max: this.opts.maxRelayedTokens } : undefined;
        const token = this.tokens.issue(
          peer,
          client,
          username,
          Date.now() + expiresSec * 1000,
          (id) => `${scheme}://${this.listeners.publicHost}:${port}/${id};tcp`,
          cap,
          relay,
        );
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
    if (outcome.result === 'ok') {
      this.counters.authOk++;
      peer.accept();
      // Failures close a connection when they come in a row (RFC 4976 §6.3): a client that re-AUTHs on
      // one connection for days is not closed for a mistyped password now and then.
      peer.authFailures = 0;
      if (outcome.username !== undefined) this.lockout.succeed(address, outcome.username, now);
    } else if (outcome.result === 'challenge' || outcome.result === 'stale') this.counters.authChallenged++;
    else this.counters.authFailed++;
    const { result, username: user } = outcome;
    if (
      result === 'failed' ||
      result === 'locked-out' ||
      result === 'bad-request' ||
      result === 'bad-expires'
    ) {
      if (!forwarded && (result === 'failed' || result === 'locked-out')) peer.authFailures++;
      // Within the connection's log budget: a bad Expires or path does not count toward closing it, so
      // a client could otherwise write a warning per request (review). The closing one is always written.
      const fields = {
        conn: peer.id,
        remote: peer.conn.remote,
        user: shortName(user),
        result,
        status: outcome.statusCode,
        reason: outcome.reason,
        failures: peer.authFailures,
      };
      const closing = outcome.close && !forwarded && !peer.closing;
      logWithin(peer.logBudget, this.log, 'warn', fields, 'AUTH failed', closing);
      // Guesses count toward the lockout; malformed or misdirected credentials do not.
      const guess = outcome.reason === 'bad-response' || outcome.reason === 'unknown-user';
      const lockedOut = guess && user !== undefined ? this.lockout.fail(address, user, now) : null;
      if (lockedOut !== null) {
        this.counters.authLockouts++;
        this.log.warn(
          {
            remote: peer.conn.remote,
            user: shortName(user),
            scope: lockedOut,
            failures: this.opts.authLockoutFailures,
            forMs: this.opts.authLockoutMs,
          },
          'AUTH locked out: too many failed attempts',
        );
      }
    } else if (outcome.result === 'ok') {
      this.log.debug({ conn: peer.id, user: outcome.username }, 'AUTH ok');
    }
    if (outcome.close && !forwarded) peer.close('auth-failures');
  }

  private track(tx: ForwardedTransaction<Peer, TrackedImMessage>): void {
    tx.deadline = Date.now() + this.opts.transactionTimeoutMs;
    // Where it ends: past all that is queued (a whole frame is tracked before it is queued: see there).
    tx.outAt = tx.dest.conn.bytesOut + tx.dest.writer.heldBytes;
    this.transactions.add(tx);
  }

  /**
   * A transaction entered (+1) or left (-1) the table: what the requests waiting on each destination
   * hold is counted there and in all (security audit: a client sending to a next hop that never answers
   * made the relay keep a transaction per request for 30 s each, and run out of memory). See
   * {@link refusesMoreTo}.
   */
  private onTxHold(tx: ForwardedTransaction<Peer, TrackedImMessage>, sign: 1 | -1): void {
    const cost = txCost(tx);
    tx.dest.pendingCost += sign * cost;
    if (sign > 0) this.pendingBudget.add(cost);
    else this.pendingBudget.sub(cost);
  }

  /**
   * True when no more requests that await an answer may be sent to `dest`: what those already sent hold
   * passes `pendingBytesPerConnection` (or, while all together pass `pendingBytesTotal`, 256 KiB). The
   * request is refused (408) instead: a next hop that does not answer gets nothing more until it does
   * or its requests time out, and no source connection is paused for it (one shared with other
   * sessions, a chained relay's, would stall them all).
   */
  private refusesMoreTo(dest: Peer): boolean {
    return dest.pendingCost > this.pendingBudget.limit(this.opts.pendingBytesPerConnection);
  }

  /** A forwarded transaction got no response in time (its timer, or the end of a drain): 408. */
  private expire(tx: ForwardedTransaction<Peer, TrackedImMessage>): void {
    if (tx.failureReport !== 'yes') return; // RFC 4976 §6.5: no timer for partial
    // The dead-peer rule keeps what its next hop still owes once it leaves the table (not at a drain's end).
    const dest = tx.dest;
    if (!this.abandoning && dest.owedSince === 0) {
      dest.owedSince = tx.deadline - this.opts.transactionTimeoutMs;
      dest.owedOutAt = tx.outAt;
      dest.owedAt = Date.now();
    }
    // A piece of a chunk refused meanwhile (by the next hop, or by the relay: a 413): its sender has been
    // told once, as in onResponse.
    if (tx.stream?.isRefused === true) return;
    if (tx.tracked !== undefined) this.reports.failed(tx.tracked, 408);
    this.counters.transactionTimeouts++;
    if (tx.method === 'SEND') this.failures.sendFailureReport(tx, 408, 'Request Timeout');
    else this.failures.answerUpstream(tx, 408, 'Request Timeout');
  }

  /**
   * Connections taken for a peer gone with data in flight to it (`--dead-peer-timeout`): the oldest
   * request it owes an answer to (Failure-Report `yes`, end-line out; still waiting, or timed out since
   * with nothing read after) ends at most {@link DEAD_PEER_BACKLOG} octets past what it has shown it
   * read, and nothing has been read from it for the timeout since that request went out (or
   * since its last word, when later). TCP keep-alive cannot find such a peer (the kernel probes only
   * connections with nothing unacknowledged) and retransmissions find it after about 15 minutes
   * (`tcp_retries2`), each later request to it timing out meanwhile.
   *
   * Not judged: a connection not up yet (its dial has its own timer); one whose reading the relay paused
   * (its answers may wait unread), until the timeout has passed since reading resumed (or since a late
   * tick: see tick()); a WebSocket peer (a message of its own being uploaded holds its answers back, RFC
   * 7977 §5.1; its pings find it gone); one toward which the relay holds octets that still move (a reader
   * behind, or slow); and a request ending more than the backlog past what the peer has shown it read
   * ({@link creditReading}): a slow reader of a large chunk, left to the transaction and write-stall
   * timers. Another relay's connection ({@link isRelayLink}) gets ten times as long: that relay stops
   * reading it while a slow client of its own has a full queue (as this relay does), which from here looks
   * the same as a relay gone, and closing it ends every session on it.
   */
  private deadPeers(now: number): Peer[] {
    const dead: Peer[] = [];
    for (const peer of this.peers) {
      if (peer.owedSince !== 0 && peer.lastActivity > peer.owedAt) peer.owedSince = 0; // it spoke since
      const limit = this.opts.deadPeerMs * (this.isRelayLink(peer) ? RELAY_DEAD_FACTOR : 1);
      this.creditReading(peer, now, limit);
      if (peer.closing || !peer.established || peer.isPaused || peer.conn.messageFramed) continue;
      // Octets still held here toward it that move: a reader behind, or slow. Moving is the kernel taking
      // them (what was flushed rising), not more of them handed to the socket: a peer that reads nothing
      // while messages keep coming for it does not move. Not moving for the limit, a queue under
      // --max-queued-bytes (which write-stall leaves alone) is judged as any.
      if (peer.writer.totalQueued > 0) {
        const flushed = peer.flushedOut;
        const m = peer.outMark;
        if (m === null || flushed > m.flushed) {
          peer.outMark = { flushed, since: now };
          continue;
        }
        if (now - m.since < limit) continue;
      } else {
        peer.outMark = null;
      }
      const tx = this.transactions.oldestOwedTo(peer);
      let since = tx === undefined ? 0 : tx.deadline - this.opts.transactionTimeoutMs;
      let outAt = tx === undefined ? 0 : tx.outAt;
      if (peer.owedSince !== 0 && (since === 0 || peer.owedSince < since)) {
        since = peer.owedSince;
        outAt = peer.owedOutAt;
      }
      if (since === 0 || outAt - peer.consumedOut > DEAD_PEER_BACKLOG) continue;
      if (now - Math.max(since, peer.lastActivity, peer.resumedAt) >= limit) dead.push(peer);
    }
    return dead;
  }

  /**
   * The rule's own premise, applied to time passing: a live peer reads at least {@link DEAD_PEER_BACKLOG}
   * octets per limit. While the relay reads it, what the estimate counts as unread (responses, `partial`
   * chunks, which no answer ever acknowledges) is credited at that rate, up to what the transport has
   * flushed; else a client that mostly sends would pile up 200s past the backlog and never be judged.
   */
  private creditReading(peer: Peer, now: number, limit: number): void {
    const elapsed = peer.creditedAt === 0 ? 0 : now - peer.creditedAt;
    peer.creditedAt = now;
    if (peer.isPaused || elapsed <= 0) return;
    const flushed = peer.flushedOut;
    if (peer.consumedOut < flushed)
      peer.consumedOut = Math.min(flushed, peer.consumedOut + (DEAD_PEER_BACKLOG * elapsed) / limit);
  }

  /**
   * True for another relay's connection, which the write-stall and dead-peer timers give longer: one
   * holding no token of ours (a next hop's), one no client authenticated on (a chained relay's, holding
   * the tokens of the AUTHs it forwarded), or one of a relay proven by its certificate.
   */
  private isRelayLink(peer: Peer): boolean {
    // A chained relay's link holds the tokens of the AUTHs it forwarded (RFC 4976 §5.1), but no client
    // authenticated on it.
    return peer.relayIdentity !== null || !peer.authenticated || !this.tokens.hasOwner(peer);
  }

  private closeDead(peer: Peer, now: number): void {
    if (peer.closing) return;
    this.log.warn(
      { conn: peer.id, remote: peer.conn.remote, silentMs: now - peer.lastActivity },
      'peer answers nothing: closing its connection',
    );
    // At once: a graceful close would wait on a peer that is gone.
    peer.closing = true;
    peer.conn.destroy('dead-peer');
  }

  private tick(): void {
    const now = Date.now();
    for (const tx of this.transactions.takeExpired(now)) this.expire(tx);
    // A tick this late means the process did not run (stopped, a stall) or the clock stepped forward:
    // answers may sit unread in the sockets, and silence measured across the gap says nothing. The
    // dead-peer rule starts over from now (timers run before sockets are read).
    const late = now - this.lastTick > 2 * this.tickMs;
    this.lastTick = now;
    if (late) for (const peer of this.peers) peer.resumedAt = now;
    // After the 408s of what timed out: what else was sent to them fails as for any lost connection (481).
    if (this.opts.deadPeerMs > 0 && !late) for (const peer of this.deadPeers(now)) this.closeDead(peer, now);
    this.tokens.sweep(now);
    // After a stall the sockets hold octets not read yet: idle messages are judged at the next tick (review).
    if (!late) this.reports.sweep(now);
    this.lockout.sweep(now);
    for (const peer of this.peers) {
      if (peer.closing) continue;
      const stalled = this.opts.writeStallMs > 0 ? peer.stalledFor(now) : 0;
      // A connection holding no token of ours is another relay's (or a next hop's): its silence may be that
      // relay waiting on a stalled client of its own, which its own timer closes first. Give it longer.
      const stallLimit = this.opts.writeStallMs * (this.isRelayLink(peer) ? RELAY_STALL_FACTOR : 1);
      if (stalled > 0 && stalled >= stallLimit) {
        // Its sources stay paused while it does not read, and with them every session they carry.
        this.log.warn(
          {
            conn: peer.id,
            remote: peer.conn.remote,
            queuedBytes: peer.writer.totalQueued,
            pausedSources: peer.pausedSources.size,
            stalledMs: stalled,
          },
          'peer stopped reading: closing its connection',
        );
        // At once: a graceful close would wait on the very octets it does not read.
        peer.closing = true;
        peer.conn.destroy('write-stall');
        continue;
      }
      // A connection whose reading the relay paused (backpressure) is silent by the relay's own doing.
      if (peer.isPausedByOthers) continue;
      const age = now - (this.connectedAt.get(peer) ?? now);
      const silent = now - peer.lastActivity;
      // RFC 4976 §6.3: a connection without a successful request within the probation period is closed
      // (silent, or every request refused). Torn down at once: a WebSocket close handshake or a FIN
      // behind unread data would hold the slot up to 5 s more for a client that answers neither.
      if (peer.accepted === 0 && !peer.dialed && age > this.opts.probationMs) peer.conn.destroy('probation');
      else if (peer.authenticated && !this.tokens.hasOwner(peer) && silent > this.opts.probationMs)
        // A client whose tokens all expired gets only the probation period of silence to AUTH again.
        peer.close('idle-unauthenticated');
      else if (silent > this.opts.idleTimeoutMs && !this.tokens.hasOwner(peer))
        // Digest §2.5: relays keep connections (an upstream relay's, a next hop's) and may close them
        // after an idle hour (--idle-timeout).
        peer.close('idle');
    }
  }
}

/**
 * Why a request is not forwarded when its head, as this relay writes it (its own transaction id, a
 * Byte-Range made exact, with {@link headBytes}' margin), could pass the 16 KiB head limit a next relay
 * like this one enforces: that relay would close the connection for it, with every session it carries.
 */
const HEAD_TOO_LARGE = 'Head too large to forward';

/** A user name as logged: cut to {@link MAX_NAME} characters (a name is whatever a client sends). */
function shortName(user: string | undefined): string | undefined {
  return user === undefined || user.length <= MAX_NAME ? user : `${user.slice(0, MAX_NAME)}…`;
}

/** Why a request is not sent on to a next hop: the status and comment it is refused with. */
type Refusal = readonly [status: number, comment: string];

function isRefusal(dest: Peer | Refusal): dest is Refusal {
  return Array.isArray(dest);
}

/** No more next-hop connections may be opened now. */
const NO_NEXT_HOP: Refusal = [408, 'Too many next-hop connections'];
/** `--next-hop-allow` / `--next-hop-deny` rule the next hop's address out. */
const NEXT_HOP_DENIED: Refusal = [403, 'Next hop not allowed'];
/** A dial to this next hop failed within its back-off time (1 s, doubling to 30 s). */
const NEXT_HOP_UNREACHABLE: Refusal = [408, 'Next hop unreachable'];
/** The next hop has too many requests unanswered. */
const NOT_ANSWERING: Refusal = [408, 'Next hop not answering'];

/** How many `--write-stall-timeout`s another relay's connection gets before it is closed. */
const RELAY_STALL_FACTOR = 3;

/** How many `--dead-peer-timeout`s another relay's connection gets (see the relay's deadPeers). */
const RELAY_DEAD_FACTOR = 10;

/**
 * The dead-peer rule judges a request only when it ends at most this far (octets) into the relay's
 * outbound stream past what the peer's last answer showed it had read: a chat message, or a 64 KiB chunk
 * with what came before it, which a peer reading 4.4 KB/s gets through within the default 30 s. What
 * the peer has shown it read is its last answer's end (a whole frame's end is counted before it is
 * queued: it overtakes queued stream pieces), credited at this much per timeout as time passes.
 */
const DEAD_PEER_BACKLOG = 128 * 1024;

/**
 * A `partial` chunk handed to a connection at least this long before its peer closed it in order is
 * taken as read (no failure REPORT); a later one may have been in flight, or dropped by a peer already
 * leaving, and is reported (docs/architecture.md, "Failure-Report `partial` and a lost next hop").
 */
const PARTIAL_READ_GRACE_MS = 2000;

const closeWaiters = new WeakMap<Peer, () => void>();

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The failure code for what was sent toward `peer`, now closed: 481 when it was up, 408 when it never came up. */
function lostCode(peer: Peer): number {
  return peer.established ? 481 : 408;
}

/**
 * The comment of the REPORT or response for what was lost with `peer`: a dial that never came up says
 * so, a TLS handshake that failed after the TCP connect apart (chaining audit: a certificate refused
 * read as a connection lost, which misleads whoever reads the sender's log).
 */
function lostComment(peer: Peer): string {
  if (peer.established) return 'Next hop connection lost';
  return peer.tcpConnected ? 'Next hop TLS handshake failed' : 'Next hop unreachable';
}

/**
 * Octets a pending transaction holds: its object and links (and its share of the table), and the strings
 * it keeps for its REPORT. Measured at 450-620 octets a transaction against 365 counted with a fixed
 * part of 320 (memory audit), hence 500.
 */
function txCost(tx: ForwardedTransaction<Peer, TrackedImMessage>): number {
  return 500 + tx.reportTo.length + (tx.messageId?.length ?? 0) + tx.sourceTid.length;
}
