/**
 * Byte codes, character tables and default limits shared by every layer. Defaults follow the limits
 * table of DESIGN.md; every one is overridable by an option or a CLI flag.
 */

export const CR = 0x0d;
export const LF = 0x0a;
export const SP = 0x20;
export const COLON = 0x3a;
export const HYPHEN = 0x2d;
export const PLUS = 0x2b;
export const DOLLAR = 0x24;
export const HASH = 0x23;

/** `-------`: the seven hyphens that open an end-line (RFC 4975 §7.1). */
export const END_LINE_PREFIX = '-------';

/** Oldest TLS version the relay's TLS and WSS listeners accept (also after a certificate reload). */
export const MIN_TLS_VERSION = 'TLSv1.2';

/** Continuation flags of an end-line: `+` more chunks, `$` last chunk, `#` message aborted. */
export type ContinuationFlag = '+' | '$' | '#';

/** Default limits (DESIGN.md "Limits"). */
export const DEFAULTS = {
  /** Start line + headers of one frame, in bytes. */
  maxHeadBytes: 16 * 1024,
  /** Header lines per frame. */
  maxHeaders: 64,
  /** Body of a non-SEND request (REPORT, AUTH, unknown methods), in bytes. */
  maxOtherBodyBytes: 64 * 1024,
  /** Body of one SEND chunk, in bytes (defaults to the whole-message limit). */
  maxChunkBytes: 64 * 1024 * 1024,
  /** One message across all its chunks, in bytes. */
  maxMessageBytes: 64 * 1024 * 1024,
  /** CPIM head kept per message for report inspection, in bytes. */
  cpimHeadBytes: 8 * 1024,
  /** Milliseconds a tracked message may go without a chunk or an acknowledgement before it is dropped. */
  reportIdleTimeoutMs: 120_000,
  /** Messages tracked for reports at once, all connections together. */
  reportMaxMessages: 100_000,
  /** Messages tracked for reports at once per sending connection. */
  reportMaxMessagesPerOwner: 1000,
  /** CPIM head bytes reserved at once, all connections together. */
  reportMaxHeadBytes: 64 * 1024 * 1024,
  /** CPIM head bytes reserved at once per sending connection. */
  reportMaxHeadBytesPerOwner: 1024 * 1024,
  /**
   * How many times the two per-connection caps above another relay's link gets: it carries the messages of
   * every client behind that relay (the relay's `isRelayLink` rule).
   */
  reportRelayLinkFactor: 10,
  /** Disjoint octet ranges (holes) one tracked message may have before tracking gives up on it. */
  reportMaxIntervals: 256,
  /** Delivered reports remembered to drop the recipient's own duplicate, and for how long (ms). */
  reportDedupeEntries: 10_000,
  reportDedupeTtlMs: 3600_000,
  /** Recipient sessions whose report frame templates are kept (about 1 KiB per outcome); all dropped when full. */
  reportTemplates: 4096,
  /** Bytes queued toward one connection before its sources are paused. */
  maxQueuedBytes: 1024 * 1024,
  /** All connections' queues together (`--max-total-queued-bytes`). */
  maxTotalQueuedBytes: 256 * 1024 * 1024,
  /** A queue under this goes on while the total is over its limit (QueueBudget's floor). */
  queueFloorBytes: 64 * 1024,
  /** What the unanswered requests sent to one connection may hold before more are refused (estimated). */
  pendingBytesPerConnection: 8 * 1024 * 1024,
  /** The same for all connections together; past it, any destination holding over 256 KiB. */
  pendingBytesTotal: 128 * 1024 * 1024,
  /** What one destination's unanswered requests may hold while the total is past `pendingBytesTotal`. */
  pendingFloorBytes: 256 * 1024,
  /** Connections the relay dials toward next hops, open at once (`--max-next-hops`). */
  maxNextHops: 100,
  /** Tokens for AUTHs another relay forwarded, live at once per address or relay certificate (`--max-relayed-tokens`). */
  maxRelayedTokens: 4096,
  /** A dialed connection silent this long with nothing in flight may be closed to make room for a new one. */
  nextHopIdleMs: 5000,
  /** Largest MSRP chunk sent in one WebSocket message. */
  wsMaxMessageBytes: 64 * 1024,
  /** Milliseconds a new connection may stay silent before it is closed (RFC 4976 §5). */
  probationMs: 30_000,
  /** Milliseconds to wait for a response from the next hop (RFC 4975 §7.3, RFC 4976 §6.5). */
  transactionTimeoutMs: 30_000,
  /** Milliseconds without traffic after which an authenticated connection is closed. */
  idleTimeoutMs: 3600_000,
  /** Milliseconds a connection's queue may stay over its limit with nothing leaving before it is closed. */
  writeStallMs: 60_000,
  /**
   * Milliseconds of silence on a TCP or TLS connection before keep-alive probes start: under the idle
   * timeouts of common NATs, firewalls and cloud load balancers (4-6 min and up).
   */
  tcpKeepAliveMs: 120_000,
  /**
   * Milliseconds a connection may owe an answer to a request of the relay while sending nothing at all
   * before it is taken for dead (relay.ts deadPeers; ten times as long for another relay's): as the
   * default transaction timeout.
   */
  deadPeerMs: 30_000,
  /** AUTH lifetime in seconds: default, minimum, maximum (RFC 4976 §5.1). */
  authExpires: 600,
  authMinExpires: 60,
  authMaxExpires: 3600,
  /** Failed AUTH attempts on one connection before it is closed. */
  maxAuthFailures: 3,
  /** Failed guesses for one user from one address (IPv4, IPv6 /64) that lock the pair out, and for how long (ms). */
  authLockoutFailures: 10,
  authLockoutMs: 900_000,
  /** (address, user) entries the lockout remembers at most (about 500 B each: 46-53 MB measured when full). */
  authLockoutEntries: 100_000,
  /** Default MSRP port (IANA). */
  port: 2855,
} as const;
