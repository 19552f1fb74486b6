/**
 * What the relay counts and how it reports its state to the metrics layer: plain numbers bumped on the
 * paths where things happen (no allocation per message), and {@link RelayStats}, the snapshot
 * `Relay.stats()` assembles at scrape time. Nothing here knows Prometheus; lib/cli/metrics.ts does.
 */
import type { ReportCounters } from '../reports/policy.js';
import type { TransportKind } from '../transport/connection.js';
import type { Peer } from './peer.js';

/**
 * Counters the metrics layer reads: plain numbers bumped where things happen, never reset. Levels
 * (connections, queues, tokens) and byte totals come from `Relay.stats()`.
 */
export interface RelayCounters {
  connectionsOpened: number;
  connectionsClosed: number;
  /** Connections opened (accepted and dialed), by transport. */
  opened: Record<TransportKind, number>;
  /** Connections closed, by transport and close reason (`peer-closed`, `idle`, `error:ECONNRESET`...). */
  closed: Record<TransportKind, Record<string, number>>;
  /** Sockets closed at accept, by transport and limit (`max-connections`, `max-connections-per-ip`). */
  refusedConnections: Record<TransportKind, Record<string, number>>;
  /** TLS, WS and WSS sockets closed for not finishing their handshake within the probation time. */
  handshakeTimeouts: Record<TransportKind, number>;
  authOk: number;
  /** AUTHs answered 401 with a challenge (`challenge` and `stale`). */
  authChallenged: number;
  /** AUTHs refused (`failed`, `locked-out`, `bad-expires`, `bad-request`). */
  authFailed: number;
  /** AUTHs by outcome (`AUTH_RESULTS` in auth.ts). */
  auth: Record<string, number>;
  /** (address, user) pairs locked out for failed guesses (lib/relay/auth-lockout.ts). */
  authLockouts: number;
  /** Requests read, by method (methods outside {@link KNOWN_METHODS} count as `other`). */
  requestsIn: Record<string, number>;
  /** Responses read, by status code. */
  responsesIn: Record<string, number>;
  forwarded: number;
  /** Sub-chunks written beyond the first of a forwarded chunk (interruptions, WebSocket splits). */
  rechunked: number;
  /** Times a connection's reading was paused by backpressure. */
  readerPauses: number;
  /** Failure REPORTs sent, by status code. */
  failureReports: Record<string, number>;
  /**
   * Requests the relay did not forward, by the status it refused them with (answered as a response or a
   * failure REPORT, or, for REPORTs and Failure-Report `no`, not answered at all). AUTH is counted apart.
   */
  refused: Record<string, number>;
  /** Failure REPORTs not sent: the connection the chunk came on had closed. */
  failureReportsUndeliverable: number;
  transactionTimeouts: number;
  /** Parse errors, by `MSRP_ERR_…` code. */
  parseErrors: Record<string, number>;
}

/** What a connection is doing, as {@link RelayStats.connections} counts it. */
export type ConnectionState = 'authenticated' | 'unauthenticated' | 'dialed' | 'relay';

/** A point-in-time view of the relay for metrics and health checks ({@link Relay.stats}). */
export interface RelayStats {
  /** Open connections by transport and state (`dialed`: outbound, toward a next hop). */
  connections: Record<TransportKind, Record<ConnectionState, number>>;
  /** MSRP octets read since start, by transport (open and closed connections). */
  bytesIn: Record<TransportKind, number>;
  /** MSRP octets written since start, by transport (open and closed connections). */
  bytesOut: Record<TransportKind, number>;
  /** Live Use-Path tokens. */
  tokens: number;
  /** URIs of certificate-proven relays sent back over the connection each opened (ReturnPaths). */
  returnPaths: number;
  /** Forwarded transactions awaiting their response. */
  transactions: number;
  /** Bytes queued toward the most loaded connection. */
  queuedBytesMax: number;
  /** Bytes queued toward all connections. */
  queuedBytesTotal: number;
  /**
   * True while the relay's queues together are past `--max-total-queued-bytes` (and not yet back under
   * half): every queue over 64 KiB then pauses its sources.
   */
  queuePressure: boolean;
  /** Connections whose reading is paused by backpressure. */
  pausedReaders: number;
  /** Accepted TLS, WS and WSS sockets still in their handshake (not connections yet). */
  handshakesPending: number;
  /** (address, user) pairs whose AUTHs are refused now (lib/relay/auth-lockout.ts). */
  authLockedOut: number;
  /** True once {@link Relay.close} has been called. */
  draining: boolean;
  /** A copy of {@link Relay.counters}. */
  counters: RelayCounters;
  /** A copy of the report policy's counters. */
  reports: ReportCounters;
  /** Messages the report tracker follows now (docs/reports.md, Limits). */
  reportsTracked: number;
  /** CPIM head and path octets those messages hold (reserved) now. */
  reportsTrackedBytes: number;
}

