/**
 * An MSRP endpoint (RFC 4975 client side, RFC 4976 relay client): connects to a relay over TCP, TLS or
 * WebSocket (RFC 7977: one frame per message), authenticates with Digest, builds To-Paths from its
 * Use-Path, sends messages cut into chunks, answers incoming SENDs, reassembles messages and surfaces
 * REPORTs. Used by the tests and the load tester; it depends on nothing of the relay.
 */
import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { WebSocket, type ClientOptions, type RawData } from 'ws';
import type { ContinuationFlag } from '../constants.js';
import type { MsrpError } from '../errors.js';
import { createError, ErrorCodes } from '../errors.js';
import { uncorkAfterTurn } from '../io/uncork.js';
import { FrameCollector, type CollectedError } from '../msrp/frame-collector.js';
import { getHeader, getHeaders, type Frame, type Header } from '../msrp/message.js';
import { parseByteRange, type ByteRange } from '../msrp/headers.js';
import {
  formatDigestCredentials,
  parseDigestChallenge,
  splitQopOptions,
  type DigestChallenge,
} from '../msrp/digest.js';
import { MsrpParser } from '../msrp/parser.js';
import {
  frameRequest,
  randomId,
  serializeRequest,
  serializeResponse,
  type FramedRequest,
  type RequestSpec,
} from '../msrp/serializer.js';
import { parsePath } from '../msrp/uri.js';
import { IntervalSet } from '../reports/tracker.js';
import { StringMap } from '../util/string-map.js';

/** Where and how to connect. */
export interface EndpointOptions {
  host: string;
  port: number;
  /** Connect with TLS (msrps); options go to `tls.connect`. */
  tls?: ConnectionOptions;
  /**
   * Connect over WebSocket instead (RFC 7977); `host`, `port` and `tls` are then ignored. `protocols`
   * defaults to `['msrp']`; `options` go to the `ws` client (`origin`, `ca`, `headers`...).
   */
  ws?: { url: string; protocols?: string[]; options?: ClientOptions };
  /**
   * Octets written first on the TCP connection, before any TLS or MSRP octet: a PROXY protocol header,
   * as a load balancer in front of the relay would send (tests of `--proxy-protocol-from`).
   */
  proxyHeader?: Buffer;
  /**
   * This endpoint's session URI; default `msrp://<random>.invalid:2855/<random>;tcp`, or `;ws` over
   * WebSocket (`msrps` for `wss://`).
   */
  uri?: string;
  /**
   * Decides the response to an incoming SEND with Failure-Report yes/partial: a status code, or null to
   * stay silent. Default 200.
   */
  respond?: (frame: Frame) => number | null;
  /**
   * Largest message (and chunk) accepted (default 64 MiB): a chunk of a larger one is answered 413 and
   * the message dropped (RFC 4975 §7.3.1), unless it is a count-only message (`keepBodiesUpTo`); a
   * single chunk larger than this is answered 413 even then.
   */
  maxMessageBytes?: number;
  /**
   * Messages larger than this are not kept: their octets are counted and `message` is emitted with an
   * empty `body` and the `size` received (load tests of file transfers). Default: keep every body.
   */
  keepBodiesUpTo?: number;
  /**
   * Incoming messages being reassembled at once (default 1,000): a chunk of a new one past it drops the
   * oldest unfinished one, so a peer opening Message-IDs it never finishes holds bounded memory. A
   * dropped message is lost silently (its chunks were answered 200): a receiver that expects more
   * interleaved messages than this (the load tester: `--concurrency` above it) must raise it.
   */
  maxOpenMessages?: number;
  /**
   * Request methods besides SEND and REPORT that the application answers itself (from the `request`
   * event). Any other method is answered 501 (RFC 4975 §10), unless its Failure-Report is `no`.
   */
  methods?: readonly string[];
}

/** A reassembled incoming message. */
export interface ReceivedMessage {
  messageId: string;
  contentType: string | undefined;
  /** The message; empty when it was larger than `keepBodiesUpTo` (then only `size` tells). */
  body: Buffer;
  /** Octets received. */
  size: number;
  /** From-Path of the last chunk, as received. */
  fromPath: string;
  headers: Header[];
}

