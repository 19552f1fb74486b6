/**
 * Relay chaining (RFC 4976 §6.4): connections this relay opens toward another relay or endpoint, one
 * per scheme, host and port, reused while they live. `msrps` means TLS.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { connect as netConnect, isIP, type LookupFunction, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { DEFAULTS } from '../constants.js';
import { hostKey, type MsrpUri } from '../msrp/uri.js';
import { formatRemote, StreamConnection } from '../transport/connection.js';
import { TrustedProxies as Networks } from '../transport/proxy.js';
import type { RelayOptions } from './options.js';
import type { Peer } from './peer.js';
import { verifiedIdentity } from './relay-identity.js';

/** Longest a next-hop dial may take to connect and finish its TLS handshake, by default, ms. */
export const DIAL_TIMEOUT_MS = 10_000;

/** After a failed dial, no new one to that next hop for this long, doubling per failure up to the max, ms. */
const BACKOFF_FIRST_MS = 1000;
const BACKOFF_MAX_MS = 30_000;
/** Next hops whose failed dials are remembered at once (a bound: past it the oldest are forgotten). */
const BACKOFF_ENTRIES = 4096;

/** CAs for outbound TLS, as `tls.connect` takes them. */
export type OutboundCa = NonNullable<RelayOptions['tls']>['ca'];

/** The relay's outbound connections, keyed `scheme://host:port`. */
export class NextHops {
  private readonly dialed = new Map<string, Peer>();

  /** CAs trusted for outbound `msrps` connections (Node's bundled roots when undefined). */
  private ca: OutboundCa;
  /**
   * The TLS context of every `msrps` dial, made at the first one: `tls.connect` given `ca` builds a
   * context per connection, parsing the ~145 bundled roots each time (12-22 ms of CPU and about 0.5 MB
   * of native memory per dial, kept by the allocator), which a next hop refusing connections turned
   * into a dial per SEND.
   */
  private context: SecureContext | null = null;
  /** @internal TLS contexts made so far (tests). */
  contextsMade = 0;
  private readonly rejectUnauthorized: boolean;
  /**
   * The relay's own certificate and key, given to a next hop that asks for a client certificate (digest
   * §2.5: relay-to-relay TLS is mutual); undefined without one.
   */
  private clientCert: { cert: string | Buffer; key: string | Buffer } | undefined;

  /** `--next-hop-allow` (empty: any) and `--next-hop-deny`. */
  private readonly allow: Networks;
  /** `--next-hop-per-session` hosts (hostKey form, no trailing dot): dialed once per URI, not per authority. */
  private readonly perSession: Set<string>;
  private readonly deny: Networks;
  /** Checks the addresses a next hop's name resolves to; undefined when no list is set. */
  private readonly lookup: LookupFunction | undefined;
  /**
   * Dial keys whose last dial failed (refused, timed out, TLS handshake failed): until when no new dial
   * is made, and the current delay. Chaining audit: a next hop that refused (or failed TLS) took one
   * dial, and one TLS handshake on both sides, per SEND sent its way.
   */
  private readonly backoff = new Map<string, { until: number; delayMs: number }>();

  /**
   * `tls`: trust settings for outbound `msrps` connections; `allow`/`deny`: addresses it may dial;
   * `dialTimeoutMs`: how long a dial may take to connect (and finish its TLS handshake).
   */
  constructor(
    tls: RelayOptions['tls'],
    allow: readonly string[] = [],
    deny: readonly string[] = [],
    private readonly dialTimeoutMs = DIAL_TIMEOUT_MS,
    perSession: readonly string[] = [],
  ) {
    this.perSession = new Set(perSession.map((h) => sessionHostKey(isIP(h) === 6 ? `[${h}]` : h)));
    this.ca = tls?.ca;
    this.rejectUnauthorized = tls?.rejectUnauthorized ?? true;
    this.clientCert =
      tls?.cert !== undefined && tls.key !== undefined ? { cert: tls.cert, key: tls.key } : undefined;
    this.allow = new Networks(allow);
    this.deny = new Networks(deny);
    this.lookup = allow.length + deny.length === 0 ? undefined : this.checkedLookup();
  }

