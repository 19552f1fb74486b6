/**
 * One load session: two MSRP endpoints authenticated to the relay under test, a sender and a receiver,
 * each knowing the other's a=path (as SDP would have told them). The sender writes messages in chunks and
 * the session follows every message to one outcome:
 *
 * ```
 *            ┌── every chunk 200, receiver holds all octets ──► delivered ──► (report arrives)
 *  sent ─────┼── non-200, failure REPORT, timeout, disconnect, negative IMDN ──► failed
 *            └── neither by the end of the drain period ──► lost
 * ```
 *
 * Only RFC 4975/4976 behaviour is assumed of the relay; nothing here knows our relay's internals.
 */
import { performance } from 'node:perf_hooks';
import { AuthError, MsrpEndpoint, type ReceivedMessage } from '../client/endpoint.js';
import { parseStatus } from '../msrp/headers.js';
import { getHeader, type Frame, type Header } from '../msrp/message.js';
import { serializeRequest, randomId, type RequestSpec } from '../msrp/serializer.js';
import type { LoadMetrics } from './metrics.js';
import type { LoadConfig, LoadUser } from './options.js';
import {
  CpimHeadTemplate,
  readReports,
  receiverImdn,
  type MessageBody,
  type PayloadSource,
} from './payload.js';
import { authUri, connectOptions, type LoadTarget } from './target.js';
import { StringMap } from '../util/string-map.js';

/** What every session of a thread shares. */
export interface SessionContext {
  readonly config: LoadConfig;
  readonly metrics: LoadMetrics;
  readonly payload: PayloadSource;
  /** Called at every message outcome (the thread keeps the time of the last one). */
  outcome(): void;
  /**
   * performance.now() from which a message counts in the latency histograms (traffic start plus
   * `--warm-up`); messages and chunks sent before it are counted in everything else.
   */
  latencyFrom: number;
  /** performance.now() when the last message was handed to a session (throughput counts to it, too). */
  lastSendAt: number;
  /** Endpoints connected and not yet authenticated: closed at once when the run is stopped. */
  readonly settingUp: Set<MsrpEndpoint>;
  /** The run was stopped (Ctrl-C): no session setup goes on. */
  stopped: boolean;
  /** Resolves when the run is stopped: a connect still under way gives up then. */
  readonly stopSignal: Promise<void>;
}

/** A session could not be set up; `reason` is a short key for the report (`AUTH 401`, `connect ECONNREFUSED`). */
export class SetupError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'SetupError';
  }
}

const PENDING = 0;
const DELIVERED = 1;
const FAILED = 2;
/** Counted lost at the end of the drain: no later event counts it again. */
const LOST = 3;

interface Tracked {
  readonly messageId: string;
  readonly seq: number;
  /** Body octets (CPIM head included). */
  readonly bytes: number;
  /** performance.now() when the first chunk was handed to the socket. */
  readonly t0: number;
  state: typeof PENDING | typeof DELIVERED | typeof FAILED | typeof LOST;
  /** A positive-delivery report was requested. */
  readonly positive: boolean;
  /** A negative-delivery report was requested. */
  readonly negative: boolean;
  reported: boolean;
  /** Releases a closed-loop lane waiting on this message. */
  release: (() => void) | null;
  timer: NodeJS.Timeout | null;
}

/** Sessions by endpoint, for the module-level event handlers. */
const owners = new WeakMap<MsrpEndpoint, LoadSession>();

function receiverOnMessage(this: MsrpEndpoint, m: ReceivedMessage): void {
  owners.get(this)?.onReceived(m);
}

function senderOnMessage(this: MsrpEndpoint, m: ReceivedMessage): void {
  owners.get(this)?.onSenderMessage(m);
}

function senderOnReport(this: MsrpEndpoint, frame: Frame): void {
  owners.get(this)?.onFailureReport(frame);
}

function endpointOnClose(this: MsrpEndpoint): void {
  owners.get(this)?.onEndpointClose();
}

function releaseTracked(tr: Tracked): void {
  // Cleared, not just forgotten: a pending 30 s timer would keep the process up after the run.
  if (tr.timer !== null) clearTimeout(tr.timer);
  tr.timer = null;
  tr.release?.();
  tr.release = null;
}

