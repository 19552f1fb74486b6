/**
 * The report policy (DESIGN.md "Report policy"): reads the CPIM head of each message the
 * {@link MessageTracker} follows, decides which delivery reports the relay injects toward the sender
 * and builds them as ready-to-write MSRP SENDs; remembers what it reported so the recipient's own
 * duplicate delivery IMDN can be dropped. It implements {@link TrackerHandler}, so the tracker's events
 * drive it; the relay only feeds the tracker and writes what {@link ReportPolicyOptions.inject} receives.
 *
 * ```
 *  tracker ─onHead─► parse CPIM head ─► request? lastHop? ─► keep / drop
 *          ─onWhole──► processed; on-receipt: delivered (before the final end-line goes on)
 *          ─onComplete► on-ack: delivered
 *          ─onFailed──► failed (negative-delivery)            ─► inject(msg, SEND) ─► sender
 *  IMDN from the recipient ─► isDuplicateImdnBody ─► drop (delivered already reported)
 * ```
 */
import { DEFAULTS, type ContinuationFlag } from '../constants.js';
import type { ByteRange, FailureReport } from '../msrp/headers.js';
import { randomId } from '../msrp/serializer.js';
import { DeliveredLog } from './delivered-log.js';
import {
  isDateTime,
  parseAggregatedImdn,
  parseImdn,
  type AggregateShape,
  type ImdnDocument,
} from './imdn.js';
import { ReportFrames } from './report-frame.js';
import { readReportHead, readReportPayload } from './report-scan.js';
import { mimeToken, type ReportKind, type ReportRequest } from './report-request.js';
import type {
  DropReason,
  HeadVerdict,
  TrackedChunk,
  TrackedMessage,
  TrackerHandler,
  UntrackedReason,
} from './tracker.js';
import { StringMap } from '../util/string-map.js';

/** When the relay reports delivery (`--reports`). */
export type ReportMode = 'on-ack' | 'on-receipt' | 'off';

/** What an injected report says. */
export type ReportOutcome = 'delivered' | 'failed' | 'processed';

/** The dialect a report request used, and so the form of the answer. */
export type ReportDialect = ReportRequest['dialect'];

/** What the policy needs to know about a tracked message besides its octets. */
export interface ReportMeta {
  /** The IM's To-Path as it arrived at this relay (header value): the report's From-Path. */
  toPath: string;
  /** The IM's From-Path as it arrived at this relay: the report's To-Path. */
  fromPath: string;
  /** True when this relay's next hop is the recipient endpoint (DESIGN.md: only then it injects). */
  lastHop: boolean;
}

/** Options of a {@link ReportPolicy}. */
export interface ReportPolicyOptions<O, M extends ReportMeta> {
  /** `--reports`; default `on-ack`. */
  mode?: ReportMode;
  /** `--reports-dedupe`: drop the recipient's delivery IMDN for a message already reported; default true. */
  dedupe?: boolean;
  /** `--reports-processing`: answer `processing` requests with `processed`; default false. */
  processing?: boolean;
  /**
   * Writes an injected report (a whole MSRP SEND) toward the sender, `msg.owner`'s connection; returns
   * false when it has no way there (its connection closed and no other leads to the sender).
   */
  inject(msg: TrackedMessage<O, M>, frame: Buffer, outcome: ReportOutcome): boolean | void;
  /**
   * Largest report frame `owner`'s connection takes whole (a WebSocket peer: one message per frame, RFC
   * 7977 §5.1); a larger report is not sent (counted `unanswerable`). Default: no limit.
   */
  maxFrameBytes?(owner: O): number;
  /** Delivery notifications remembered for dedupe (oldest written dropped first; a lookup does not renew). */
  dedupeEntries?: number;
  /** How long a delivered report is remembered, ms. */
  dedupeTtlMs?: number;
  /** Largest IMDN (whole SEND body) {@link ReportPolicy.isImdnCandidate} proposes to hold for dedupe. */
  maxImdnBytes?: number;
  /**
   * A message of `owner`'s was left untracked by `cap` (it gets no report): the relay logs it. Called after
   * the counters moved.
   */
  onUntracked?(owner: O, cap: UntrackedCap): void;
  /** Milliseconds clock: report DateTime and dedupe expiry (tests). */
  now?: () => number;
  /** New identifiers: transaction id, MSRP Message-ID, imdn.Message-ID (tests). Default {@link randomId}. */
  newId?: () => string;
}