/** Methods counted by name in {@link RelayCounters.requestsIn}; others count as `other`. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(['SEND', 'REPORT', 'AUTH', 'NICKNAME']);

/** A record with one fresh value per transport. */
export function perTransport<T>(make: () => T): Record<TransportKind, T> {
  return { tcp: make(), tls: make(), ws: make(), wss: make() };
}

/** Fresh zeroed counters. */
export function createRelayCounters(): RelayCounters {
  return {
    connectionsOpened: 0,
    connectionsClosed: 0,
    opened: perTransport(() => 0),
    closed: perTransport(() => ({})),
    refusedConnections: perTransport(() => ({})),
    handshakeTimeouts: perTransport(() => 0),
    authOk: 0,
    authChallenged: 0,
    authFailed: 0,
    auth: {},
    authLockouts: 0,
    requestsIn: {},
    responsesIn: {},
    forwarded: 0,
    rechunked: 0,
    readerPauses: 0,
    failureReports: {},
    refused: {},
    failureReportsUndeliverable: 0,
    transactionTimeouts: 0,
    parseErrors: {},
  };
}

/**
 * Status codes the MSRP RFCs define (RFC 4975, 4976, 7701): the `code` label values. Any other status,
 * which a peer may send (000-999 parse), counts as `other`, so a peer cannot mint label values (an audit
 * made 1,000 series of one counter with a recipient answering every code).
 */
const STATUS_LABELS = new Set([200, 400, 401, 403, 404, 408, 413, 415, 423, 424, 425, 428, 481, 501, 506]);

/** The `code` label for a status: itself when the RFCs define it, else `other`. */
export function statusLabel(code: number): string {
  return STATUS_LABELS.has(code) ? String(code) : 'other';
}

/** Adds one to `map[key]` (a labelled counter). */
export function bump(map: Record<string, number>, key: string): void {
  map[key] = (map[key] ?? 0) + 1;
}

/** The part of {@link RelayStats} read from the open connections. */
export type ConnectionLevels = Pick<
  RelayStats,
  'connections' | 'bytesIn' | 'bytesOut' | 'queuedBytesMax' | 'queuedBytesTotal' | 'pausedReaders'
>;

/**
 * Walks every open connection once: counts by transport and state, octets (plus `retired`, those of
 * connections already closed), queued bytes and paused readers.
 */
export function connectionLevels(
  peers: Iterable<Peer>,
  isAuthenticated: (peer: Peer) => boolean,
  retired: { in: Record<TransportKind, number>; out: Record<TransportKind, number> },
): ConnectionLevels {
  const connections = perTransport<Record<ConnectionState, number>>(() => ({
    authenticated: 0,
    unauthenticated: 0,
    dialed: 0,
    relay: 0,
  }));
  const bytesIn = { ...retired.in };
  const bytesOut = { ...retired.out };
  let queuedBytesMax = 0;
  let queuedBytesTotal = 0;
  let pausedReaders = 0;
  for (const p of peers) {
    const kind = p.conn.kind;
    const state: ConnectionState = p.dialed
      ? 'dialed'
      : p.relayIdentity !== null
        ? 'relay' // opened by a relay its client certificate proved (--relay-ca)
        : isAuthenticated(p)
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
  return { connections, bytesIn, bytesOut, queuedBytesMax, queuedBytesTotal, pausedReaders };
}
