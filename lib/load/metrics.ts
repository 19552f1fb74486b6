/**
 * What one load run counts: messages and bytes by outcome, errors by MSRP code and source, reports, and
 * three latency histograms. {@link LoadMetrics} lives in the thread that drives the sessions; its
 * {@link MetricsSnapshot} is plain data, posted by worker threads and merged by the main thread.
 */
import { LatencyHistogram, type HistogramSnapshot } from './histogram.js';

/** Counters by key (MSRP status code, IMDN status, setup failure reason). */
export type CountMap = Record<string, number>;

/** The plain-data form of {@link LoadMetrics}. */
export interface MetricsSnapshot {
  sessionsRequested: number;
  sessionsEstablished: number;
  sessionsFailed: number;
  /** Sessions whose connection closed before the end of the run. */
  sessionsDropped: number;
  /** AUTH refreshes before the Use-Path expired, and those that failed. */
  reauths: number;
  reauthFailures: number;
  /** Setup failures by reason (`auth-401`, `connect-ECONNREFUSED`, ...). */
  setupErrors: CountMap;
  messagesSent: number;
  messagesDelivered: number;
  messagesFailed: number;
  messagesLost: number;
  /** Open loop: messages that fell due while no session could send, skipped. */
  messagesSkipped: number;
  bytesSent: number;
  bytesDelivered: number;
  chunksSent: number;
  chunksAcknowledged: number;
  /** Non-200 transaction responses to SEND chunks, by status code. */
  responseErrors: CountMap;
  /** Failure REPORTs received, by status code. */
  failureReports: CountMap;
  /** Negative IMDNs received (failed, forbidden, error), by status. */
  imdnErrors: CountMap;
  /** Chunks that got no response within the transaction timeout. */
  timeouts: number;
  /** Chunks whose connection closed before their response came. */
  disconnects: number;
  /** Messages the receiver got with another length than was sent. */
  bodyMismatches: number;
  /** Messages that asked for a positive-delivery report. */
  reportsRequested: number;
  /** Delivery reports received, by IMDN status (`delivered`, `failed`, ...). */
  reportsReceived: CountMap;
  /** Messages delivered that asked for a positive report and got none by the end. */
  reportsMissing: number;
  /** Reports for a message that already had one (relay and recipient both reporting). */
  reportsDuplicate: number;
  /** Reports naming no message of this run. */
  reportsUnmatched: number;
  /** Milliseconds from the start signal to the last message outcome, per thread (max when merged). */
  activeMs: number;
  firstHop: HistogramSnapshot;
  delivery: HistogramSnapshot;
  report: HistogramSnapshot;
}

/** The progress a thread reports while running. */
export interface ProgressCounters {
  sessionsEstablished: number;
  messagesSent: number;
  messagesDelivered: number;
  messagesFailed: number;
  errors: number;
}

function bump(map: CountMap, key: string | number, by = 1): void {
  const k = String(key);
  map[k] = (map[k] ?? 0) + by;
}

function addMap(into: CountMap, from: CountMap): void {
  for (const [k, v] of Object.entries(from)) bump(into, k, v);
}

function sum(map: CountMap): number {
  let n = 0;
  for (const v of Object.values(map)) n += v;
  return n;
}

/** Mutable counters and histograms of one thread, or the merge of several. */
export class LoadMetrics {
  sessionsRequested = 0;
  sessionsEstablished = 0;
  sessionsFailed = 0;
  sessionsDropped = 0;
  reauths = 0;
  reauthFailures = 0;
  readonly setupErrors: CountMap = {};
  messagesSent = 0;
  messagesDelivered = 0;
  messagesFailed = 0;
  messagesLost = 0;
  messagesSkipped = 0;
  bytesSent = 0;
  bytesDelivered = 0;
  chunksSent = 0;
  chunksAcknowledged = 0;
  readonly responseErrors: CountMap = {};
  readonly failureReports: CountMap = {};
  readonly imdnErrors: CountMap = {};
  timeouts = 0;
  disconnects = 0;
  bodyMismatches = 0;
  reportsRequested = 0;
  readonly reportsReceived: CountMap = {};
  reportsMissing = 0;
  reportsDuplicate = 0;
  reportsUnmatched = 0;
  activeMs = 0;
  /** SEND chunk written → its transaction response from the first hop. */
  readonly firstHop = new LatencyHistogram();
  /** First chunk written → the receiving endpoint holds the whole message. */
  readonly delivery = new LatencyHistogram();
  /** First chunk written → the positive delivery report arrives at the sender. */
  readonly report = new LatencyHistogram();