/**
 * Why a message was not tracked: a cap of all connections or of its sending connection (the tracker's
 * {@link UntrackedReason}s), too many holes, or a later chunk's paths that passed a head-byte cap.
 */
export type UntrackedCap = Exclude<UntrackedReason, 'finished'> | 'holes' | 'paths';

/** Counters of every outcome; plain numbers for the metrics layer to read. */
export interface ReportCounters {
  /** Report requests seen in IMs toward local recipients, by dialect and kind (one IM may count several). */
  requests: Record<ReportDialect, Record<ReportKind, number>>;
  /** Reports injected, by dialect and outcome. */
  injected: Record<ReportDialect, Record<ReportOutcome, number>>;
  /** Recipient delivery IMDNs dropped because the relay had reported delivery already. */
  duplicatesDropped: number;
  /**
   * IMs the recipient reported delivery (or failure) of itself before its 200 (under `on-ack`): its
   * IMDN went on, and the relay injects none for them.
   */
  recipientReported: number;
  /**
   * IMs whose delivery notification (`delivered` or `failed`) the relay had injected already, sent again
   * under the same imdn.Message-ID (a retransmission): no second one (digest §5.4).
   */
  alreadyReported: number;
  /** Messages not tracked because a cap was reached (or the message had too many holes). */
  untracked: number;
  /** {@link untracked}, by the cap that left the message out. */
  untrackedBy: Record<UntrackedCap, number>;
  /** Chunks of messages that had already finished (late, repeated, or sent after a failure). */
  late: number;
  /**
   * Messages that failed (non-200, timeout, lost recipient, 413) before the relay had read their whole
   * CPIM head: what they asked for is unknown, so no notification (the sender has its failure REPORT).
   */
  failedBeforeHead: number;
  /** CPIM heads that did not parse, or were not complete within the head cap. */
  inspectionFailures: number;
  /** Requests that cannot be answered: no CPIM From/To, or (RFC 5438 form) no valid DateTime to echo. */
  unanswerable: number;
  /** IMs that requested nothing. */
  notRequested: number;
  /** IMs whose requests the relay does not answer (only `display`, or `processing` with the flag off). */
  notForRelay: number;
  /** Messages that are themselves reports (IMDNs): never reported on. */
  reportsSeen: number;
  /** A requested report the dialect cannot express (`processed` in legacy form). */
  suppressed: number;
  /** Tracked messages abandoned by their sender (`#`, or its connection closed mid-chunk). */
  aborted: number;
  /** Tracked messages dropped after the idle timeout while still missing octets. */
  timedOut: number;
  /**
   * IMs that asked for a delivery report, whole but without an outcome yet, when the connection they came
   * on closed: their report could only have gone back on it (through a chain: the link to the previous
   * relay), so none is sent (chaining audit: they were dropped without a trace).
   */
  senderGone: number;
}