const MIN_RECEIVE_BYTES = 64 * 1024 * 1024;

/** Received messages up to this size are kept whole (CPIM heads, IMDNs); larger ones only counted. */
const KEEP_BODIES_UP_TO = 1024 * 1024;

/** Connects one endpoint and authenticates it; throws {@link SetupError}. */
async function openEndpoint(
  ctx: SessionContext,
  target: LoadTarget,
  user: LoadUser | undefined,
  respond?: (frame: Frame) => number | null,
): Promise<Opened> {
  const cfg = ctx.config;
  const largest = Math.max(...cfg.sizes.map((s) => s.bytes));
  const extra = {
    maxMessageBytes: Math.max(MIN_RECEIVE_BYTES, largest + 64 * 1024),
    // Bodies are only compared by length; large ones are counted, not kept (no copy of a whole file).
    keepBodiesUpTo: KEEP_BODIES_UP_TO,
    // The receiver reassembles only what its own sender sent (up to --concurrency, or unbounded with
    // --rate, messages at once): a cap would drop unfinished messages that every chunk got 200 for.
    maxOpenMessages: Infinity,
    ...(respond && { respond }),
  };
  const options = connectOptions(target, cfg.tlsCa, cfg.insecure, extra);
  const timeoutMs = cfg.timeout * 1000;
  let timer: NodeJS.Timeout | undefined;
  const connecting = MsrpEndpoint.connect(options);
  const ep = await Promise.race([
    connecting,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SetupError('connect timeout')), timeoutMs);
    }),
    ctx.stopSignal.then(() => {
      throw new SetupError('stopped');
    }),
  ])
    .catch((err: unknown) => {
      // A connection that completes after the timeout is closed at once.
      connecting.then((late) => late.close()).catch(() => {});
      if (err instanceof SetupError) throw err;
      const e = err as NodeJS.ErrnoException;
      throw new SetupError(`connect ${e.code ?? String(e.message ?? e).slice(0, 80)}`);
    })
    .finally(() => clearTimeout(timer));
  if (ctx.stopped) {
    await ep.close();
    throw new SetupError('stopped');
  }
  ctx.settingUp.add(ep);
  try {
    return { ep, expires: await authenticate(ctx, target, ep, user) };
  } catch (err) {
    await ep.close();
    throw err;
  } finally {
    ctx.settingUp.delete(ep);
  }
}

/**
 * AUTH with Digest on a connected endpoint (RFC 4976 §5.1); resolves with the Expires granted (seconds,
 * null when the 200 carries none), throws {@link SetupError}. Also used to refresh before expiry.
 */
async function authenticate(
  ctx: SessionContext,
  target: LoadTarget,
  ep: MsrpEndpoint,
  user: LoadUser | undefined,
): Promise<number | null> {
  const cfg = ctx.config;
  let res: Frame;
  try {
    res = await ep.auth({
      relayUri: authUri(target, user?.username),
      username: user?.username,
      password: user?.password,
      expires: cfg.authExpires,
      timeoutMs: cfg.timeout * 1000,
    });
  } catch (err) {
    if (err instanceof AuthError) throw new SetupError(err.reason); // one reason per kind, not per value
    throw new SetupError(ep.isClosed ? 'AUTH connection closed' : 'AUTH timeout');
  }
  const status = res.kind === 'response' ? res.statusCode : 0;
  // A 200 carries a Use-Path that parses: MsrpEndpoint.auth throws an AuthError otherwise.
  if (status !== 200) {
    if (status === 401 && user === undefined) throw new SetupError('AUTH 401 (no --user/--users given)');
    throw new SetupError(`AUTH ${status}`);
  }
  const expires = Number(getHeader(res.headers, 'expires') ?? NaN);
  return Number.isFinite(expires) && expires > 0 ? expires : null;
}

/** An authenticated endpoint and the lifetime of its Use-Path. */
interface Opened {
  ep: MsrpEndpoint;
  /** Expires granted, seconds; null when unknown. */
  expires: number | null;
}

/** Fraction of the granted Expires after which an endpoint re-AUTHs (RFC 4976 §5.1: before it runs out). */
const REFRESH_AT = 0.8;

/** The longest delay `setTimeout` honours, ms. */
const MAX_TIMER_MS = 2 ** 31 - 1;

