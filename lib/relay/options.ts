/**
 * The options of {@link createRelay} and their resolution to the values the relay runs with: every
 * limit defaulted from DESIGN.md's table (`DEFAULTS` in `lib/constants.ts`), the listeners, the public
 * host and the Digest realm.
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { DEFAULTS } from '../constants.js';
import type { TransportKind } from '../transport/connection.js';
import { silentLogger, type Logger } from './logger.js';
import type { UserStore } from './users.js';

/** A `host:port` to listen on (port 0: any free port). */
export interface ListenSpec {
  host: string;
  port: number;
}

/** Options of {@link createRelay}; every limit defaults to DESIGN.md's table. */
export interface RelayOptions {
  /** Delivery-report injection (DESIGN.md "Report policy"): `on-ack` (default), `on-receipt` or `off`. */
  reports?: 'on-ack' | 'on-receipt' | 'off';
  /**
   * Drop the recipient's own delivery IMDN for a message already reported, and inject none for an IM
   * whose recipient reported first (default true).
   */
  reportsDedupe?: boolean;
  /** Delivery notifications (delivered, failed) remembered for dedupe, all sessions together (default 10 000). */
  reportsDedupeEntries?: number;
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
   * HTTP reverse proxies (IP addresses, `address/prefix` networks) whose `X-Forwarded-For` names the
   * client of a WebSocket upgrade. Empty or absent: none.
   */
  trustedProxies?: string[];
  /**
   * Load balancers (IP addresses, `address/prefix` networks) whose TCP and TLS connections start with a
   * PROXY protocol header (v1 or v2), required: it names the client. Empty or absent: none.
   */
  proxyProtocolFrom?: string[];
  /**
   * Addresses or networks (`address/prefix`) next hops may be dialed at; empty: any. A next hop named by
   * an IP address outside them is refused (403); a name is dialed only at the addresses it resolves to
   * that are allowed.
   */
  nextHopAllow?: string[];
  /** Addresses or networks next hops may not be dialed at (e.g. 127.0.0.0/8, 10.0.0.0/8), checked likewise. */
  nextHopDeny?: string[];
  /**
   * Next-hop hosts (as written in URIs, names or addresses; compared in RFC 4975 §6.1 form) dialed once
   * per session, keyed by the whole URI rather than its authority: relays that bind each connection to
   * one session (AG Projects' msrprelay answers a second session's SEND on a shared connection with
   * 481). Each such session then holds one of `maxNextHops`; a failed dial backs off the whole host.
   */
  nextHopPerSession?: string[];
  /**
   * Largest WebSocket message the relay sends: each forwarded SEND chunk toward a WebSocket client is
   * cut to fit, head and end-line included (default 64 KiB). Incoming messages may be as large as
   * `max(wsMaxMessageBytes, maxQueuedBytes)`.
   */
  wsMaxMessageBytes?: number;
  /** Plain HTTP requests reaching a WebSocket listener (default 404). */
  onHttpRequest?: (req: IncomingMessage, res: ServerResponse) => void;
  /**
   * TLS material for listeners, plus trust settings for outbound `msrps` connections: `ca` replaces
   * Node's bundled roots for those (include `tls.rootCertificates` to add to them).
   */
  tls?: {
    cert?: string | Buffer;
    key?: string | Buffer;
    ca?: string | Buffer | Array<string | Buffer>;
    rejectUnauthorized?: boolean;
    /**
     * CAs whose certificates identify other relays (RFC 4976 §6.2, digest §2.5): TLS listeners then ask
     * for a client certificate, and a connection whose certificate verifies against these is a relay
     * known by the certificate's host names. Without it no certificate is asked for.
     */
    relayCa?: string | Buffer | Array<string | Buffer>;
  };
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
  /**
   * Failed guesses (wrong password, unknown user) for one user from one IPv4 address or IPv6 /64 that lock
   * that pair out (403, credentials unchecked); 0 turns the lockout off (lib/relay/auth-lockout.ts).
   */
  authLockoutFailures?: number;
  /** A gap this long ends a run of failures; a lockout lasts this long after its last failure (ms). */
  authLockoutMs?: number;
  /** Largest message (and chunk) accepted, bytes. */
  maxMessageBytes?: number;
  /** Largest body of a non-SEND request, bytes. */
  maxOtherBodyBytes?: number;
  /** Queued bytes toward one connection before its sources pause. */
  maxQueuedBytes?: number;
  /**
   * Queued bytes toward all connections together past which every queue over 64 KiB pauses its sources,
   * until the total is back under half (see `QueueBudget`). 0: no limit. Default 256 MiB.
   */
  maxTotalQueuedBytes?: number;
  /**
   * Octets (estimated: a fixed part plus the From-Path, Message-ID and transaction id kept) that the
   * requests sent to one connection and still waiting for its answers may hold; past it, more requests
   * toward it that await an answer are refused (408), so a next hop that never answers cannot make the
   * relay keep a transaction per request without bound. Default 8 MiB.
   */
  pendingBytesPerConnection?: number;
  /** The same for all connections together (past it, any destination over 256 KiB). Default 128 MiB. */
  pendingBytesTotal?: number;
  /**
   * Connections dialed toward next hops (relay chaining), open at once: past it, the one idle longest
   * (nothing in flight, silent for 5 s) is closed to make room, and without one the request is refused
   * (408). They are not counted in `maxConnections`, whose default keeps descriptors free for them.
   * Default 100.
   */
  maxNextHops?: number;
  /**
   * Live tokens for AUTHs another relay forwarded (RFC 4976 §5.1: one per client behind that relay), per
   * source address (IPv4, IPv6 /64), or per certificate for a relay known by one (`tls.relayCa`); past
   * it the oldest is revoked. A client's own connection holds 64 at most. Default 4096.
   */
  maxRelayedTokens?: number;
  /**
   * Accepted connections open at once, all listeners together (sockets still in their TLS or WebSocket
   * handshake included); one more is closed at once. 0: no limit. Default: the process's open-file limit
   * minus {@link FD_RESERVE}, so that accepting never runs the process out of descriptors (no limit when
   * the open-file limit cannot be read).
   */
  maxConnections?: number;
  /** Accepted connections open at once from one IPv4 address or one IPv6 /64. 0 (default): no limit. */
  maxConnectionsPerIp?: number;
  /**
   * After a connection refused at accept is logged, further refusals are summed into one line per this
   * many ms (default 10 000).
   */
  refusalLogIntervalMs?: number;
  transactionTimeoutMs?: number;
  probationMs?: number;
  idleTimeoutMs?: number;
  /**
   * A connection whose queue is full (past `maxQueuedBytes`, not yet back under half) with nothing taken
   * by its transport for this long is closed: a peer that stopped reading would otherwise keep its
   * sources paused, and with them every session on a connection they share (default 60 000 ms; 0: never).
   */
  writeStallMs?: number;
  /**
   * TCP keep-alive on TCP and TLS connections, accepted and dialed (SO_KEEPALIVE, with TCP_KEEPIDLE this
   * many ms rounded down to whole seconds): the kernel probes a connection silent this long, which keeps
   * middleboxes' state for a quiet relay link and finds a peer that vanished (default 120 000; 0: off;
   * at most 32 767 000, Linux's limit).
   * WebSocket connections have their own pings (RFC 7977 §6).
   */
  tcpKeepAliveMs?: number;
  /**
   * A connection that owes an answer to a request of the relay and has sent nothing at all for this long
   * since that request went out (or since its last word) is closed as dead: a peer gone while data was
   * in flight to it, which TCP keep-alive cannot see (the kernel probes only idle connections) and
   * retransmissions find only after minutes. Its transactions then fail as for any lost connection. What
   * a slow peer could explain is not judged, and another relay's connection gets ten times as long (see
   * the relay's deadPeers; docs/operations.md). Default 30 000 ms; 0: never.
   */
  deadPeerMs?: number;
  logger?: Logger;
}