/** Fresh zeroed counters. */
export function createReportCounters(): ReportCounters {
  const kinds = (): Record<ReportKind, number> => ({
    'positive-delivery': 0,
    'negative-delivery': 0,
    display: 0,
    processing: 0,
  });
  const outcomes = (): Record<ReportOutcome, number> => ({ delivered: 0, failed: 0, processed: 0 });
  return {
    requests: { imdn: kinds(), legacy: kinds() },
    injected: { imdn: outcomes(), legacy: outcomes() },
    duplicatesDropped: 0,
    recipientReported: 0,
    alreadyReported: 0,
    untracked: 0,
    untrackedBy: {
      messages: 0,
      'owner-messages': 0,
      'head-bytes': 0,
      'owner-head-bytes': 0,
      holes: 0,
      paths: 0,
    },
    late: 0,
    failedBeforeHead: 0,
    inspectionFailures: 0,
    unanswerable: 0,
    notRequested: 0,
    notForRelay: 0,
    reportsSeen: 0,
    suppressed: 0,
    aborted: 0,
    timedOut: 0,
    senderGone: 0,
  };
}

/** Bits of `TrackedMessage.flags`: which reports were injected for the message. */
const SENT_DELIVERED = 1;
const SENT_FAILED = 2;
const SENT_PROCESSED = 4;
/** The message is in `ReportPolicy.awaiting`. */
const AWAITING = 8;

/**
 * The session key to track a message under: the recipient's session URI, which is the last URI of the
 * IM's To-Path and the last URI of the From-Path of anything the recipient sends back (its IMDNs).
 */
export function recipientSessionKey(path: string): string {
  const s = path.trimEnd();
  return s.slice(s.lastIndexOf(' ') + 1).trimStart();
}

/**
 * True when the octets of a forwarded chunk count as acknowledged once written to the recipient,
 * rather than on its 200: with Failure-Report `no` or `partial` the recipient never answers 200
 * (RFC 4975 §7.1.1), so waiting for one would never report delivery.
 */
export function acknowledgedOnSend(failureReport: FailureReport): boolean {
  return failureReport !== 'yes';
}

/** True when a Content-Type value names `message/cpim` (case, parameters and white space ignored). */
function isCpimType(value: string | undefined): boolean {
  // The usual value is exactly that: no lower-cased copy of it per message.
  if (value === 'message/cpim') return true;
  return mimeToken(value) === 'message/cpim';
}

/** Decides and builds injected delivery reports; see the module comment and DESIGN.md. */
export class ReportPolicy<O, M extends ReportMeta> implements TrackerHandler<O, M> {
  readonly mode: ReportMode;
  readonly dedupe: boolean;
  readonly processing: boolean;
  readonly counters = createReportCounters();
  private readonly sink: ReportPolicyOptions<O, M>['inject'];
  private readonly maxFrameBytes: ((owner: O) => number) | undefined;
  private readonly delivered: DeliveredLog;
  private readonly frames = new ReportFrames(DEFAULTS.reportTemplates);
  private readonly maxImdnBytes: number;
  private readonly onUntrackedCap: ((owner: O, cap: UntrackedCap) => void) | undefined;
  private readonly now: () => number;
  private readonly newId: () => string;
  /**
   * `on-ack` IMs that asked for a delivery report and have none yet, by recipient session and
   * imdn.Message-ID: a recipient that sends its own delivery IMDN before its 200 reports them itself
   * (DESIGN.md "Exactly one"), so its IMDN is held and checked like a duplicate (dedupe on). A session's
   * map stays while it empties and fills again; {@link sweep} drops the empty ones. The inner maps are
   * StringMaps: an entry comes and goes per IM (see lib/util/string-map.ts).
   */
  private readonly awaiting = new Map<string, StringMap<TrackedMessage<O, M>>>();
  /** Entries in all of {@link awaiting}'s maps. */
  private awaitingCount = 0;

  constructor(options: ReportPolicyOptions<O, M>) {
    this.mode = options.mode ?? 'on-ack';
    this.dedupe = options.dedupe ?? true;
    this.processing = options.processing ?? false;
    this.sink = options.inject;
    this.maxFrameBytes = options.maxFrameBytes;
    this.delivered = new DeliveredLog(
      options.dedupeEntries ?? DEFAULTS.reportDedupeEntries,
      options.dedupeTtlMs ?? DEFAULTS.reportDedupeTtlMs,
    );
    this.maxImdnBytes = options.maxImdnBytes ?? DEFAULTS.cpimHeadBytes;
    this.onUntrackedCap = options.onUntracked;
    this.now = options.now ?? Date.now;
    this.newId = options.newId ?? (() => randomId());
  }