function refreshOnTimer(session: LoadSession, side: 0 | 1): void {
  void session.refresh(side);
}

/** A sender/receiver pair sending messages one way and following each to its outcome. */
export class LoadSession {
  /** Global index of this session (0-based over all workers). */
  readonly index: number;
  private readonly ctx: SessionContext;
  private readonly sender: MsrpEndpoint;
  private readonly receiver: MsrpEndpoint;
  /** Sender → receiver: the sender's Use-Path, then the receiver's a=path (RFC 4976 §5.2). */
  private toPath = '';
  /** Receiver → sender, for IMDNs sent by the receiver. */
  private backPath = '';
  private readonly users: [LoadUser | undefined, LoadUser | undefined];
  private readonly refreshTimers: [NodeJS.Timeout | null, NodeJS.Timeout | null] = [null, null];
  /** The CPIM head of this session's IMs (`--cpim`), or null. */
  private readonly cpim: CpimHeadTemplate | null;
  private readonly idBase: string;
  /** `i` + {@link idBase}: how this session's imdn.Message-IDs begin. */
  private readonly imdnBase: string;
  private readonly outstanding = new StringMap<Tracked>();
  /** One bit per sequence number whose delivery report has been seen (duplicate detection). */
  private reportedBits = new Uint8Array(128);
  private seq = 0;
  private pendingCount = 0;
  private awaitingReports = 0;
  /** SEND chunks written whose transaction has no response or failure yet. */
  private openChunks = 0;
  /** {@link finish} has run: nothing more is counted. */
  private finished = false;
  private closed = false;
  private closing = false;

  private constructor(
    ctx: SessionContext,
    index: number,
    sender: Opened,
    receiver: Opened,
    users: [LoadUser | undefined, LoadUser | undefined],
  ) {
    this.ctx = ctx;
    this.index = index;
    this.sender = sender.ep;
    this.receiver = receiver.ep;
    this.users = users;
    this.updatePaths();
    this.scheduleRefresh(0, sender.expires);
    this.scheduleRefresh(1, receiver.expires);
    const host = ctx.config.target.authHost;
    const from = `sip:${users[0]?.username ?? `load-${index}-a`}@${host}`;
    const to = `sip:${users[1]?.username ?? `load-${index}-b`}@${host}`;
    this.cpim = ctx.config.cpim
      ? new CpimHeadTemplate({
          from,
          to,
          reports: ctx.config.requestReports,
          dialect: ctx.config.reportDialect,
        })
      : null;
    this.idBase = `${ctx.config.idPrefix}-${index.toString(36)}-`;
    this.imdnBase = 'i' + this.idBase;
    for (const ep of [this.sender, this.receiver]) {
      owners.set(ep, this);
      ep.on('close', endpointOnClose);
    }
    this.receiver.on('message', receiverOnMessage);
    this.sender.on('message', senderOnMessage);
    this.sender.on('report', senderOnReport);
  }

  /**
   * Connects and authenticates both endpoints of session `index`. Accounts go round-robin over
   * endpoints: the sender takes `users[2i % n]`, the receiver `users[(2i + 1) % n]`.
   */
  static async open(ctx: SessionContext, index: number): Promise<LoadSession> {
    const users = ctx.config.users;
    const pick = (k: number): LoadUser | undefined =>
      users.length === 0 ? undefined : users[k % users.length];
    const pair: [LoadUser | undefined, LoadUser | undefined] = [pick(2 * index), pick(2 * index + 1)];
    const status = ctx.config.receiverStatus;
    const sender = await openEndpoint(ctx, ctx.config.target, pair[0]);
    let receiver: Opened;
    try {
      receiver = await openEndpoint(ctx, ctx.config.receiverTarget, pair[1], () => status);
    } catch (err) {
      await sender.ep.close();
      throw err;
    }
    return new LoadSession(ctx, index, sender, receiver, pair);
  }

  /** False once either endpoint's connection has closed. */
  get alive(): boolean {
    return !this.closed;
  }

  /**
   * True while something is still due and can still come: the sender's connection is open (with the
   * receiver gone, the relay's failure REPORTs for what was in flight still reach the sender).
   */
  get awaiting(): boolean {
    return this.busy > 0 && !this.sender.isClosed;
  }