/** A bound listener. */
export interface RelayAddress {
  kind: TransportKind;
  host: string;
  port: number;
}

/** The AUTH settings and limits of {@link RelayOptions}, every one defaulted. */
export type RelayLimits = Required<
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
    | 'trustedProxies'
    | 'proxyProtocolFrom'
    | 'nextHopAllow'
    | 'nextHopDeny'
    | 'nextHopPerSession'
    | 'onHttpRequest'
    | 'reports'
    | 'reportsDedupe'
    | 'reportsDedupeEntries'
    | 'reportsProcessing'
  >
>;

/** {@link RelayOptions} resolved: what the relay runs with. */
export interface ResolvedRelayOptions {
  log: Logger;
  /** Delivery-report policy for `RelayReports`. */
  reports: {
    mode: 'on-ack' | 'on-receipt' | 'off';
    dedupe: boolean;
    dedupeEntries: number;
    processing: boolean;
  };
  /** TCP listeners: 127.0.0.1:2855 when no listener at all was given. */
  listen: ListenSpec[];
  tlsListen: ListenSpec[];
  wsListen: ListenSpec[];
  wssListen: ListenSpec[];
  wsAllowedOrigins: string[];
  trustedProxies: string[];
  proxyProtocolFrom: string[];
  nextHopAllow: string[];
  nextHopDeny: string[];
  nextHopPerSession: string[];
  onHttpRequest: RelayOptions['onHttpRequest'];
  tls: RelayOptions['tls'];
  /** The host in Use-Path URIs: the option, else the first TCP, TLS or WebSocket listen host. */
  publicHost: string;
  /** The Digest realm: the option, else the public host. */
  realm: string;
  users: UserStore;
  limits: RelayLimits;
}