  /**
   * Whether a SEND chunk is worth tracking: reports on, this relay the last before the recipient, and a
   * `message/cpim` body (only CPIM can carry a report request).
   */
  shouldTrack(contentType: string | undefined, lastHop: boolean): boolean {
    return this.mode !== 'off' && lastHop && isCpimType(contentType);
  }

  /**
   * Whether a SEND chunk may be a recipient's delivery IMDN the relay should hold whole (instead of
   * cutting it through) to run {@link isDuplicateImdnBody} on it: dedupe on; something reported delivered
   * in the sender's session `sessionKey` (when given), or an IM toward it awaiting its report; a
   * `message/cpim` body in one chunk `1-N/N` (or range-end `*`) of at most `maxImdnBytes`, or in a chunk
   * without Byte-Range (held up to {@link holdLimit} octets).
   */
  isImdnCandidate(contentType: string | undefined, range: ByteRange | null, sessionKey?: string): boolean {
    if (!this.dedupe || this.mode === 'off' || (this.delivered.size === 0 && this.awaitingCount === 0))
      return false;
    if (
      sessionKey !== undefined &&
      !this.delivered.hasSession(sessionKey) &&
      (this.awaiting.get(sessionKey)?.size ?? 0) === 0
    )
      return false;
    if (!isCpimType(contentType)) return false;
    // No Byte-Range: the whole message is in this chunk (RFC 4975 §7.3.1), its size unknown until its
    // end; the caller holds at most maxImdnBytes of it and forwards it as usual beyond that.
    if (range === null) return true;
    const { start, end, total } = range;
    // `1-*/N`: a whole message whose sender kept the right to interrupt it (RFC 4975 §7.1).
    return (
      start === 1 && typeof total === 'number' && (end === total || end === '*') && total <= this.maxImdnBytes
    );
  }

  /**
   * True when the relay must inject a report before it forwards this chunk's end-line: mode `on-receipt`,
   * the chunk makes the message whole, and delivery was (or, head not read yet, may have been) requested.
   * The report is injected synchronously inside `tracker.end(chunk, flag)`, so calling that before
   * forwarding the end-line is enough; this tells the relay whether it must also wait.
   */
  mustHoldEnd(chunk: TrackedChunk<O, M>, flag: ContinuationFlag): boolean {
    if (this.mode !== 'on-receipt' || !chunk.wouldBeWhole(flag)) return false;
    const msg = chunk.msg;
    if (!msg.meta.lastHop) return false;
    return msg.request === null || msg.request.kinds.has('positive-delivery');
  }