  /** True when the next hop's address may not be dialed (an IP address host; names are checked once resolved). */
  refuses(uri: MsrpUri): boolean {
    const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
    return isIP(host) !== 0 && this.refusesAddress(host);
  }

  private refusesAddress(address: string): boolean {
    // The unspecified addresses (0.0.0.0, ::) reach this machine: never a next hop (review: the documented
    // deny list let them through to loopback services). Literals always; names when a list is set.
    if (UNSPECIFIED.has(address)) return true;
    return (this.allow.size > 0 && !this.allow.has(address)) || this.deny.has(address);
  }

  /** dns.lookup keeping only the addresses the lists allow (an error when none is left). */
  private checkedLookup(): LookupFunction {
    const denied = (host: string): NodeJS.ErrnoException =>
      Object.assign(new Error(`next hop ${host} resolves to no allowed address`), { code: 'ENEXTHOPDENIED' });
    return ((hostname: string, options: { all?: boolean }, callback: (...args: unknown[]) => void) => {
      dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
        if (err !== null) return callback(err);
        const ok = addresses.filter((a) => !this.refusesAddress(a.address));
        if (ok.length === 0) return callback(denied(hostname));
        if (options.all === true) return callback(null, ok);
        return callback(null, ok[0]!.address, ok[0]!.family);
      });
    }) as unknown as LookupFunction;
  }

  /** Trusts `ca` for connections dialed from now on (SIGHUP reload); undefined: Node's bundled roots. */
  setCa(ca: OutboundCa): void {
    this.ca = ca;
    this.context = null;
  }

  /** Presents `creds` to next hops dialed from now on (SIGHUP reload of the relay's certificate). */
  setClientCertificate(creds: { cert: string | Buffer; key: string | Buffer }): void {
    this.clientCert = { cert: creds.cert, key: creds.key };
    this.context = null;
  }

  /** Connections dialed and not yet forgotten (closed). */
  get size(): number {
    return this.dialed.size;
  }

  /** True while a failed dial toward `uri`'s scheme, host and port keeps new ones off. */
  backingOff(uri: MsrpUri, now: number): boolean {
    // By authority, per-session hosts too: a client making up session-ids must not get a dial each
    // toward a next hop that is down (review of 56e4d60).
    const b = this.backoff.get(authorityKey(uri));
    return b !== undefined && now < b.until;
  }

  /** Notes how a dialed connection ended: one that never connected puts its next hop on hold. */
  ended(peer: Peer, now: number): void {
    if (peer.dialKey === undefined || peer.established) return;
    const key = dialAuthority(peer.dialKey);
    const prev = this.backoff.get(key);
    // Failures in a row double the delay; one long after the last starts over.
    const inARow = prev !== undefined && now - prev.until < BACKOFF_MAX_MS;
    const delayMs = inARow ? Math.min(BACKOFF_MAX_MS, prev.delayMs * 2) : BACKOFF_FIRST_MS;
    this.backoff.delete(key); // re-inserted last: the Map's order is the order of the latest failures
    if (this.backoff.size >= BACKOFF_ENTRIES) this.backoff.delete(this.backoff.keys().next().value!);
    this.backoff.set(key, { until: now + delayMs, delayMs });
  }

  /**
   * What one dialed connection serves: `uri`'s scheme, host and port; with the session-id too for a
   * `--next-hop-per-session` host.
   */
  private keyOf(uri: MsrpUri): string {
    const key = authorityKey(uri);
    return this.isPerSession(uri) ? `${key}/${uri.sessionId ?? ''}` : key;
  }

  /** True when `uri`'s host is a `--next-hop-per-session` one: a connection of it serves one session. */
  isPerSession(uri: MsrpUri): boolean {
    return this.perSession.size > 0 && this.perSession.has(sessionHostKey(uri.host));
  }

  /** The live connection already dialed toward `uri`'s scheme, host and port (and session), if any. */
  existing(uri: MsrpUri): Peer | undefined {
    const p = this.dialed.get(this.keyOf(uri));
    return p !== undefined && usable(p) ? p : undefined;
  }

  /** The dialed connections, for the relay to pick one to close when it needs room. */
  peers(): IterableIterator<Peer> {
    return this.dialed.values();
  }

  /**
   * The live connection toward `uri`'s scheme, host and port, or a new one: its socket is opened here
   * and `adopt` makes the peer (whose dial key is `key`).
   */
  dial(uri: MsrpUri, adopt: (conn: StreamConnection, key: string) => Peer): Peer {
    const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
    const port = uri.port ?? DEFAULTS.port;
    const key = this.keyOf(uri);
    const existing = this.dialed.get(key);
    if (existing !== undefined && usable(existing)) return existing;
    let socket: Socket;
    let kind: 'tcp' | 'tls';
    if (uri.scheme === 'msrps') {
      socket = tlsConnect({
        host,
        port,
        servername: /^[\d.]+$|:/.test(host) ? undefined : host,
        secureContext: this.secureContext(),
        rejectUnauthorized: this.rejectUnauthorized,
        ...(this.lookup && { lookup: this.lookup }),
      });
      kind = 'tls';
    } else {
      socket = netConnect({ host, port, ...(this.lookup && { lookup: this.lookup }) });
      kind = 'tcp';
    }
    const peer = adopt(new StreamConnection(socket, kind, formatRemote(host, port)), key);
    // Chaining audit: a next hop that drops SYNs held a dial (a --max-next-hops slot, and the senders
    // paused behind its queue) for the kernel's ~127 s of retries; a silent TLS peer, for good.
    const timer = setTimeout(() => {
      if (!peer.established)
        socket.destroy(Object.assign(new Error('connect timeout'), { code: 'ETIMEDOUT' }));
    }, this.dialTimeoutMs);
    timer.unref();
    if (kind === 'tls') socket.once('connect', () => (peer.tcpConnected = true));
    socket.once(kind === 'tls' ? 'secureConnect' : 'connect', () => {
      peer.established = true;
      // The next hop's certificate was checked for `host`: it is that relay (digest §2.5, §2.6).
      if (kind === 'tls') peer.relayIdentity = verifiedIdentity(peer.conn);
      clearTimeout(timer);
      this.backoff.delete(key);
    });
    socket.once('close', () => clearTimeout(timer));
    this.dialed.set(key, peer);
    return peer;
  }

  private secureContext(): SecureContext {
    if (this.context === null) {
      this.context = createSecureContext({ ca: this.ca, ...this.clientCert });
      this.contextsMade++;
    }
    return this.context;
  }

  /** Forgets a closed peer, unless a newer connection has taken its key. */
  forget(peer: Peer): void {
    if (peer.dialKey !== undefined && this.dialed.get(peer.dialKey) === peer)
      this.dialed.delete(peer.dialKey);
  }
}

/** 0.0.0.0/8 and :: (also as IPv4-mapped): where a connection reaches the local host. */
const UNSPECIFIED = new Networks(['0.0.0.0/8', '::/128']);

/** `uri`'s scheme, host (without IPv6 brackets, lower case) and port: what a shared connection serves. */
function authorityKey(uri: MsrpUri): string {
  const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
  return `${uri.scheme}://${host.toLowerCase()}:${uri.port ?? DEFAULTS.port}`;
}

/** The authority part of a dial key (a per-session key adds `/session-id`). */
export function dialAuthority(key: string): string {
  const cut = key.indexOf('/', key.indexOf('://') + 3);
  return cut === -1 ? key : key.slice(0, cut);
}

/** A host as `--next-hop-per-session` compares it: RFC 4975 §6.1 form (hostKey), no trailing dot. */
function sessionHostKey(host: string): string {
  const key = hostKey(host);
  return key.endsWith('.') ? key.slice(0, -1) : key;
}

/**
 * True for a connection new traffic may take: not closing or closed on our side, and not ended by the
 * peer (its FIN: what is queued toward it may never be read, chaining audit).
 */
export function usable(p: Peer): boolean {
  return !p.closing && !p.isClosed && !p.conn.closed;
}
