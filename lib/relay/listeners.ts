/**
 * The relay's listening side: the bound TCP, TLS and WebSocket (RFC 7977) servers, the authorities
 * (`host:port`) that name this relay in MSRP URIs, and the listener a Use-Path URI points at.
 */
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { IncomingMessage } from 'node:http';
import {
  createSecureContext,
  createServer as createTlsServer,
  type Server as TlsServer,
  type TlsOptions,
  type TLSSocket,
} from 'node:tls';
import type { Duplex } from 'node:stream';
import { MIN_TLS_VERSION } from '../constants.js';
import { hostKey, uriHost, type MsrpUri } from '../msrp/uri.js';
import {
  formatRemote,
  StreamConnection,
  type Connection,
  type TransportKind,
} from '../transport/connection.js';
import {
  forwardedClient,
  readProxyHeader,
  TrustedProxies,
  type ProxyHeaderError,
} from '../transport/proxy.js';
import { listenWs } from '../transport/ws.js';
import { clip } from './log-budget.js';
import type { Logger } from './logger.js';
import type { ListenSpec, RelayAddress, ResolvedRelayOptions } from './options.js';
import type { Peer } from './peer.js';

/** A bound server and the address it listens on (port resolved). */
export interface BoundListener {
  kind: TransportKind;
  server: Server;
  host: string;
  port: number;
}

/** CA certificates, PEM, as `tls` takes them. */
export type RelayCa = string | Buffer | Array<string | Buffer>;

/** A certificate chain and its private key, PEM. */
export interface TlsCredentials {
  cert: string | Buffer;
  key: string | Buffer;
}

/** What the TLS and WSS listeners present: the first certificate of the chain. */
export interface TlsCertificateInfo {
  subject: string;
  /** Expiry (notAfter), ms since the epoch. */
  notAfter: number;
  /** SHA-256 fingerprint, colon-separated hex. */
  fingerprint256: string;
}

/** What {@link Listeners} needs: the listen specs and TLS material, and where connections go. */
export type ListenersOptions = Pick<
  ResolvedRelayOptions,
  | 'listen'
  | 'tlsListen'
  | 'wsListen'
  | 'wssListen'
  | 'wsAllowedOrigins'
  | 'trustedProxies'
  | 'proxyProtocolFrom'
  | 'onHttpRequest'
  | 'tls'
  | 'publicHost'
> & {
  /** Largest incoming WebSocket message, bytes. */
  wsMaxPayload: number;
  /** Accepted sockets open at once, all listeners (0: no limit). */
  maxConnections: number;
  /** Accepted sockets open at once per IPv4 address or IPv6 /64 (0: no limit). */
  maxConnectionsPerIp: number;
  /**
   * Time a TLS, WS or WSS socket has to finish its handshake (or upgrade) and become a connection;
   * destroyed after it. The relay's probation time.
   */
  handshakeTimeoutMs: number;
  /** Called for every socket destroyed for not finishing its handshake in time. */
  onHandshakeTimeout: (kind: TransportKind) => void;
  log: Logger;
  /**
   * Called with every accepted connection and when its socket was accepted (ms since the epoch): a TLS
   * handshake, WebSocket upgrade or PROXY header came before it, and the probation period counts from
   * the accept, not from the connection (RFC 4976 §6.3).
   */
  onConnection: (conn: Connection, acceptedAt: number) => void;
  /** Called for every socket closed at accept because a limit was reached. */
  onRefused: (kind: TransportKind, reason: RefusalReason, remote: string) => void;
};