  /**
   * True when `cpimBody` (a whole message/cpim body) is a delivery notification from the recipient for an
   * IM this relay already reported delivered in session `sessionKey`: the caller drops it (DESIGN.md
   * "Exactly one"; digest §5.4: at most one notification per category). The entry stays until it
   * expires, so a repeated copy is dropped too. Counted. The head is read by the same scan as an IM's.
   * A delivery notification for an IM the relay has not reported yet goes on, and the relay then injects
   * none for that IM. An aggregate is read part by part and dropped only when every part is such a
   * duplicate (a body is never edited).
   */
  isDuplicateImdnBody(sessionKey: string, cpimBody: Buffer): boolean {
    if (!this.dedupe || (this.delivered.size === 0 && this.awaitingCount === 0)) return false;
    let docs: ImdnDocument[];
    const seen: AggregateShape = { parts: 1, bad: 0, closed: true };
    try {
      const found = readReportPayload(cpimBody);
      if (found === null || found === 'incomplete') return false;
      const payload = cpimBody.subarray(found.bodyOffset);
      if (found.kind === 'imdn' || found.kind === 'legacy') docs = [parseImdn(payload)];
      // RFC 5438 §8.3, digest §5.8: each part of an aggregate is about its own IM (a fuzzing audit found
      // aggregates neither dropped nor taken for the recipient reporting first).
      else if (found.kind === 'aggregate') docs = parseAggregatedImdn(found.contentType, payload, seen);
      else return false;
    } catch {
      return false; // not ours to judge (malformed head or document): forwarded as it is
    }
    const now = this.now();
    let duplicates = 0;
    for (const doc of docs) {
      if (doc.notification !== 'delivery') continue;
      if (this.delivered.has(sessionKey, doc.messageId, now)) {
        duplicates++;
        continue;
      }
      const msg = this.awaiting.get(sessionKey)?.get(doc.messageId);
      if (msg !== undefined) {
        // The recipient reported first: one notification per category (digest §5.4), so none of ours,
        // for this message nor for another copy of the IM tracked meanwhile (a resend, or one from a new
        // link of a relay whose old link's copy the tracker kept): its claim in the log stops them. A
        // `failed`-kind claim, so the recipient's own copies are not taken for duplicates of ours.
        msg.flags |= SENT_DELIVERED | SENT_FAILED;
        this.unawait(msg);
        this.delivered.claim(sessionKey, doc.messageId, now, true);
        this.counters.recipientReported++;
      }
    }
    // Dropped only when all of it repeats what the relay reported: bodies are never edited, so an
    // aggregate that carries anything else, or a part unread (no close-delimiter) or malformed that may
    // say something else, goes on whole.
    if (!seen.closed || seen.bad > 0) return false;
    if (duplicates === 0 || duplicates !== docs.length || docs.length !== seen.parts) return false;
    this.counters.duplicatesDropped++;
    return true;
  }

  /** Forgets notifications remembered for dedupe whose time is up; call from the periodic tick. */
  sweep(now = this.now()): void {
    this.delivered.expire(now);
    for (const [session, msgs] of this.awaiting) if (msgs.size === 0) this.awaiting.delete(session);
  }

  // ---- TrackerHandler ------------------------------------------------------------------------------

  /** Body octets of a SEND without Byte-Range held for the dedupe check before it is forwarded as usual. */
  get holdLimit(): number {
    return this.maxImdnBytes;
  }

  /** Reads the CPIM head: keeps the message when it requested a report this relay gives. */
  onHead(msg: TrackedMessage<O, M>, prefix: Buffer, final: boolean): HeadVerdict {
    if (this.mode === 'off' || !msg.meta.lastHop) return 'drop';
    if (prefix.length === 0) return final ? 'drop' : 'more';
    const found = readReportHead(prefix);
    if (found === 'incomplete') {
      // A head split over chunks: retried as bytes arrive, given up at the cap (DESIGN.md "Limits").
      if (!final) return 'more';
      this.counters.inspectionFailures++;
      return 'drop';
    }
    if (found === 'malformed') {
      this.counters.inspectionFailures++;
      return 'drop';
    }
    // RFC 5438 §7.2.1: never an IMDN for an IMDN.
    if (found === 'report') {
      this.counters.reportsSeen++;
      return 'drop';
    }
    const req = found;
    if (req === null) {
      this.counters.notRequested++;
      return 'drop';
    }
    const seen = this.counters.requests[req.dialect];
    for (const kind of req.kinds) seen[kind]++;
    // DESIGN.md: display reports come only from the recipient; processing only with the flag on.
    if (!this.answers(req)) {
      this.counters.notForRelay++;
      return 'drop';
    }
    // Digest §5.4: the report swaps CPIM From and To and echoes DateTime; without them there is none.
    // A DateTime that is no date-time cannot be echoed either: <datetime> must be one (RFC 5438 schema).
    if (
      req.from === undefined ||
      req.to === undefined ||
      (req.dialect === 'imdn' && (req.dateTime === undefined || !isDateTime(req.dateTime)))
    ) {
      this.counters.unanswerable++;
      return 'drop';
    }
    msg.request = req;
    if (
      this.dedupe &&
      this.mode === 'on-ack' &&
      (req.kinds.has('positive-delivery') || req.kinds.has('negative-delivery'))
    ) {
      this.await(msg, req);
    }
    return 'keep';
  }