  /**
   * Messages without an outcome, delivered messages still waiting for their positive report, and chunks
   * still waiting for their hop's response (a relay may answer after it forwarded: the drain waits).
   */
  get busy(): number {
    return this.pendingCount + this.awaitingReports + this.openChunks;
  }

  /**
   * Sends one message of `payloadBytes` (plus the CPIM head with `--cpim`). Resolves when it has an
   * outcome, or after the transaction timeout in a closed loop, so a lane never waits forever.
   */
  send(payloadBytes: number): Promise<void> {
    const cfg = this.ctx.config;
    const m = this.ctx.metrics;
    const seq = this.seq++;
    const messageId = this.idBase + seq.toString(36);
    const head = this.cpim?.head(`i${messageId}`);
    const body = this.ctx.payload.body(payloadBytes, head);
    const tr: Tracked = {
      messageId,
      seq,
      bytes: body.length,
      t0: performance.now(),
      state: PENDING,
      positive: cfg.requestReports.includes('positive-delivery'),
      negative: cfg.requestReports.includes('negative-delivery'),
      reported: false,
      release: null,
      timer: null,
    };
    this.outstanding.set(messageId, tr);
    this.pendingCount++;
    m.messagesSent++;
    this.ctx.lastSendAt = tr.t0;
    if (tr.positive) m.reportsRequested++;
    const done = new Promise<void>((resolve) => {
      tr.release = resolve;
    });
    if (cfg.concurrency !== null) tr.timer = setTimeout(releaseTracked, cfg.timeout * 1000, tr);
    void this.transmit(tr, body);
    return done;
  }

  /** Counts what never came: pending messages as lost, missing positive reports. Call once, at the end. */
  finish(): void {
    // The figures are final from here: what comes during --hold, or as the endpoints close, counts no more.
    this.finished = true;
    const m = this.ctx.metrics;
    for (const tr of this.outstanding.values()) {
      if (tr.state === PENDING) {
        m.messagesLost++;
        tr.state = LOST; // its chunks, rejected when the endpoints close, must not fail it as well
      } else if (tr.state === DELIVERED && tr.positive && !tr.reported) m.reportsMissing++;
      releaseTracked(tr);
    }
    this.outstanding.clear();
    this.pendingCount = 0;
    this.awaitingReports = 0;
  }

  /** Closes both endpoints. */
  async close(): Promise<void> {
    this.closing = true;
    for (const t of this.refreshTimers) if (t !== null) clearTimeout(t);
    await Promise.all([this.sender.close(), this.receiver.close()]);
  }

  /**
   * @internal Re-AUTHs one side before its Use-Path expires and switches both directions to the new
   * paths (as a re-INVITE would tell the peer). A failure is counted; the old path serves until it expires.
   */
  async refresh(side: 0 | 1): Promise<void> {
    this.refreshTimers[side] = null;
    if (this.closed || this.closing) return;
    const m = this.ctx.metrics;
    try {
      const cfg = this.ctx.config;
      const expires = await authenticate(
        this.ctx,
        side === 0 ? cfg.target : cfg.receiverTarget,
        side === 0 ? this.sender : this.receiver,
        this.users[side],
      );
      m.reauths++;
      this.updatePaths();
      this.scheduleRefresh(side, expires);
    } catch {
      m.reauthFailures++;
    }
  }

  // ---- event handlers (called by the module-level listeners) ------------------------------------

  /** @internal The receiving endpoint holds a whole message. */
  onReceived(msg: ReceivedMessage): void {
    const cfg = this.ctx.config;
    const tr = this.outstanding.get(msg.messageId);
    // A receiver answering non-200 refused the message, whatever octets it kept.
    if (tr === undefined || tr.state !== PENDING || cfg.receiverStatus !== 200) return;
    const m = this.ctx.metrics;
    if (msg.size !== tr.bytes) {
      m.bodyMismatches++;
      this.fail(tr);
      return;
    }
    tr.state = DELIVERED;
    this.pendingCount--;
    m.messagesDelivered++;
    m.bytesDelivered += tr.bytes;
    if (tr.t0 >= this.ctx.latencyFrom) m.delivery.recordMs(performance.now() - tr.t0);
    if (tr.positive && !tr.reported) this.awaitingReports++;
    this.settled(tr);
    if (cfg.receiverImdn) {
      const imdn = receiverImdn(msg.contentType, msg.body);
      if (imdn !== null) this.sendFromReceiver(imdn);
    }
  }

