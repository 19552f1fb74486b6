/**
 * Relay chaining (RFC 4976 §6.4): connections this relay opens toward another relay or endpoint, one
 * per scheme, host and port, reused while they live. `msrps` means TLS.
 */
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, createSecureContext, type SecureContext } from 'node:tls';
import { DEFAULTS } from '../constants.js';
import type { MsrpUri } from '../msrp/uri.js';
import { formatRemote, StreamConnection } from '../transport/connection.js';
import type { RelayOptions } from './options.js';
import type { Peer } from './peer.js';

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

  /** `tls`: trust settings for outbound `msrps` connections. */
  constructor(tls: RelayOptions['tls']) {
    this.ca = tls?.ca;
    this.rejectUnauthorized = tls?.rejectUnauthorized ?? true;
  }

  /** Trusts `ca` for connections dialed from now on (SIGHUP reload); undefined: Node's bundled roots. */
  setCa(ca: OutboundCa): void {
    this.ca = ca;
    this.context = null;
  }

  /**
   * The live connection toward `uri`'s scheme, host and port, or a new one: its socket is opened here
   * and `adopt` makes the peer (whose dial key is `key`).
   */
  /** Connections dialed and not yet forgotten (closed). */
  get size(): number {
    return this.dialed.size;
  }

  /** The live connection already dialed toward `uri`'s scheme, host and port, if any. */
  existing(uri: MsrpUri): Peer | undefined {
    const p = this.dialed.get(dialKey(uri));
    return p !== undefined && !p.closing && !p.isClosed ? p : undefined;
  }

  /** The dialed connections, for the relay to pick one to close when it needs room. */
  peers(): IterableIterator<Peer> {
    return this.dialed.values();
  }

  dial(uri: MsrpUri, adopt: (conn: StreamConnection, key: string) => Peer): Peer {
    const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
    const port = uri.port ?? DEFAULTS.port;
    const key = dialKey(uri);
    const existing = this.dialed.get(key);
    if (existing !== undefined && !existing.closing && !existing.isClosed) return existing;
    let socket: Socket;
    let kind: 'tcp' | 'tls';
    if (uri.scheme === 'msrps') {
      socket = tlsConnect({
        host,
        port,
        servername: /^[\d.]+$|:/.test(host) ? undefined : host,
        secureContext: this.secureContext(),
        rejectUnauthorized: this.rejectUnauthorized,
      });
      kind = 'tls';
    } else {
      socket = netConnect({ host, port });
      kind = 'tcp';
    }
    const peer = adopt(new StreamConnection(socket, kind, formatRemote(host, port)), key);
    socket.once(kind === 'tls' ? 'secureConnect' : 'connect', () => {
      peer.established = true;
    });
    this.dialed.set(key, peer);
    return peer;
  }

  private secureContext(): SecureContext {
    if (this.context === null) {
      this.context = createSecureContext({ ca: this.ca });
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

/** `scheme://host:port` of a next hop (host lower-cased, without IPv6 brackets). */
function dialKey(uri: MsrpUri): string {
  const host = uri.host.startsWith('[') ? uri.host.slice(1, -1) : uri.host;
  return `${uri.scheme}://${host.toLowerCase()}:${uri.port ?? DEFAULTS.port}`;
}