  /** Every octet is held: `processed` now; under `on-receipt`, `delivered` now too. */
  onWhole(msg: TrackedMessage<O, M>): boolean {
    const req = msg.request;
    if (req === null) return false;
    if (this.processing && req.kinds.has('processing')) this.report(msg, 'processed');
    const positive = req.kinds.has('positive-delivery');
    const negative = req.kinds.has('negative-delivery');
    if (this.mode === 'on-receipt' && positive) {
      this.report(msg, 'delivered');
      // Digest §5.4: one notification per category, so no `failed` can follow: stop tracking.
      return false;
    }
    return positive || negative;
  }

  /** Every octet received and acknowledged by the recipient: `delivered` under `on-ack`. */
  onComplete(msg: TrackedMessage<O, M>): void {
    if ((msg.flags & AWAITING) !== 0) this.unawait(msg);
    const req = msg.request;
    if (req === null || this.mode !== 'on-ack') return;
    if (req.kinds.has('positive-delivery')) this.report(msg, 'delivered');
  }

  /** A chunk got a non-200, timed out (408), the recipient was lost (481) or refused the size (413). */
  onFailed(msg: TrackedMessage<O, M>, code: number): void {
    if ((msg.flags & AWAITING) !== 0) this.unawait(msg);
    const req = msg.request;
    if (req === null) {
      // Still tracked without a request: its head was not read yet (one read is kept or dropped). Audit,
      // twentieth session: a first chunk that ends inside the CPIM head, then a failure.
      this.counters.failedBeforeHead++;
      return;
    }
    if ((msg.flags & SENT_DELIVERED) !== 0) return;
    if (req.kinds.has('negative-delivery')) this.report(msg, 'failed', code);
  }

  /** Counts messages forgotten without an outcome. */
  onDropped(msg: TrackedMessage<O, M>, reason: DropReason): void {
    if ((msg.flags & AWAITING) !== 0) this.unawait(msg);
    if (reason === 'aborted') this.counters.aborted++;
    else if (reason === 'timeout') this.counters.timedOut++;
    // Whole and waiting for the recipient's 200, or between chunks (metrics audit: that one counted nothing;
    // one cut mid-chunk is `aborted`).
    else if (reason === 'owner-closed' && this.owesDelivery(msg)) this.counters.senderGone++;
    else if (reason === 'holes' || reason === 'caps')
      this.untrack(msg.owner, reason === 'holes' ? 'holes' : 'paths');
  }

  /** Counts chunks the tracker did not track. */
  onUntracked(owner: O, reason: UntrackedReason): void {
    if (reason === 'finished') this.counters.late++;
    else this.untrack(owner, reason);
  }