/** How to send one message. */
export interface SendOptions {
  toPath: string;
  body: Buffer | string;
  contentType?: string;
  messageId?: string;
  /** Body octets per chunk (default: the whole message in one chunk). */
  chunkSize?: number;
  successReport?: boolean;
  failureReport?: 'yes' | 'no' | 'partial';
  /** MIME headers written before Content-Type on every chunk. */
  mimeHeaders?: Header[];
  /** With Failure-Report yes, how long each chunk waits for its response (default 35 s). */
  timeoutMs?: number;
}

interface Pending {
  resolve(frame: Frame): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

interface Assembly {
  /** Chunks kept, as `[first octet, body]` in arrival order: a re-sent range overwrites what came before. */
  parts: Array<[number, Buffer]>;
  total: number | null;
  /** Octets received, each counted once however often it came (RFC 4975 §7.3.1: chunks may overlap). */
  received: IntervalSet;
  /** False once the message is known to be larger than `keepBodiesUpTo`: octets counted, not kept. */
  keep: boolean;
  /** Octets in `parts`, re-sent ones counted again. */
  held: number;
  /** A chunk was answered with something else than 200 (or not at all): no success REPORT. */
  refused: boolean;
}

const EMPTY = Buffer.alloc(0);

/**
 * An MSRP endpoint. Events: `message` (ReceivedMessage), `report` (Frame), `request` (every incoming
 * request Frame), `close`.
 */
export class MsrpEndpoint extends EventEmitter {
  /** This endpoint's session URI (the last entry of its a=path). */
  readonly uri: string;
  /** Use-Path URIs granted by AUTH, outermost first. */
  usePath: string[] = [];
  /** The byte stream: the TCP/TLS socket, or the socket under the WebSocket. */
  readonly socket: Socket;
  /** The WebSocket when connected over one, else null. */
  readonly ws: WebSocket | null;
  private readonly parser: MsrpParser;
  private readonly pending = new StringMap<Pending>();
  private readonly assemblies = new Map<string, Assembly>();
  private readonly respond: (frame: Frame) => number | null;
  private readonly maxMessageBytes: number;
  private readonly keepBodiesUpTo: number;
  private readonly maxOpenMessages: number;
  private readonly methods: ReadonlySet<string>;
  private closed = false;
  private corked = false;
  /** The pending {@link whenWritable} promise. */
  private drainWait: Promise<void> | null = null;
  /** Parse errors seen (a conforming relay produces none). */
  readonly errors: CollectedError[] = [];

  private constructor(socket: Socket, options: EndpointOptions, ws: WebSocket | null) {
    super();
    this.socket = socket;
    this.ws = ws;
    const scheme = options.tls || ws?.url.startsWith('wss:') ? 'msrps' : 'msrp';
    this.uri =
      options.uri ??
      `${scheme}://${randomId(10).toLowerCase()}.invalid:2855/${randomId(16)};${ws ? 'ws' : 'tcp'}`;
    this.respond = options.respond ?? (() => 200);
    this.maxMessageBytes = options.maxMessageBytes ?? 64 * 1024 * 1024;
    this.keepBodiesUpTo = options.keepBodiesUpTo ?? Infinity;
    this.maxOpenMessages = Math.max(1, options.maxOpenMessages ?? 1000);
    this.methods = new Set(['SEND', 'REPORT', ...(options.methods ?? [])]);
    this.parser = new MsrpParser(
      new FrameCollector(
        (f) => this.onFrame(f),
        (e) => {
          this.errors.push(e);
          this.answerParseError(e);
        },
      ),
      { maxChunkBytes: this.maxMessageBytes, maxOtherBodyBytes: 1024 * 1024 },
    );
    socket.setNoDelay(true);
    if (ws === null) {
      socket.on('data', (d: Buffer) => {
        this.parser.write(d);
        // A byte stream the parser lost its place in (recorded in `errors`) cannot be read on: closed,
        // so requests waiting on it fail now instead of at their timeouts. The responses written for the
        // frames before the bad octets leave first (a destroy would drop them from the corked buffer).
        if (this.parser.failed && !socket.writableEnded) {
          if (this.corked) this.uncork();
          socket.end(() => socket.destroy());
          setTimeout(() => socket.destroy(), 1000).unref();
        }
      });
    } else ws.on('message', (d: RawData) => this.onWsMessage(d));
    socket.on('error', () => {});
    ws?.on('error', () => {});
    (ws ?? socket).on('close', () => {
      this.closed = true;
      for (const p of this.pending.values()) {
        clearTimeout(p.timer);
        p.reject(new Error('connection closed'));
      }
      this.pending.clear();
      this.emit('close');
    });
  }