/** Fills every default of `options` (DESIGN.md's table). */
export function resolveRelayOptions(options: RelayOptions): ResolvedRelayOptions {
  const plain = options.listen ?? [];
  const tls = options.tlsListen ?? [];
  const ws = [...(options.wsListen ?? []), ...(options.wssListen ?? [])];
  const listen =
    plain.length === 0 && tls.length === 0 && ws.length === 0
      ? [{ host: '127.0.0.1', port: DEFAULTS.port }]
      : plain;
  const publicHost = options.publicHost ?? (listen[0] ?? tls[0] ?? ws[0])!.host;
  return {
    log: options.logger ?? silentLogger,
    reports: {
      mode: options.reports ?? 'on-ack',
      dedupe: options.reportsDedupe ?? true,
      dedupeEntries: options.reportsDedupeEntries ?? DEFAULTS.reportDedupeEntries,
      processing: options.reportsProcessing ?? false,
    },
    listen,
    tlsListen: tls,
    wsListen: options.wsListen ?? [],
    wssListen: options.wssListen ?? [],
    wsAllowedOrigins: options.wsAllowedOrigins ?? [],
    trustedProxies: options.trustedProxies ?? [],
    proxyProtocolFrom: options.proxyProtocolFrom ?? [],
    nextHopAllow: options.nextHopAllow ?? [],
    nextHopDeny: options.nextHopDeny ?? [],
    nextHopPerSession: options.nextHopPerSession ?? [],
    onHttpRequest: options.onHttpRequest,
    tls: options.tls,
    publicHost,
    realm: options.realm ?? publicHost,
    users: options.users ?? { lookup: () => undefined },
    limits: {
      auth: options.auth ?? true,
      authExpires: options.authExpires ?? DEFAULTS.authExpires,
      authMinExpires: options.authMinExpires ?? DEFAULTS.authMinExpires,
      authMaxExpires: options.authMaxExpires ?? DEFAULTS.authMaxExpires,
      maxAuthFailures: options.maxAuthFailures ?? DEFAULTS.maxAuthFailures,
      authLockoutFailures: options.authLockoutFailures ?? DEFAULTS.authLockoutFailures,
      authLockoutMs: options.authLockoutMs ?? DEFAULTS.authLockoutMs,
      maxMessageBytes: options.maxMessageBytes ?? DEFAULTS.maxMessageBytes,
      maxOtherBodyBytes: options.maxOtherBodyBytes ?? DEFAULTS.maxOtherBodyBytes,
      maxQueuedBytes: options.maxQueuedBytes ?? DEFAULTS.maxQueuedBytes,
      maxTotalQueuedBytes: options.maxTotalQueuedBytes ?? DEFAULTS.maxTotalQueuedBytes,
      pendingBytesPerConnection: options.pendingBytesPerConnection ?? DEFAULTS.pendingBytesPerConnection,
      pendingBytesTotal: options.pendingBytesTotal ?? DEFAULTS.pendingBytesTotal,
      maxNextHops: options.maxNextHops ?? DEFAULTS.maxNextHops,
      maxRelayedTokens: options.maxRelayedTokens ?? DEFAULTS.maxRelayedTokens,
      maxConnections: options.maxConnections ?? defaultMaxConnections(),
      maxConnectionsPerIp: options.maxConnectionsPerIp ?? 0,
      refusalLogIntervalMs: options.refusalLogIntervalMs ?? 10_000,
      wsMaxMessageBytes: options.wsMaxMessageBytes ?? DEFAULTS.wsMaxMessageBytes,
      transactionTimeoutMs: options.transactionTimeoutMs ?? DEFAULTS.transactionTimeoutMs,
      probationMs: options.probationMs ?? DEFAULTS.probationMs,
      idleTimeoutMs: options.idleTimeoutMs ?? DEFAULTS.idleTimeoutMs,
      writeStallMs: options.writeStallMs ?? DEFAULTS.writeStallMs,
      tcpKeepAliveMs: options.tcpKeepAliveMs ?? DEFAULTS.tcpKeepAliveMs,
      deadPeerMs: options.deadPeerMs ?? DEFAULTS.deadPeerMs,
    },
  };
}

/**
 * Descriptors kept free of accepted connections by the default {@link RelayOptions.maxConnections}:
 * listeners, connections to next hops, the metrics server, files read on reload.
 */
export const FD_RESERVE = 128;

/** This process's open-file limit (RLIMIT_NOFILE, soft), from /proc; Infinity when unknown or unlimited. */
export function openFileLimit(): number {
  try {
    const m = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m === null ? Infinity : Number(m[1]);
  } catch {
    return Infinity; // not Linux: no /proc
  }
}

/** The open-file limit minus {@link FD_RESERVE}; 0 (no limit) when the limit is unknown. */
export function defaultMaxConnections(): number {
  const limit = openFileLimit();
  return limit === Infinity ? 0 : Math.max(1, limit - FD_RESERVE);
}