/** Why an accepted socket can be closed at once: the limit it met. */
export const REFUSAL_REASONS = [
  'max-connections',
  'max-connections-per-ip',
  'proxy-header',
  'ws-origin',
  'ws-subprotocol',
  'ws-handshake',
  'tls-handshake',
  'http-malformed',
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** The relay's bound servers and the authorities they make its own. */
export class Listeners {
  /** Host put in Use-Path URIs (an IPv6 address in brackets). */
  readonly publicHost: string;
  private readonly bound: BoundListener[] = [];
  private readonly authorities = new Set<string>();
  /** Every socket the servers accepted and that is still open, a relay connection yet or not. */
  private readonly sockets = new Set<Socket>();
  /** Open accepted sockets by {@link addressKey} (kept only with a per-IP limit). */
  private readonly perIp = new Map<string, number>();
  /**
   * Accepted TLS, WS and WSS sockets whose handshake is not done, by {@link handshakeKey}, with the
   * timer that destroys them. Neither Node's TLS handshake timeout (it starts with the ClientHello) nor
   * the relay's probation (it starts with the connection) covers a socket that sends nothing.
   */
  private readonly handshaking = new Map<string, { timer: NodeJS.Timeout; acceptedAt: number }>();
  /** What TLS and WSS listeners present; replaced by {@link setTlsCredentials}. */
  private credentials: TlsCredentials | undefined;
  /** `--relay-ca`: the CAs a TLS listener checks client certificates against; replaced by {@link setRelayCa}. */
  private relayCa: RelayCa | undefined;
  /** HTTP proxies whose X-Forwarded-For names a WebSocket client (`--trusted-proxies`). */
  private readonly trusted: TrustedProxies;
  /** Proxies whose TCP and TLS connections start with a PROXY header (`--proxy-protocol-from`). */
  private readonly proxyFrom: TrustedProxies;
  /**
   * Sockets whose PROXY header was read, by {@link handshakeKey}: the client it named (undefined for a
   * LOCAL header) and when the socket was accepted, until the TCP connection or TLS socket made on it
   * takes its entry (or the socket closes).
   */
  private readonly proxied = new Map<string, { client: string | undefined; acceptedAt: number }>();

  constructor(private readonly opts: ListenersOptions) {
    this.publicHost = uriHost(opts.publicHost);
    this.trusted = new TrustedProxies(opts.trustedProxies);
    this.proxyFrom = new TrustedProxies(opts.proxyProtocolFrom);
    const t = opts.tls;
    this.credentials =
      t?.cert !== undefined && t.key !== undefined ? { cert: t.cert, key: t.key } : undefined;
    this.relayCa = t?.relayCa;
  }

  /** Starts every listener: TCP, then TLS, then WebSocket; resolves when all are bound. */
  async listen(): Promise<void> {
    for (const spec of this.opts.listen) {
      const server = createServer((socket) => {
        if (socket.destroyed) return;
        const [remote, via, acceptedAt] = this.clientOf(socket);
        this.opts.onConnection(new StreamConnection(socket, 'tcp', remote, via), acceptedAt);
      });
      await this.bind(server, 'tcp', spec);
    }
    if (this.opts.tlsListen.length > 0) {
      const t = this.credentials;
      if (t === undefined) throw new Error('TLS listeners need a certificate and key');
      const tlsOpts: TlsOptions = { cert: t.cert, key: t.key, minVersion: MIN_TLS_VERSION };
      // Digest §2.5: with --relay-ca, ask for a certificate; one that does not verify (or none) leaves the
      // peer a client, authenticated by Digest as any other.
      const relayCa = this.relayCa;
      if (relayCa !== undefined)
        Object.assign(tlsOpts, { requestCert: true, rejectUnauthorized: false, ca: relayCa });
      for (const spec of this.opts.tlsListen) {
        const server = createTlsServer(tlsOpts, (socket) => {
          const [remote, via] = this.clientOf(socket);
          this.handOver(new StreamConnection(socket, 'tls', remote, via));
        });
        server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) =>
          this.handshakeFailed('tls', 'tls-handshake', err, socket),
        );
        await this.bind(server, 'tls', spec);
      }
    }
    await this.listenWebSocket();
  }

  /**
   * Presents `creds` on every TLS and WSS listener from the next handshake on; connections already up
   * keep the session they have. Throws, changing nothing, when the certificate and key do not make a
   * usable pair.
   */
  setTlsCredentials(creds: TlsCredentials): void {
    checkTlsPair(creds);
    this.credentials = { cert: creds.cert, key: creds.key };
    this.applySecureContexts();
  }

  /** True when the TLS listeners ask for client certificates (`--relay-ca` given at start). */
  get asksForCertificates(): boolean {
    return this.relayCa !== undefined;
  }

  /**
   * Checks client certificates of TLS listeners against `ca` from the next handshake on (SIGHUP reload of
   * `--relay-ca`). Only where the relay was started with one: a listener asks for certificates or not
   * from its start.
   */
  setRelayCa(ca: RelayCa): void {
    if (this.relayCa === undefined) return;
    this.relayCa = ca;
    this.applySecureContexts();
  }

  private applySecureContexts(): void {
    const creds = this.credentials;
    if (creds === undefined) return;
    for (const l of this.bound) {
      // https.Server (WSS) is a tls.Server too.
      if (isSecure(l.kind))
        (l.server as TlsServer).setSecureContext({
          cert: creds.cert,
          key: creds.key,
          minVersion: MIN_TLS_VERSION,
          ...(l.kind === 'tls' && this.relayCa !== undefined && { ca: this.relayCa }),
        });
    }
  }

  /**
   * The certificate the TLS and WSS listeners present, or null when none is bound (or the certificate
   * cannot be read).
   */
  tlsCertificate(): TlsCertificateInfo | null {
    const cert = this.credentials?.cert;
    if (cert === undefined || !this.bound.some((l) => isSecure(l.kind))) return null;
    try {
      const x = new X509Certificate(cert); // the first certificate of a PEM chain
      return { subject: x.subject, notAfter: Date.parse(x.validTo), fingerprint256: x.fingerprint256 };
    } catch {
      return null;
    }
  }

  /** The bound listeners (ports resolved). */
  addresses(): RelayAddress[] {
    return this.bound.map((l) => ({ kind: l.kind, host: l.host, port: l.port }));
  }

  /** True when `uri` names this relay (host and port of one of its authorities). */
  isOurs(uri: MsrpUri): boolean {
    // RFC 4975 §6.1 host comparison: an IPv6 literal in any spelling ([::1], [0:0:0:0:0:0:0:1]) is one.
    return uri.port !== undefined && this.authorities.has(`${hostKey(uri.host)}:${uri.port}`);
  }

  /**
   * The listener written in Use-Path: the TCP/TLS listener the client came in on; for a WebSocket
   * client a TCP/TLS listener of the same security (RFC 7977 §5.2.2, §8.1.2: the Use-Path URI is a `;tcp`
   * URI, what the far end connects to), else any TCP/TLS one, else the first listener.
   */
  useListener(peer: Peer): BoundListener | undefined {
    const kind = peer.conn.kind;
    const stream = (l: BoundListener): boolean => l.kind === 'tcp' || l.kind === 'tls';
    const own = this.bound.find((l) => stream(l) && l.kind === kind && l.port === peer.conn.localPort);
    if (own !== undefined) return own;
    const secure = isSecure(kind);
    return (
      this.bound.find((l) => l.kind === (secure ? 'tls' : 'tcp')) ?? this.bound.find(stream) ?? this.bound[0]
    );
  }

  /**
   * Stops accepting now; resolves once every server has closed, that is once every connection it
   * accepted is gone (`server.close()`).
   */
  close(): Promise<void> {
    return Promise.all(
      this.bound.map((l) => new Promise<void>((resolve) => l.server.close(() => resolve()))),
    ).then(() => undefined);
  }

  private async bind(server: Server, kind: TransportKind, spec: ListenSpec): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: Error) => reject(listenError(err, kind, spec)));
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
    const { wsListen, wssListen, wsAllowedOrigins: allowedOrigins, onHttpRequest } = this.opts;
    const t = this.credentials;
    if (wssListen.length > 0 && t === undefined) throw new Error('WSS listeners need a certificate and key');
    const specs = [
      ...wsListen.map((spec) => ({ spec, secure: false })),
      ...wssListen.map((spec) => ({ spec, secure: true })),
    ];
    for (const { spec, secure } of specs) {
      const l = await listenWs({
        host: spec.host,
        port: spec.port,
        tls: secure ? t : undefined,
        allowedOrigins,
        maxPayload: this.opts.wsMaxPayload,
        clientOf: (req) => this.forwardedClientOf(req, secure ? 'wss' : 'ws'),
        onConnection: (conn) => this.handOver(conn),
        onRefused: (reason, req, status, message) => {
          const kind = secure ? 'wss' : 'ws';
          const remote = formatRemote(req.socket.remoteAddress, req.socket.remotePort);
          // One line per refused upgrade, as a connection gets its opened and closed lines.
          this.opts.log.info(
            { remote, transport: kind, status, err: clip(message) },
            'WebSocket upgrade refused',
          );
          const why =
            reason === 'origin' ? 'ws-origin' : reason === 'subprotocol' ? 'ws-subprotocol' : 'ws-handshake';
          this.opts.onRefused(kind, why, remote);
        },
        onHttpRequest,
        onHandshakeFailed: (reason, err, socket) =>
          this.handshakeFailed(secure ? 'wss' : 'ws', reason, err, socket),
      }).catch((err: Error) => {
        throw listenError(err, secure ? 'wss' : 'ws', spec);
      });
      this.register(l.server, l.kind, spec, l.port);
    }
  }

  /**
   * A TLS handshake that failed (garbage, plain HTTP, an old protocol version, no shared cipher) or a
   * malformed HTTP request on a WebSocket listener: counted as a refusal and logged at debug, since a
   * scanner makes one per connection (TLS/WS audit: they were neither).
   */
  private handshakeFailed(
    kind: TransportKind,
    reason: 'tls-handshake' | 'http-malformed',
    err: NodeJS.ErrnoException,
    socket: Duplex,
  ): void {
    // A connect-and-close (a health check) or our own handshake timeout: not a failed handshake.
    if (err.code === 'ECONNRESET') return;
    const s = socket as Partial<Socket>;
    const remote = formatRemote(s.remoteAddress, s.remotePort);
    this.opts.log.debug(
      { remote, transport: kind, reason, err: clip(err.code ?? err.message) },
      'handshake failed',
    );
    this.opts.onRefused(kind, reason, remote);
  }

  /** Sockets accepted on TLS, WS and WSS listeners whose handshake is not done yet. */
  get handshakesPending(): number {
    return this.handshaking.size;
  }

  /** A TLS or WebSocket connection is up: its socket's handshake timer stops, and the relay takes it. */
  private handOver(conn: Connection): void {
    const pending =
      this.handshaking.size === 0
        ? ''
        : handshakeKey(conn.localAddress, conn.localPort, conn.via ?? conn.remote);
    const entry = this.handshaking.get(pending);
    if (entry !== undefined) {
      clearTimeout(entry.timer);
      this.handshaking.delete(pending);
    }
    this.opts.onConnection(conn, entry?.acceptedAt ?? Date.now());
  }

  /**
   * Lets an accepted socket in (true), or closes it when a connection limit is reached; an admitted
   * socket is tracked until it closes. A proxy's sockets carry many clients: they count toward
   * `maxConnections` only, and the per-IP limit counts the client each names ({@link countClient}).
   */
  private admit(socket: Socket, kind: TransportKind): boolean {
    const { maxConnections } = this.opts;
    const maxConnectionsPerIp = this.isProxy(socket, kind) ? 0 : this.opts.maxConnectionsPerIp;
    let reason: RefusalReason | null = null;
    let key = '';
    if (maxConnections > 0 && this.sockets.size >= maxConnections) reason = 'max-connections';
    else if (maxConnectionsPerIp > 0) {
      key = addressKey(socket.remoteAddress);
      if ((this.perIp.get(key) ?? 0) >= maxConnectionsPerIp) reason = 'max-connections-per-ip';
    }
    if (reason !== null) {
      const remote = formatRemote(socket.remoteAddress, socket.remotePort); // gone once destroyed
      socket.destroy(); // before the server's own listener: no TLS or HTTP octet is read or written
      this.opts.onRefused(kind, reason, remote);
      return false;
    }
    this.sockets.add(socket);
    if (maxConnectionsPerIp > 0) this.perIp.set(key, (this.perIp.get(key) ?? 0) + 1);
    const pending =
      kind === 'tcp'
        ? null
        : handshakeKey(
            socket.localAddress,
            socket.localPort,
            formatRemote(socket.remoteAddress, socket.remotePort),
          );
    let timer: NodeJS.Timeout | null = null;
    if (pending !== null) {
      timer = setTimeout(() => {
        this.handshaking.delete(pending);
        socket.destroy();
        this.opts.onHandshakeTimeout(kind);
      }, this.opts.handshakeTimeoutMs);
      timer.unref();
      this.handshaking.set(pending, { timer, acceptedAt: Date.now() });
    }
    socket.once('close', () => {
      if (timer !== null) {
        clearTimeout(timer);
        // Only this socket's own entry (handOver may have removed it already).
        if (this.handshaking.get(pending!)?.timer === timer) this.handshaking.delete(pending!);
      }
      this.sockets.delete(socket);
      if (maxConnectionsPerIp > 0) this.releaseIp(key);
    });
    return true;
  }

  /** True when `socket` comes from a proxy whose word on the client this listener kind takes. */
  private isProxy(socket: Socket, kind: TransportKind): boolean {
    const list = kind === 'tcp' || kind === 'tls' ? this.proxyFrom : this.trusted;
    return list.has(socket.remoteAddress);
  }

  /**
   * Counts a client a proxy named toward `maxConnectionsPerIp` until `socket` closes; false (and the
   * refusal reported) when that client is at the limit already.
   */
  private countClient(socket: Socket, kind: TransportKind, address: string, port: number): boolean {
    const limit = this.opts.maxConnectionsPerIp;
    if (limit === 0) return true;
    const key = addressKey(address);
    if ((this.perIp.get(key) ?? 0) >= limit) {
      this.opts.onRefused(kind, 'max-connections-per-ip', formatRemote(address, port));
      return false;
    }
    this.perIp.set(key, (this.perIp.get(key) ?? 0) + 1);
    socket.once('close', () => this.releaseIp(key));
    return true;
  }

  /** One connection fewer for a per-IP key ({@link admit}, {@link countClient}). */
  private releaseIp(key: string): void {
    const left = (this.perIp.get(key) ?? 1) - 1;
    if (left > 0) this.perIp.set(key, left);
    else this.perIp.delete(key);
  }

  /**
   * The client of a WebSocket upgrade: from X-Forwarded-For when the request comes from a trusted
   * proxy (undefined: the socket's own peer), or null to refuse it (that client is at the per-IP limit).
   */
  private forwardedClientOf(req: IncomingMessage, kind: TransportKind): string | undefined | null {
    const socket = req.socket;
    if (!this.trusted.has(socket.remoteAddress)) return undefined;
    const client = forwardedClient(req.headers['x-forwarded-for'], this.trusted);
    if (client === undefined) return undefined;
    return this.countClient(socket, kind, client, 0) ? client : null;
  }

  /**
   * Reads the PROXY header a connection from a `--proxy-protocol-from` address must start with, keeps
   * the client it names for {@link clientOf}, then hands the socket to the server's own listeners. No
   * header, a malformed one, or none within the handshake time closes the socket.
   */
  private readProxied(socket: Socket, kind: TransportKind, proceed: () => void): void {
    const via = formatRemote(socket.remoteAddress, socket.remotePort);
    const key = handshakeKey(socket.localAddress, socket.localPort, via);
    const acceptedAt = Date.now();
    // On TLS the handshake timer (admit) bounds the header too: one deadline, one count of it.
    readProxyHeader(socket, kind === 'tls' ? null : this.opts.handshakeTimeoutMs).then(
      (source) => {
        if (socket.destroyed) return;
        if (source !== null && !this.countClient(socket, kind, source.address, source.port)) {
          socket.destroy();
          return;
        }
        const client = source === null ? undefined : formatRemote(source.address, source.port);
        this.proxied.set(key, { client, acceptedAt });
        socket.once('close', () => this.proxied.delete(key)); // an entry nothing took
        proceed();
        // Paused by the header reader. The TCP connection is attached by now; TLS reads what was put
        // back itself (resuming would hand those octets to no one).
        if (kind === 'tcp') socket.resume();
      },
      (err: ProxyHeaderError) => {
        // A health check's connect-and-close is not worth a line at info.
        const fields = { remote: via, transport: kind, err: err.message };
        if (err.silent) this.opts.log.debug(fields, 'PROXY header refused: closed');
        else {
          this.opts.log.info(fields, 'PROXY header refused: closed');
          this.opts.onRefused(kind, 'proxy-header', via);
        }
        socket.destroy();
      },
    );
  }

  /**
   * `[remote, via, acceptedAt]` for a connection on `socket`: the client a PROXY header named and the
   * proxy, or undefined for both (the socket's own peer, or a LOCAL header); and when the socket was
   * accepted (now, when no header came first). Takes the entry.
   */
  private clientOf(socket: Socket): [string | undefined, string | undefined, number] {
    if (this.proxied.size === 0) return [undefined, undefined, Date.now()];
    const via = formatRemote(socket.remoteAddress, socket.remotePort);
    const key = handshakeKey(socket.localAddress, socket.localPort, via);
    const entry = this.proxied.get(key);
    if (entry === undefined) return [undefined, undefined, Date.now()];
    this.proxied.delete(key);
    return entry.client === undefined
      ? [undefined, undefined, entry.acceptedAt]
      : [entry.client, via, entry.acceptedAt];
  }

  /**
   * Destroys the accepted sockets that are still open: those that never became relay connections (a TLS
   * handshake or a WebSocket upgrade that never came) would otherwise keep {@link close} from resolving.
   */
  destroySockets(): void {
    for (const s of this.sockets) s.destroy();
    this.sockets.clear();
  }

  private register(server: Server, kind: TransportKind, spec: ListenSpec, port: number): void {
    server.on('error', (err) => this.opts.log.error({ err: String(err), kind }, 'listener error'));
    // The server's own listener (the relay's for TCP, the TLS or HTTP machinery otherwise) runs only for
    // a socket the connection gate admits; on TCP and TLS from a --proxy-protocol-from address, after
    // its PROXY header.
    const own = server.listeners('connection') as Array<(socket: Socket) => void>;
    server.removeAllListeners('connection');
    server.on('connection', (socket: Socket) => {
      // Reset before it was accepted (a balancer's health check ends with RST): no peer to name, nothing
      // to serve or log.
      if (socket.remoteAddress === undefined) {
        socket.destroy();
        return;
      }
      if (!this.admit(socket, kind)) return;
      const proceed = (): void => {
        for (const listener of own) listener.call(server, socket);
      };
      if ((kind === 'tcp' || kind === 'tls') && this.proxyFrom.has(socket.remoteAddress))
        this.readProxied(socket, kind, proceed);
      else proceed();
    });
    this.bound.push({ kind, server, host: spec.host, port });
    this.authorities.add(`${hostKey(this.publicHost)}:${port}`);
    this.authorities.add(`${hostKey(uriHost(spec.host))}:${port}`);
  }
}