  /** Counts a setup failure under `reason`. */
  setupFailed(reason: string): void {
    this.sessionsFailed++;
    bump(this.setupErrors, reason);
  }

  /** Counts a non-200 response to a SEND chunk. */
  responseError(code: number): void {
    bump(this.responseErrors, code);
  }

  /** Counts a failure REPORT. */
  failureReport(code: number): void {
    bump(this.failureReports, code);
  }

  /** Counts a received delivery report with IMDN status `status`; negative ones are also errors. */
  reportReceived(status: string): void {
    bump(this.reportsReceived, status);
    if (status !== 'delivered') bump(this.imdnErrors, status);
  }

  /** Every error event: non-200 responses, failure REPORTs, negative IMDNs, timeouts, disconnects, mismatches. */
  get errorEvents(): number {
    return (
      sum(this.responseErrors) +
      sum(this.failureReports) +
      sum(this.imdnErrors) +
      this.timeouts +
      this.disconnects +
      this.bodyMismatches
    );
  }

  /** What the progress line shows. */
  progress(): ProgressCounters {
    return {
      sessionsEstablished: this.sessionsEstablished,
      messagesSent: this.messagesSent,
      messagesDelivered: this.messagesDelivered,
      messagesFailed: this.messagesFailed,
      errors: this.errorEvents,
    };
  }

  /** The postable form. */
  snapshot(): MetricsSnapshot {
    return {
      sessionsRequested: this.sessionsRequested,
      sessionsEstablished: this.sessionsEstablished,
      sessionsFailed: this.sessionsFailed,
      sessionsDropped: this.sessionsDropped,
      reauths: this.reauths,
      reauthFailures: this.reauthFailures,
      setupErrors: { ...this.setupErrors },
      messagesSent: this.messagesSent,
      messagesDelivered: this.messagesDelivered,
      messagesFailed: this.messagesFailed,
      messagesLost: this.messagesLost,
      messagesSkipped: this.messagesSkipped,
      bytesSent: this.bytesSent,
      bytesDelivered: this.bytesDelivered,
      chunksSent: this.chunksSent,
      chunksAcknowledged: this.chunksAcknowledged,
      responseErrors: { ...this.responseErrors },
      failureReports: { ...this.failureReports },
      imdnErrors: { ...this.imdnErrors },
      timeouts: this.timeouts,
      disconnects: this.disconnects,
      bodyMismatches: this.bodyMismatches,
      reportsRequested: this.reportsRequested,
      reportsReceived: { ...this.reportsReceived },
      reportsMissing: this.reportsMissing,
      reportsDuplicate: this.reportsDuplicate,
      reportsUnmatched: this.reportsUnmatched,
      activeMs: this.activeMs,
      firstHop: this.firstHop.snapshot(),
      delivery: this.delivery.snapshot(),
      report: this.report.snapshot(),
    };
  }

  /** Adds a snapshot from another thread (counters summed, histograms merged, activeMs maximised). */
  merge(s: MetricsSnapshot): void {
    this.sessionsRequested += s.sessionsRequested;
    this.sessionsEstablished += s.sessionsEstablished;
    this.sessionsFailed += s.sessionsFailed;
    this.sessionsDropped += s.sessionsDropped;
    this.reauths += s.reauths;
    this.reauthFailures += s.reauthFailures;
    addMap(this.setupErrors, s.setupErrors);
    this.messagesSent += s.messagesSent;
    this.messagesDelivered += s.messagesDelivered;
    this.messagesFailed += s.messagesFailed;
    this.messagesLost += s.messagesLost;
    this.messagesSkipped += s.messagesSkipped;
    this.bytesSent += s.bytesSent;
    this.bytesDelivered += s.bytesDelivered;
    this.chunksSent += s.chunksSent;
    this.chunksAcknowledged += s.chunksAcknowledged;
    addMap(this.responseErrors, s.responseErrors);
    addMap(this.failureReports, s.failureReports);
    addMap(this.imdnErrors, s.imdnErrors);
    this.timeouts += s.timeouts;
    this.disconnects += s.disconnects;
    this.bodyMismatches += s.bodyMismatches;
    this.reportsRequested += s.reportsRequested;
    addMap(this.reportsReceived, s.reportsReceived);
    this.reportsMissing += s.reportsMissing;
    this.reportsDuplicate += s.reportsDuplicate;
    this.reportsUnmatched += s.reportsUnmatched;
    this.activeMs = Math.max(this.activeMs, s.activeMs);
    this.firstHop.merge(s.firstHop);
    this.delivery.merge(s.delivery);
    this.report.merge(s.report);
  }
}