  /** @internal A SEND reached the sender: a delivery report from the relay or the receiver. */
  onSenderMessage(msg: ReceivedMessage): void {
    if (this.finished) return; // counted missing already
    const reports = readReports(msg.contentType, msg.body);
    if (reports === null) return;
    for (const r of reports) this.onReport(r.imdnId, r.status);
  }

  /** @internal A REPORT reached the sender; failure REPORTs fail their message. */
  onFailureReport(frame: Frame): void {
    if (this.finished) return;
    let code: number;
    try {
      code = parseStatus(getHeader(frame.headers, 'status') ?? '').code;
    } catch {
      code = 0;
    }
    if (code === 200) return; // a success REPORT: never requested, nothing to count
    const messageId = getHeader(frame.headers, 'message-id') ?? '';
    // Digest §1.10: a REPORT for a message the client does not know is ignored; counted as unmatched.
    if (this.seqOf(messageId, this.idBase) === null) {
      this.ctx.metrics.reportsUnmatched++;
      return;
    }
    this.ctx.metrics.failureReport(code);
    const tr = this.outstanding.get(messageId);
    if (tr !== undefined) this.fail(tr);
  }

  /** @internal Either endpoint's connection closed. */
  onEndpointClose(): void {
    if (this.closed) return;
    this.closed = true;
    if (!this.closing) this.ctx.metrics.sessionsDropped++;
    // Lanes waiting on this session's messages are let go; the messages keep their chance to complete.
    for (const tr of this.outstanding.values()) releaseTracked(tr);
  }

  // ---- internals ---------------------------------------------------------------------------------

  /** Recomputes both To-Paths from the current Use-Paths and a=paths. */
  private updatePaths(): void {
    this.toPath = this.sender.toPathFor(this.receiver.path);
    this.backPath = this.receiver.toPathFor(this.sender.path);
  }

  private scheduleRefresh(side: 0 | 1, expires: number | null): void {
    if (expires === null || this.closing) return;
    // setTimeout takes at most 2^31-1 ms (24.8 days): a longer delay would fire at once, and again.
    const delayMs = Math.min(MAX_TIMER_MS, Math.max(0.1, expires * REFRESH_AT) * 1000);
    const timer = setTimeout(refreshOnTimer, delayMs, this, side);
    timer.unref();
    this.refreshTimers[side] = timer;
  }

  /** Writes the chunks of one message, pausing while the socket's buffer is over its high-water mark. */
  private async transmit(tr: Tracked, body: MessageBody): Promise<void> {
    const cfg = this.ctx.config;
    const ep = this.sender;
    const total = body.length;
    const timeoutMs = cfg.timeout * 1000;
    const contentType = cfg.cpim ? 'message/cpim' : 'text/plain';
    let offset = 0;
    do {
      if (tr.state !== PENDING) return; // RFC 4975 §7.3.1: after an error, no more chunks of this message
      if (ep.isClosed) {
        // Never written, so no open transaction to settle (chunkFailed would count one off).
        this.ctx.metrics.disconnects++;
        this.fail(tr);
        return;
      }
      const end = Math.min(total, offset + cfg.chunkSize);
      const headers: Header[] = [
        ['Message-ID', tr.messageId],
        ['Byte-Range', `${offset + 1}-${end}/${total}`],
      ];
      const spec: RequestSpec = {
        method: 'SEND',
        toPath: this.toPath,
        fromPath: ep.uri,
        headers,
        contentType,
        body: body.slice(offset, end),
        flag: end >= total ? '$' : '+',
      };
      const sentAt = performance.now();
      this.ctx.metrics.chunksSent++;
      // Octets written, chunk by chunk: the rest of a message refused midway never leaves.
      this.ctx.metrics.bytesSent += end - offset;
      this.openChunks++;
      ep.request(spec, timeoutMs).then(
        (res) => this.chunkAnswered(tr, res, sentAt),
        () => this.chunkFailed(tr, ep.isClosed),
      );
      offset = end;
      const gate = ep.whenWritable();
      if (gate !== null) await gate;
    } while (offset < total);
  }