/**
 * Names one accepted TCP connection by its four-tuple (local address and port, remote address and port
 * as {@link formatRemote} spells them): the same for the raw socket and for the TLS socket or WebSocket made on
 * it, and unique among live connections.
 */
function handshakeKey(
  localAddress: string | undefined,
  localPort: number | undefined,
  remote: string,
): string {
  return `${localAddress ?? ''}|${localPort ?? 0}|${remote}`;
}

/**
 * Throws unless `creds` make a usable pair: PEM that OpenSSL loads, and a key that is the certificate's
 * own. OpenSSL compares the two only when they are of the same type: an EC certificate with an RSA key
 * loads, then fails every handshake, hence the explicit check.
 */
export function checkTlsPair(creds: TlsCredentials): void {
  createSecureContext({ cert: creds.cert, key: creds.key, minVersion: MIN_TLS_VERSION });
  if (!new X509Certificate(creds.cert).checkPrivateKey(createPrivateKey(creds.key)))
    throw Object.assign(new Error("the key is not the certificate's own private key"), {
      code: 'ERR_KEY_MISMATCH',
    });
}

/** True for the transports that present the TLS certificate (TLS and WSS). */
function isSecure(kind: TransportKind): boolean {
  return kind === 'tls' || kind === 'wss';
}