  private untrack(owner: O, cap: UntrackedCap): void {
    this.counters.untracked++;
    this.counters.untrackedBy[cap]++;
    this.onUntrackedCap?.(owner, cap);
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** Enters `msg` in {@link awaiting}; a message with the same key already there stays (the first wins). */
  private await(msg: TrackedMessage<O, M>, req: ReportRequest): void {
    let msgs = this.awaiting.get(msg.sessionKey);
    if (msgs === undefined) {
      msgs = new StringMap(16);
      this.awaiting.set(msg.sessionKey, msgs);
    } else if (msgs.has(req.messageId)) {
      return;
    }
    msgs.set(req.messageId, msg);
    this.awaitingCount++;
    msg.flags |= AWAITING;
  }

  private unawait(msg: TrackedMessage<O, M>): void {
    msg.flags &= ~AWAITING;
    if (this.awaiting.get(msg.sessionKey)?.delete(msg.request!.messageId) === true) this.awaitingCount--;
  }

  /** True when `msg` asked for a delivery notification (positive or negative) not sent yet. */
  owesDelivery(msg: TrackedMessage<O, M>): boolean {
    const k = msg.request?.kinds;
    if (k === undefined || (msg.flags & (SENT_DELIVERED | SENT_FAILED)) !== 0) return false;
    return k.has('negative-delivery') || k.has('positive-delivery');
  }

  /** True when the request asks for something this relay answers. */
  private answers(req: ReportRequest): boolean {
    const k = req.kinds;
    return (
      k.has('positive-delivery') || k.has('negative-delivery') || (this.processing && k.has('processing'))
    );
  }

  /**
   * A report that could not be sent after all (`unanswerable`): its claim is given back, so the
   * recipient's own delivery IMDN, if it sends one, is not dropped as a duplicate of nothing.
   */
  private unsent(msg: TrackedMessage<O, M>, outcome: ReportOutcome): void {
    this.counters.unanswerable++;
    if (outcome !== 'processed') this.delivered.forget(msg.sessionKey, msg.request!.messageId);
  }

  /**
   * Builds and hands over one report. The SEND looks like a message from the recipient (DESIGN.md "The
   * injected SEND"): paths swapped, a new Message-ID, `Failure-Report: no` and `Success-Report: no` so
   * nothing answers it (digest §5.5 #3), `Byte-Range: 1-N/N`, a message/cpim body.
   */
  private report(msg: TrackedMessage<O, M>, outcome: ReportOutcome, code?: number): void {
    const req = msg.request!;
    const bit =
      outcome === 'delivered' ? SENT_DELIVERED : outcome === 'failed' ? SENT_FAILED : SENT_PROCESSED;
    if ((msg.flags & bit) !== 0) return;
    if (outcome === 'processed' && req.dialect === 'legacy') {
      this.counters.suppressed++; // the legacy status-report has no processing notification
      return;
    }
    const now = this.now();
    // Digest §5.4: one notification per category, delivery (`delivered` or `failed`) being one. A
    // single-chunk IM leaves no tombstone when it finishes, so the same IM sent again is tracked anew:
    // the log of delivery notifications sent tells it apart (while its entry lasts). A `failed` entry
    // does not count for the dedupe of the recipient's own IMDNs (delivered ones only).
    if (
      outcome !== 'processed' &&
      !this.delivered.claim(msg.sessionKey, req.messageId, now, outcome === 'failed')
    ) {
      msg.flags |= SENT_DELIVERED | SENT_FAILED;
      this.counters.alreadyReported++;
      return;
    }
    let frame: Buffer;
    try {
      frame = this.frames.build(
        msg.sessionKey,
        {
          req,
          outcome,
          failureCode: code,
          toPath: msg.meta.fromPath.trim(),
          fromPath: msg.meta.toPath.trim(),
        },
        now,
        this.newId,
      );
    } catch {
      this.unsent(msg, outcome); // e.g. a value XML cannot carry
      return;
    }
    // A report is one whole SEND: toward a WebSocket sender it must fit one message (a CPIM address
    // kilobytes long can make it pass the limit).
    if (this.maxFrameBytes !== undefined && frame.length > this.maxFrameBytes(msg.owner)) {
      this.unsent(msg, outcome);
      return;
    }
    msg.flags |= bit;
    if (this.sink(msg, frame, outcome) === false) {
      // The sender's connection went and nothing else leads there: as for a message dropped with it.
      this.counters.senderGone++;
      if (outcome !== 'processed') this.delivered.forget(msg.sessionKey, req.messageId);
      return;
    }
    this.counters.injected[req.dialect][outcome]++;
  }
}