  private chunkAnswered(tr: Tracked, res: Frame, sentAt: number): void {
    this.openChunks--;
    if (this.finished) return;
    const m = this.ctx.metrics;
    if (sentAt >= this.ctx.latencyFrom) m.firstHop.recordMs(performance.now() - sentAt);
    const code = res.kind === 'response' ? res.statusCode : 0;
    if (code === 200) {
      m.chunksAcknowledged++;
      return;
    }
    m.responseError(code);
    this.fail(tr);
  }

  private chunkFailed(tr: Tracked, closed: boolean): void {
    this.openChunks--;
    if (this.finished) return; // after the drain (--hold, or our own close): the figures are final
    if (closed) this.ctx.metrics.disconnects++;
    else this.ctx.metrics.timeouts++;
    this.fail(tr);
  }

  private fail(tr: Tracked): void {
    if (tr.state !== PENDING) return;
    tr.state = FAILED;
    this.pendingCount--;
    this.ctx.metrics.messagesFailed++;
    // Its sender may stop part way: the receiver (which caps nothing, see openEndpoint) lets go of it.
    this.receiver.forget(tr.messageId);
    this.settled(tr);
  }

  /** The message has its outcome: free its lane, forget it unless a report is still due. */
  private settled(tr: Tracked): void {
    this.ctx.outcome();
    if (tr.timer !== null) {
      clearTimeout(tr.timer);
      tr.timer = null;
    }
    releaseTracked(tr);
    this.forgetIfDone(tr);
  }

  private forgetIfDone(tr: Tracked): void {
    if (tr.state === PENDING) return;
    if (!tr.reported && ((tr.state === DELIVERED && tr.positive) || (tr.state === FAILED && tr.negative)))
      return;
    this.outstanding.delete(tr.messageId);
  }

  /** A delivery report about `imdnId` (`i` + the MSRP Message-ID this session gave the IM). */
  private onReport(imdnId: string, status: string): void {
    const m = this.ctx.metrics;
    const seq = this.seqOf(imdnId, this.imdnBase);
    if (seq === null) {
      m.reportsUnmatched++;
      return;
    }
    if (this.testAndSetReported(seq)) {
      m.reportsDuplicate++;
      return;
    }
    m.reportReceived(status);
    const tr = this.outstanding.get(imdnId.slice(1));
    if (tr === undefined) return;
    const wasAwaited = tr.state === DELIVERED && tr.positive && !tr.reported;
    tr.reported = true;
    if (wasAwaited) this.awaitingReports--;
    if (status === 'delivered') {
      if (tr.t0 >= this.ctx.latencyFrom) m.report.recordMs(performance.now() - tr.t0);
    } else {
      this.fail(tr);
    }
    this.forgetIfDone(tr);
  }

  /** The sequence number in `id` (`base` + base-36 number) of a message this session sent, or null. */
  private seqOf(id: string, base: string): number | null {
    const seq = id.startsWith(base) ? parseInt(id.slice(base.length), 36) : NaN;
    return Number.isSafeInteger(seq) && seq >= 0 && seq < this.seq ? seq : null;
  }

  private testAndSetReported(seq: number): boolean {
    const byte = seq >> 3;
    if (byte >= this.reportedBits.length) {
      const grown = new Uint8Array(Math.max(byte + 1, this.reportedBits.length * 2));
      grown.set(this.reportedBits);
      this.reportedBits = grown;
    }
    const bit = 1 << (seq & 7);
    const seen = (this.reportedBits[byte]! & bit) !== 0;
    this.reportedBits[byte]! |= bit;
    return seen;
  }

  /** An IMDN from the receiver: Failure-Report and Success-Report no, so nobody answers it (digest §5.5). */
  private sendFromReceiver(body: Buffer): void {
    this.receiver.write(
      serializeRequest({
        method: 'SEND',
        toPath: this.backPath,
        fromPath: this.receiver.uri,
        headers: [
          ['Message-ID', randomId(16)],
          ['Byte-Range', `1-${body.length}/${body.length}`],
          ['Failure-Report', 'no'],
          ['Success-Report', 'no'],
        ],
        contentType: 'message/cpim',
        body,
      }),
    );
  }
}