/**
 * What a per-IP limit counts by: an IPv4 address as it is (IPv4-mapped IPv6 and the NAT64 well-known
 * prefix `64:ff9b::/96` included: each stands for one IPv4 host), any other IPv6 address by its /64
 * prefix (a host is given a whole /64, so its addresses count together), lower-case hex.
 */
export function addressKey(address: string | undefined): string {
  if (address === undefined) return '';
  const bare = address.replace(/%.*$/, '').toLowerCase(); // zone id (fe80::1%eth0)
  if (!bare.includes(':')) return bare;
  const groups = ipv6Groups(bare);
  if (groups === null) return bare;
  const v4 = (): string => [groups[6]! >> 8, groups[6]! & 0xff, groups[7]! >> 8, groups[7]! & 0xff].join('.');
  const zero = (from: number, to: number): boolean => groups.slice(from, to).every((g) => g === 0);
  if (zero(0, 5) && groups[5] === 0xffff) return v4(); // ::ffff:a.b.c.d
  if (groups[0] === 0x64 && groups[1] === 0xff9b && zero(2, 6)) return v4(); // 64:ff9b::a.b.c.d
  return groups
    .slice(0, 4)
    .map((g) => g.toString(16))
    .join(':');
}

/** The eight 16-bit groups of an IPv6 address (`::` expanded, a dotted IPv4 tail read), or null. */
function ipv6Groups(text: string): number[] | null {
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (g.includes('.')) {
        const b = g.split('.').map(Number);
        if (b.length !== 4 || b.some((x) => !(x >= 0 && x <= 255 && Number.isInteger(x)))) return null;
        out.push((b[0]! << 8) | b[1]!, (b[2]! << 8) | b[3]!);
      } else if (/^[0-9a-f]{1,4}$/.test(g)) out.push(parseInt(g, 16));
      else return null;
    }
    return out;
  };
  const left = parse(halves[0]!);
  const right = halves.length === 2 ? parse(halves[1]!) : [];
  if (left === null || right === null) return null;
  const missing = 8 - left.length - right.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  return [...left, ...Array<number>(missing).fill(0), ...right];
}

/** A listener that could not bind: which one, and why (`reason`; `code`, e.g. EADDRINUSE). */
export interface ListenError extends Error {
  code?: string;
  reason: string;
  listener: { kind: TransportKind; host: string; port: number };
}

function listenError(err: NodeJS.ErrnoException, kind: TransportKind, spec: ListenSpec): ListenError {
  const reason = err.code === 'EADDRINUSE' ? 'address already in use' : err.message;
  const out = new Error(`${kind} listener ${uriHost(spec.host)}:${spec.port}: ${reason}`) as ListenError;
  if (err.code !== undefined) out.code = err.code;
  out.reason = reason;
  out.listener = { kind, host: spec.host, port: spec.port };
  return out;
}