  /** Connects and resolves once the transport is up (for WebSocket: the handshake agreed `msrp`). */
  static connect(options: EndpointOptions): Promise<MsrpEndpoint> {
    if (options.ws !== undefined) return MsrpEndpoint.connectWs(options, options.ws);
    return new Promise((resolve, reject) => {
      const target = { host: options.host, port: options.port };
      let raw: Socket | undefined;
      if (options.proxyHeader !== undefined) {
        raw = netConnect(target);
        raw.write(options.proxyHeader);
      }
      const socket = options.tls
        ? tlsConnect({ ...target, ...options.tls, ...(raw === undefined ? {} : { socket: raw }) })
        : (raw ?? netConnect(target));
      const ready = options.tls ? 'secureConnect' : 'connect';
      socket.once(ready, () => {
        socket.off('error', reject);
        resolve(new MsrpEndpoint(socket, options, null));
      });
      socket.once('error', reject);
    });
  }

  /** Opens a WebSocket offering `msrp` and resolves once the relay agreed to it (RFC 7977 §4.1). */
  private static connectWs(
    options: EndpointOptions,
    ws: NonNullable<EndpointOptions['ws']>,
  ): Promise<MsrpEndpoint> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(ws.url, ws.protocols ?? ['msrp'], ws.options);
      let raw: Socket | null = null;
      socket.once('upgrade', (res: IncomingMessage) => (raw = res.socket));
      socket.once('open', () => {
        socket.off('error', reject);
        // RFC 7977 §4.1: a 101 without the msrp subprotocol means MSRP was not agreed.
        if (socket.protocol !== 'msrp') {
          socket.terminate();
          reject(new Error(`WebSocket subprotocol "${socket.protocol}" is not msrp`));
          return;
        }
        resolve(new MsrpEndpoint(raw!, options, socket));
      });
      socket.once('error', reject);
    });
  }

  /** True once the connection has closed. */
  get isClosed(): boolean {
    return this.closed;
  }

  /** The a=path to advertise: reverse(Use-Path) then this endpoint's URI (RFC 4976 §5.2). */
  get path(): string[] {
    return [...this.usePath].reverse().concat(this.uri);
  }

  /** To-Path toward a peer that advertised `peerPath` (RFC 4976 §5.2: own relays first). */
  toPathFor(peerPath: readonly string[]): string {
    return [...this.usePath, ...peerPath].join(' ');
  }

  /**
   * AUTH with Digest (RFC 4976 §5.1): sends AUTH, answers the 401 challenge, and stores the Use-Path.
   * Resolves with the final response (200 or the refusal); each request waits `timeoutMs` (default 10 s)
   * for its response. Throws an {@link AuthError} for a challenge it cannot answer.
   */
  async auth(opts: {
    relayUri: string;
    username?: string;
    password?: string;
    expires?: number;
    timeoutMs?: number;
  }): Promise<Frame> {
    const extra: Header[] = opts.expires === undefined ? [] : [['Expires', String(opts.expires)]];
    let res = await this.request(
      {
        method: 'AUTH',
        toPath: opts.relayUri,
        fromPath: this.uri,
        headers: extra,
      },
      opts.timeoutMs,
    );
    // A second 401 with `stale=true` (digest §2.2: the nonce expired between the two) is answered once more.
    for (let tries = 0; tries < 2; tries++) {
      if (res.kind !== 'response' || res.statusCode !== 401 || opts.username === undefined) break;
      const challenges = getHeaders(res.headers, 'www-authenticate');
      if (tries > 0 && !challenges.some(isStale)) break;
      const authorization = answerChallenges(challenges, opts.username, opts.password ?? '', opts.relayUri);
      res = await this.request(
        {
          method: 'AUTH',
          toPath: opts.relayUri,
          fromPath: this.uri,
          headers: [['Authorization', authorization], ...extra],
        },
        opts.timeoutMs,
      );
    }
    if (res.kind === 'response' && res.statusCode === 200) {
      const usePath = getHeader(res.headers, 'use-path') ?? '';
      // RFC 4976 §5.1: the Use-Path is the URI list the client puts first in its To-Paths; one that does
      // not parse would only make every later SEND fail (a relay misconfigured to write `msrp://msrp://`).
      if (usePath.trim() === '') throw new AuthError('AUTH 200 without Use-Path', '');
      try {
        parsePath(usePath);
      } catch {
        throw new AuthError('AUTH 200 with an invalid Use-Path', usePath.slice(0, 200));
      }
      this.usePath = usePath.trim().split(/\s+/);
    }
    return res;
  }

  /** Sends a request and resolves with its response (rejects after `timeoutMs`). */
  request(spec: RequestSpec, timeoutMs = 10_000): Promise<Frame> {
    // Nothing can answer on a closed connection: fail now, not after the timeout.
    if (this.closed) return Promise.reject(new Error(`connection closed before ${spec.method}`));
    // The serializer may re-draw the id (its end-line must not occur in the body): use the one framed.
    const framed = frameRequest(spec);
    const tid = framed.transactionId;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(tid);
        reject(new Error(`no response to ${spec.method} ${tid}`));
      }, timeoutMs);
      this.pending.set(tid, { resolve, reject, timer });
      this.writeFramed(framed);
    });
  }

  /** Writes a framed request: head, body and tail without joining them (one WS message over WebSocket). */
  writeFramed(f: FramedRequest): boolean {
    if (this.ws !== null || f.body === null) {
      return this.write(
        f.body === null ? Buffer.concat([f.head, f.tail]) : Buffer.concat([f.head, f.body, f.tail]),
      );
    }
    this.write(f.head);
    this.write(f.body);
    return this.write(f.tail);
  }

  /**
   * Writes raw bytes (tests use this for malformed input); over WebSocket they form one binary message,
   * so every frame goes out as a message of its own (RFC 7977 §5.1). False when the buffer is full.
   */
  write(bytes: Buffer): boolean {
    // After end() (close(), or a stream that cannot be framed) a write would error and destroy the
    // socket before what is queued has left.
    if (this.closed || this.socket.writableEnded) return false;
    if (this.ws === null) {
      // Corked until the turn's I/O is handled: every frame written meanwhile leaves in one writev.
      if (!this.corked) {
        this.corked = true;
        this.socket.cork();
        uncorkAfterTurn(this);
      }
      return this.socket.write(bytes);
    }
    this.ws.send(bytes, { binary: true });
    return !this.socket.writableNeedDrain;
  }

  /** @internal Ends the batch {@link write} started. */
  uncork(): void {
    this.corked = false;
    this.socket.uncork();
  }

  /** Sends bytes as one WebSocket text message (RFC 7977 §4.2: the relay treats it as octets). */
  writeText(bytes: Buffer): void {
    if (this.ws === null) throw new Error('writeText needs a WebSocket endpoint');
    if (!this.closed) this.ws.send(bytes, { binary: false });
  }

  /**
   * Sends a message in chunks of `chunkSize` with exact Byte-Ranges. With Failure-Report yes it waits
   * for each chunk's response and resolves with their status codes; otherwise it resolves at once.
   * A chunk answered 413 ends the message (RFC 4975 §7.3.1): no further chunk is written, and
   * `statuses` holds only the chunks written.
   */
  async send(opts: SendOptions): Promise<{ messageId: string; statuses: number[] }> {
    const body = typeof opts.body === 'string' ? Buffer.from(opts.body) : opts.body;
    const messageId = opts.messageId ?? randomId(12);
    const size = Math.max(1, opts.chunkSize ?? (body.length || 1));
    const fr = opts.failureReport ?? 'yes';
    const waits: Array<Promise<Frame>> = [];
    // A chunk that fails (timeout, close) while the loop waits for 'drain' ends the send at once; its
    // rejection is handled from the start, as an unhandled one would end the process.
    let stop!: (err: Error) => void;
    const stopped = new Promise<never>((_, reject) => (stop = reject));
    stopped.catch(() => {});
    // RFC 4975 §7.3.1: after a 413 the sender must not send further chunks of the message.
    let refused = false;
    let offset = 0;
    do {
      const piece = body.subarray(offset, offset + size);
      const last = offset + piece.length >= body.length;
      const headers: Header[] = [
        ['Message-ID', messageId],
        ['Byte-Range', `${offset + 1}-${offset + piece.length}/${body.length}`],
      ];
      if (opts.successReport) headers.push(['Success-Report', 'yes']);
      if (fr !== 'yes') headers.push(['Failure-Report', fr]);
      const spec: RequestSpec = {
        method: 'SEND',
        toPath: opts.toPath,
        fromPath: this.uri,
        headers,
        mimeHeaders: opts.mimeHeaders,
        contentType: opts.contentType ?? 'text/plain',
        body: piece,
        flag: last ? '$' : '+',
      };
      if (fr === 'yes') {
        const wait = this.request(spec, opts.timeoutMs ?? 35_000);
        wait.then((f) => {
          if (f.kind === 'response' && f.statusCode === 413) refused = true;
        }, stop);
        waits.push(wait);
      } else this.writeFramed(frameRequest(spec));
      offset += piece.length;
      const gate = this.whenWritable();
      if (gate !== null) await Promise.race([gate, stopped]);
    } while (offset < body.length && !this.closed && !refused);
    if (offset < body.length && !refused) {
      // Chunks were left unwritten: a chunk waiting for its response says why; with Failure-Report no
      // or partial none would.
      await Promise.all(waits);
      throw new Error('connection closed during SEND');
    }
    const frames = await Promise.all(waits);
    return { messageId, statuses: frames.map((f) => (f.kind === 'response' ? f.statusCode : 0)) };
  }

  /**
   * Null while the socket takes more; else a promise for its next 'drain' (or close): one promise and
   * one pair of listeners for every writer waiting, however many run at once.
   */
  whenWritable(): Promise<void> | null {
    if (!this.socket.writableNeedDrain) return null;
    this.drainWait ??= new Promise<void>((resolve) => {
      const done = (): void => {
        this.socket.off('drain', done);
        this.socket.off('close', done);
        this.drainWait = null;
        resolve();
      };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
    return this.drainWait;
  }

  /** Closes the connection. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      this.once('close', () => resolve());
      if (this.ws !== null) this.ws.close(1000);
      else this.socket.end();
      setTimeout(() => this.socket.destroy(), 1000).unref();
    });
  }

  /**
   * One WebSocket message: exactly one frame (RFC 7977 §5.1). A message that leaves the parser inside
   * a frame is recorded in {@link errors} and the partial frame dropped; after one it could not frame
   * at all (recorded by the parser) the next message is read afresh.
   */
  private onWsMessage(data: RawData): void {
    this.parser.write(rawBuffer(data));
    if (this.parser.idle) return;
    if (!this.parser.failed) {
      this.errors.push({
        error: createError(ErrorCodes.WS_FRAMING, 'WebSocket message ended inside an MSRP frame'),
        context: null,
      });
    }
    this.parser.reset();
  }

  private onFrame(frame: Frame): void {
    if (frame.kind === 'response') {
      const p = this.pending.get(frame.transactionId);
      if (p !== undefined) {
        this.pending.delete(frame.transactionId);
        clearTimeout(p.timer);
        p.resolve(frame);
      }
      return;
    }
    this.emit('request', frame);
    if (frame.method === 'REPORT') {
      this.emit('report', frame);
      return;
    }
    const fr = getHeader(frame.headers, 'failure-report') ?? 'yes';
    if (frame.method !== 'SEND') {
      // RFC 4975 §10: a method the receiver does not understand gets 501; the response of a request other
      // than SEND goes back along the whole From-Path (§7.2).
      if (!this.methods.has(frame.method) && fr !== 'no') {
        this.answer(frame.method, frame.transactionId, frame.headers[1]![1], 501);
      }
      return;
    }
    let range: ByteRange = { start: 1, end: '*', total: '*' };
    let bad: MsrpError | null = null;
    const brValue = getHeader(frame.headers, 'byte-range');
    try {
      if (brValue !== undefined) range = parseByteRange(brValue);
    } catch (err) {
      // A malformed chunk is answered 400 and recorded; it must not take the endpoint down.
      bad = err as MsrpError;
      this.errors.push({ error: bad, context: null });
    }
    const tooLarge = bad === null && this.isTooLarge(range, frame.body);
    let accepted = true;
    if (fr !== 'no') {
      const code = bad !== null ? 400 : tooLarge ? 413 : this.respond(frame);
      accepted = code === 200;
      if (code !== null && !(fr === 'partial' && code === 200)) {
        this.answer('SEND', frame.transactionId, frame.headers[1]![1], code);
      }
    }
    if (tooLarge) this.forget(getHeader(frame.headers, 'message-id') ?? '');
    else if (bad === null) this.assemble(frame, range, accepted);
  }

  /**
   * Drops what was received of an unfinished incoming message (nothing when it is not held): for an
   * application that learns from elsewhere that the message will not be finished, e.g. the load tester
   * when its sender counted it failed.
   */
  forget(messageId: string): void {
    this.assemblies.delete(messageId);
  }

  /**
   * RFC 4975 §7.1.1: a request the parser refused but could frame (a chunk over `maxMessageBytes`: 413,
   * a bad head: 400) is answered unless its Failure-Report is `no`, as onFrame answers the ones it
   * refuses; a chunk over the limit also drops its message (§7.3.1). Fatal errors close the stream.
   */
  private answerParseError(e: CollectedError): void {
    const c = e.context;
    // A REPORT never gets a response, from anyone (RFC 4975 §7.1.2, digest §1.5).
    if (c === null || c.method === undefined || c.method === 'REPORT' || e.error.fatal || this.closed) return;
    const fromHeader = c.headers[1];
    if (fromHeader === undefined || fromHeader[0].toLowerCase() !== 'from-path') return;
    if ((getHeader(c.headers, 'failure-report') ?? 'yes') === 'no') return;
    if (e.error.statusCode === 413 && c.method === 'SEND')
      this.forget(getHeader(c.headers, 'message-id') ?? '');
    if (fromHeader[1].trim() === '') return;
    this.answer(c.method, c.transactionId, fromHeader[1], e.error.statusCode);
  }

  /**
   * Writes the response to a request whose From-Path header value is `fromPath` (RFC 4975 §7.2): a SEND's
   * goes to the previous hop, the first From-Path URI; any other request's along the whole From-Path.
   */
  private answer(method: string, transactionId: string, fromPath: string, statusCode: number): void {
    const from = fromPath.trim();
    this.write(
      serializeResponse({
        transactionId,
        statusCode,
        toPath: method === 'SEND' ? from.split(/\s+/)[0]! : from,
        fromPath: this.uri,
      }),
    );
  }

  /**
   * True when a chunk shows its message larger than `maxMessageBytes` (its last octet or its total)
   * while its octets would be kept: count-only messages, past `keepBodiesUpTo`, hold none.
   */
  private isTooLarge(range: ByteRange, body: Buffer | null): boolean {
    const total = typeof range.total === 'number' ? range.total : 0;
    const size = Math.max(range.start - 1 + (body?.length ?? 0), total);
    return size > this.maxMessageBytes && size <= this.keepBodiesUpTo;
  }

  /** Adds a chunk; `accepted`: it was answered 200 (or needs no answer). */
  private assemble(frame: Frame, range: ByteRange, accepted: boolean): void {
    const messageId = getHeader(frame.headers, 'message-id') ?? '';
    const body = frame.body ?? Buffer.alloc(0);
    let a = this.assemblies.get(messageId);
    if (
      a === undefined &&
      frame.flag === '$' &&
      range.start === 1 &&
      (range.total === '*' || range.total === body.length)
    ) {
      // A whole message in one chunk (every IM and report): no assembly record; copied so it does not
      // pin the socket's read buffer.
      const keep = typeof range.total !== 'number' || range.total <= this.keepBodiesUpTo;
      this.emitMessage(frame, messageId, keep ? Buffer.from(body) : EMPTY, body.length, accepted);
      return;
    }
    if (frame.flag === '#') {
      // An aborted message is dropped; one never seen opens nothing (and evicts nothing).
      this.assemblies.delete(messageId);
      return;
    }
    if (a === undefined) {
      // A Map iterates in insertion order: the first key is the oldest unfinished message.
      if (this.assemblies.size >= this.maxOpenMessages) {
        this.assemblies.delete(this.assemblies.keys().next().value!);
      }
      a = { parts: [], total: null, received: new IntervalSet(), keep: true, held: 0, refused: false };
      this.assemblies.set(messageId, a);
    }
    if (typeof range.total === 'number') a.total = range.total;
    if (frame.flag === '$') a.total = range.start - 1 + body.length;
    // Large messages in count-only mode keep no octets, only which ones came.
    if (a.keep && Math.max(a.total ?? 0, range.start - 1 + body.length) > this.keepBodiesUpTo) {
      a.keep = false;
      a.parts = [];
    }
    if (!accepted) a.refused = true;
    if (a.keep) {
      a.parts.push([range.start, body]);
      a.held += body.length;
      // A peer re-sending the same octets: past twice the limit the parts are merged into one buffer
      // (later octets win), so held memory stays bounded and each octet is copied O(1) times.
      if (a.held > 2 * this.maxMessageBytes) mergeParts(a);
    }
    a.received.add(range.start, range.start + body.length - 1);
    if (a.total !== null && a.received.covers(1, a.total)) {
      let out = EMPTY;
      if (a.keep) {
        // Every octet 1..total came; later chunks overwrite earlier ones where they overlap (RFC 4975
        // §7.3.1: the receiver keeps the octets it got last). Octets past the total are not written.
        out = Buffer.alloc(a.total);
        for (const [start, part] of a.parts) part.copy(out, start - 1, 0, Math.max(0, a.total - start + 1));
      }
      this.assemblies.delete(messageId);
      this.emitMessage(frame, messageId, out, a.total, !a.refused);
    }
  }

  /**
   * RFC 4975 §7.1.2: with Success-Report yes the receiver sends a success REPORT once the message is
   * whole, along the whole From-Path, covering every octet.
   */
  private reportSuccess(frame: Frame, messageId: string, size: number): void {
    if (getHeader(frame.headers, 'success-report') !== 'yes') return;
    this.write(
      serializeRequest({
        method: 'REPORT',
        toPath: frame.headers[1]![1].trim(),
        fromPath: this.uri,
        headers: [
          ['Message-ID', messageId],
          ['Byte-Range', `1-${size}/${size}`],
          ['Status', '000 200 OK'],
        ],
      }),
    );
  }

  private emitMessage(frame: Frame, messageId: string, body: Buffer, size: number, accepted: boolean): void {
    // RFC 4975 §7.1.2: success means every octet received, and taken.
    if (accepted) this.reportSuccess(frame, messageId, size);
    const msg: ReceivedMessage = {
      messageId,
      contentType: getHeader(frame.headers, 'content-type'),
      body,
      size,
      fromPath: frame.headers[1]![1],
      headers: frame.headers,
    };
    this.emit('message', msg);
  }
}

/** Merges an assembly's parts into one buffer from octet 1, applying them in arrival order. */
function mergeParts(a: Assembly): void {
  let end = 0;
  for (const [start, part] of a.parts) end = Math.max(end, start - 1 + part.length);
  const out = Buffer.alloc(end);
  for (const [start, part] of a.parts) part.copy(out, start - 1);
  a.parts = [[1, out]];
  a.held = end;
}

function rawBuffer(data: RawData): Buffer {
  if (Buffer.isBuffer(data)) return data;
  if (Array.isArray(data)) return Buffer.concat(data);
  return Buffer.from(data);
}

/** The flag of a frame (re-exported for tests that inspect chunks). */
export type { ContinuationFlag };

/** An AUTH exchange this client cannot complete: `reason` is fixed text, `value` what the relay sent. */
export class AuthError extends Error {
  constructor(
    readonly reason: string,
    readonly value: string,
  ) {
    super(`${reason}: ${JSON.stringify(value)}`);
    this.name = 'AuthError';
  }
}

/** True when `header` is a Digest challenge that says `stale=true`. */
function isStale(header: string): boolean {
  try {
    return parseDigestChallenge(header).stale === true;
  } catch {
    return false;
  }
}

/**
 * The Authorization value answering the first of a 401's challenges this client can answer (a relay may
 * offer several, e.g. SHA-256 before MD5, in one WWW-Authenticate header each). Throws the first
 * challenge's {@link AuthError} when none can be answered.
 */
function answerChallenges(
  challenges: readonly string[],
  username: string,
  password: string,
  relayUri: string,
): string {
  let first: AuthError | undefined;
  for (const header of challenges) {
    try {
      return digestAnswer(parseDigestChallenge(header), username, password, relayUri);
    } catch (err) {
      first ??=
        err instanceof AuthError
          ? err
          : new AuthError('AUTH 401 with an invalid challenge', header.slice(0, 200));
    }
  }
  throw first ?? new AuthError('AUTH 401 with an invalid challenge', '');
}

/**
 * The Authorization value answering a Digest challenge (RFC 2617 §3.2.2, as RFC 4976 §5.1 uses it):
 * `qop=auth` when offered, the RFC 2069 form when no qop is offered; MD5 or MD5-sess; `opaque` echoed.
 * Throws for what it cannot answer (another algorithm, a qop list without `auth`).
 */
function digestAnswer(
  challenge: DigestChallenge,
  username: string,
  password: string,
  relayUri: string,
): string {
  const algorithm = challenge.algorithm;
  const sess = algorithm !== undefined && algorithm.toLowerCase() === 'md5-sess';
  if (algorithm !== undefined && !sess && algorithm.toLowerCase() !== 'md5')
    throw new AuthError('Digest algorithm not supported (MD5, MD5-sess)', algorithm);
  const qops = challenge.qop === undefined ? undefined : splitQopOptions(challenge.qop.toLowerCase());
  if (qops !== undefined && !qops.includes('auth'))
    throw new AuthError('Digest qop offers no "auth"', challenge.qop ?? '');
  const md5 = (s: string): string => createHash('md5').update(s).digest('hex');
  const uri = relayUri.split(' ').at(-1)!;
  const cnonce = randomId(12);
  const nc = '00000001';
  let ha1 = md5(`${username}:${challenge.realm}:${password}`);
  if (sess) ha1 = md5(`${ha1}:${challenge.nonce}:${cnonce}`);
  const ha2 = md5(`AUTH:${uri}`);
  const withQop = qops !== undefined;
  const response = withQop
    ? md5(`${ha1}:${challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`)
    : md5(`${ha1}:${challenge.nonce}:${ha2}`);
  return formatDigestCredentials({
    username,
    realm: challenge.realm,
    nonce: challenge.nonce,
    uri,
    response,
    ...(withQop || sess ? { cnonce } : {}),
    ...(withQop ? { qop: 'auth', nc } : {}),
    ...(algorithm === undefined ? {} : { algorithm }),
    ...(challenge.opaque === undefined ? {} : { opaque: challenge.opaque }),
  });
}
