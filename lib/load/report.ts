/**
 * The result of a load run: {@link LoadReport} is the stable JSON schema (`--json FILE`, documented field
 * by field in docs/load-testing.md; new fields may be added, none renamed or removed within a schema
 * version), {@link formatReport} the aligned plain-text table, {@link errorRateOf} and the pass/fail rule.
 */
import { cpus, hostname, totalmem } from 'node:os';
import type { LatencySummary } from './histogram.js';
import type { CountMap, LoadMetrics } from './metrics.js';
import type { LoadConfig, ReportDialect, RequestedReport, SizeWeight } from './options.js';
import { authUri } from './target.js';
import type { LoadTransport } from './target.js';

/** Identifies this schema; bumped only for incompatible changes. */
export const LOAD_REPORT_SCHEMA = 'msrp-relay/load-report/v1';
/** Version of the tool written into reports. */
export const TOOL_VERSION = '0.1.0';

/** A load run's result; every number is a count, bytes, seconds, or (latency) milliseconds. */
export interface LoadReport {
  schema: typeof LOAD_REPORT_SCHEMA;
  tool: { name: 'msrp-relay load'; version: string };
  /** ISO 8601 times of the start (before setup) and the end (after close). */
  startedAt: string;
  finishedAt: string;
  /** The command line, or `runLoad()` for programmatic runs. */
  command: string;
  environment: {
    node: string;
    platform: string;
    arch: string;
    hostname: string;
    cpus: number;
    cpuModel: string;
    totalMemoryBytes: number;
  };
  config: {
    target: string;
    transport: LoadTransport;
    /** AUTH To-Path of the first endpoint (RFC 4976 §5.1). */
    authUri: string;
    /** The relay receivers use (`--receiver-target`); the same as `target` unless given. */
    receiverTarget: string;
    sessions: number;
    workers: number;
    pacing: 'open-loop' | 'closed-loop';
    /** Open loop: messages/s over all sessions; null in a closed loop. */
    rate: number | null;
    /** Closed loop: messages in flight per session; null in an open loop. */
    concurrency: number | null;
    messages: number | null;
    durationSeconds: number | null;
    rampUpSeconds: number;
    /** Messages sent in the first seconds of traffic, left out of the latency figures. */
    warmUpSeconds: number;
    drainSeconds: number;
    timeoutSeconds: number;
    holdSeconds: number;
    /** Payload sizes (before the CPIM head) and their weights. */
    sizes: SizeWeight[];
    chunkSize: number;
    cpim: boolean;
    requestReports: RequestedReport[];
    /** The form the IMs asked for reports in. */
    reportDialect: ReportDialect;
    receiverImdn: boolean;
    /** What the receiving endpoint answers each chunk with; null: nothing. */
    receiverStatus: number | null;
    /** Accounts used (0: AUTH without credentials). */
    users: number;
    maxErrorRate: number;
  };
  timing: {
    /** Until every session was up (0 with a ramp-up). */
    setupSeconds: number;
    /** From the start signal to the last message outcome or the last message sent, whichever is later. */
    activeSeconds: number;
    /** startedAt to finishedAt. */
    totalSeconds: number;
  };
  sessions: {
    requested: number;
    established: number;
    failed: number;
    /** Closed by the other side (or lost) before the end of the run. */
    dropped: number;
    /** AUTH refreshes at 80 % of the granted Expires (RFC 4976 §5.1), and failed ones. */
    reauths: number;
    reauthFailures: number;
    /** Setup failures by reason: `AUTH 401`, `AUTH timeout`, `connect ECONNREFUSED`, ... */
    setupErrors: CountMap;
  };
  /** sent = delivered + failed + lost. */
  messages: { sent: number; delivered: number; failed: number; lost: number };
  /** Open loop only (null for a closed loop): what the rate had due and what it could not send. */
  openLoop: {
    /** Messages due by the end of the traffic at --rate (ramp-up included, at most --messages). */
    due: number;
    /** Due while no session could send (none up yet, or all gone): skipped, never sent late. */
    skippedWithoutSession: number;
    /** Fewer than 90 % of `due` were sent: the run did not offer the load asked for (it fails). */
    fellBehind: boolean;
  } | null;
  /** SEND chunks written and those answered 200 by the first hop. */
  chunks: { sent: number; acknowledged: number };
  /** Body octets (CPIM head included). */
  bytes: { sent: number; delivered: number };
  /** Per second of `timing.activeSeconds`. */
  throughput: {
    sentMessagesPerSecond: number;
    deliveredMessagesPerSecond: number;
    sentBytesPerSecond: number;
    deliveredBytesPerSecond: number;
  };
  /** Milliseconds. */
  latency: {
    /** SEND chunk written → its transaction response from the first hop (every chunk). */
    firstHop: LatencySummary;
    /** First chunk written → the receiver holds the whole message (delivered messages). */
    delivery: LatencySummary;
    /** First chunk written → the positive delivery IMDN is back at the sender. */
    report: LatencySummary;
  };
  reports: {
    /** Messages that asked for positive-delivery. */
    requested: number;
    /** Delivery IMDNs received, by status (delivered, failed, forbidden, error). */
    received: CountMap;
    /** Delivered messages that asked for a positive report and got none. */
    missing: number;
    /** A second report for the same message. */
    duplicates: number;
    /** Reports naming no message of this run. */
    unmatched: number;
  };
  errors: {
    /** Sum of the error events below. */
    total: number;
    /** Non-200 transaction responses to SEND chunks, by status code. */
    responses: CountMap;
    /** Failure REPORTs, by status code. */
    failureReports: CountMap;
    /** Negative delivery IMDNs, by status. */
    imdn: CountMap;
    /** Chunks without a response within the timeout. */
    timeouts: number;
    /** Chunks whose connection closed before the response. */
    disconnects: number;
    /** Messages received with a length other than sent. */
    bodyMismatches: number;
  };
  result: {
    /** (failed + lost) / sent; 0 when nothing was sent. */
    errorRate: number;
    /** (failed + dropped) sessions / requested sessions. */
    sessionErrorRate: number;
    maxErrorRate: number;
    /**
     * Both rates within maxErrorRate, at least one session up, a message sent (unless --messages 0), and
     * an open loop that sent at least 90 % of what was due.
     */
    passed: boolean;
    /** What `msrp-relay load` exits with: 0 passed, 1 failed. */
    exitCode: 0 | 1;
  };
}

/** Run facts the metrics do not hold. */
export interface ReportContext {
  config: LoadConfig;
  metrics: LoadMetrics;
  startedAt: Date;
  finishedAt: Date;
  setupMs: number;
  command: string;
}

/** (failed + lost) / sent, 0 when nothing was sent. */
export function errorRateOf(m: { sent: number; failed: number; lost: number }): number {
  return m.sent === 0 ? 0 : (m.failed + m.lost) / m.sent;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/**
 * True when a run meant to send sent nothing (every session came up too late, or none did): such a run
 * measured nothing and must not pass (load-tester audit: 10/10 sessions up, 0 sent, PASS).
 */
function nothingSent(cfg: LoadConfig, m: LoadMetrics): boolean {
  return m.messagesSent === 0 && cfg.messages !== 0 && m.sessionsRequested > 0;
}

/**
 * The open loop's due count over the traffic (`activeSeconds`, at most --duration) and whether it fell
 * behind: under 90 % of what was due sent (the tester could not keep up, or sessions were missing), when
 * at least 100 were due. Null for a closed loop.
 */
function openLoopFigures(
  cfg: LoadConfig,
  activeSeconds: number,
  sent: number,
  skipped: number,
): LoadReport['openLoop'] {
  if (cfg.rate === null) return null;
  const t = Math.min(cfg.duration ?? Infinity, activeSeconds);
  const ramp = cfg.rampUp;
  let due = t < ramp ? (cfg.rate * t * t) / (2 * ramp) : cfg.rate * (t - ramp / 2);
  if (cfg.messages !== null) due = Math.min(due, cfg.messages);
  due = Math.floor(due);
  return { due, skippedWithoutSession: skipped, fellBehind: due >= 100 && sent < 0.9 * due };
}

/** Builds the report from the merged metrics. */
export function buildReport(c: ReportContext): LoadReport {
  const { config: cfg, metrics: m } = c;
  const active = m.activeMs / 1000;
  const perSecond = (n: number): number => (active > 0 ? round3(n / active) : 0);
  const messages = {
    sent: m.messagesSent,
    delivered: m.messagesDelivered,
    failed: m.messagesFailed,
    lost: m.messagesLost,
  };
  const errorRate = errorRateOf(messages);
  // A session that came up and then lost a connection mid-run (the relay died or dropped it) fails the
  // run as one that never came up does.
  const sessionErrorRate =
    m.sessionsRequested === 0 ? 0 : (m.sessionsFailed + m.sessionsDropped) / m.sessionsRequested;
  const openLoop = openLoopFigures(cfg, active, m.messagesSent, m.messagesSkipped);
  const passed =
    errorRate <= cfg.maxErrorRate &&
    sessionErrorRate <= cfg.maxErrorRate &&
    (m.sessionsRequested === 0 || m.sessionsEstablished > 0) &&
    !nothingSent(cfg, m) &&
    openLoop?.fellBehind !== true;
  const cpu = cpus();
  return {
    schema: LOAD_REPORT_SCHEMA,
    tool: { name: 'msrp-relay load', version: TOOL_VERSION },
    startedAt: c.startedAt.toISOString(),
    finishedAt: c.finishedAt.toISOString(),
    command: c.command,
    environment: {
      node: process.version,
      platform: process.platform,
      arch: process.arch,
      hostname: hostname(),
      cpus: cpu.length,
      cpuModel: cpu[0]?.model.trim() ?? 'unknown',
      totalMemoryBytes: totalmem(),
    },
    config: {
      target: cfg.target.display,
      transport: cfg.target.transport,
      authUri: authUri(cfg.target, cfg.users[0]?.username),
      receiverTarget: cfg.receiverTarget.display,
      sessions: cfg.sessions,
      workers: cfg.workers,
      pacing: cfg.rate === null ? 'closed-loop' : 'open-loop',
      rate: cfg.rate,
      concurrency: cfg.concurrency,
      messages: cfg.messages,
      durationSeconds: cfg.duration,
      rampUpSeconds: cfg.rampUp,
      warmUpSeconds: cfg.warmUp,
      drainSeconds: cfg.drain,
      timeoutSeconds: cfg.timeout,
      holdSeconds: cfg.hold,
      sizes: cfg.sizes.map((s) => ({ ...s })),
      chunkSize: cfg.chunkSize,
      cpim: cfg.cpim,
      requestReports: [...cfg.requestReports],
      reportDialect: cfg.reportDialect,
      receiverImdn: cfg.receiverImdn,
      receiverStatus: cfg.receiverStatus,
      users: cfg.users.length,
      maxErrorRate: cfg.maxErrorRate,
    },
    timing: {
      setupSeconds: round3(c.setupMs / 1000),
      activeSeconds: round3(active),
      totalSeconds: round3((c.finishedAt.getTime() - c.startedAt.getTime()) / 1000),
    },
    sessions: {
      requested: m.sessionsRequested,
      established: m.sessionsEstablished,
      failed: m.sessionsFailed,
      dropped: m.sessionsDropped,
      reauths: m.reauths,
      reauthFailures: m.reauthFailures,
      setupErrors: { ...m.setupErrors },
    },
    messages,
    openLoop,
    chunks: { sent: m.chunksSent, acknowledged: m.chunksAcknowledged },
    bytes: { sent: m.bytesSent, delivered: m.bytesDelivered },
    throughput: {
      sentMessagesPerSecond: perSecond(m.messagesSent),
      deliveredMessagesPerSecond: perSecond(m.messagesDelivered),
      sentBytesPerSecond: perSecond(m.bytesSent),
      deliveredBytesPerSecond: perSecond(m.bytesDelivered),
    },
    latency: {
      firstHop: m.firstHop.summary(),
      delivery: m.delivery.summary(),
      report: m.report.summary(),
    },
    reports: {
      requested: m.reportsRequested,
      received: { ...m.reportsReceived },
      missing: m.reportsMissing,
      duplicates: m.reportsDuplicate,
      unmatched: m.reportsUnmatched,
    },
    errors: {
      total: m.errorEvents,
      responses: { ...m.responseErrors },
      failureReports: { ...m.failureReports },
      imdn: { ...m.imdnErrors },
      timeouts: m.timeouts,
      disconnects: m.disconnects,
      bodyMismatches: m.bodyMismatches,
    },
    result: {
      errorRate: round3(errorRate * 1000) / 1000,
      sessionErrorRate: round3(sessionErrorRate * 1000) / 1000,
      maxErrorRate: cfg.maxErrorRate,
      passed,
      exitCode: passed ? 0 : 1,
    },
  };
}

// ---- plain-text table ------------------------------------------------------------------------------

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const pct = (f: number): string => `${(f * 100).toFixed(3)} %`;
const ms = (n: number): string => (n >= 100 ? n.toFixed(1) : n >= 1 ? n.toFixed(2) : n.toFixed(3));

function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}

function counts(map: CountMap): string {
  const keys = Object.keys(map).sort();
  return keys.length === 0 ? '-' : keys.map((k) => `${k}×${int(map[k]!)}`).join('  ');
}

/** Left column padded, right column as is. */
function pairs(rows: Array<[string, string]>): string[] {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`);
}

/** Right-aligned columns with a header row. */
function table(head: string[], rows: string[][]): string[] {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]): string =>
    '  ' + cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)];
}

/** The report as an aligned plain-text table (what `msrp-relay load` prints). */
export function formatReport(r: LoadReport): string {
  const c = r.config;
  const pacing =
    c.pacing === 'open-loop'
      ? `open loop, ${int(c.rate ?? 0)} msg/s`
      : `closed loop, ${c.concurrency} in flight/session`;
  const sizes = c.sizes
    .map((s) => (c.sizes.length === 1 ? bytes(s.bytes) : `${bytes(s.bytes)}:${s.weight}`))
    .join(', ');
  const lat = (name: string, s: LatencySummary): string[] =>
    s.count === 0
      ? [name, '0', '-', '-', '-', '-', '-', '-']
      : [name, int(s.count), ms(s.p50), ms(s.p90), ms(s.p99), ms(s.p999), ms(s.max), ms(s.mean)];
  const out = [
    `msrp-relay load — ${r.environment.node}, ${r.environment.cpuModel} ×${r.environment.cpus}, ${r.startedAt}`,
    `command: ${r.command}`,
    '',
    ...pairs([
      ['target', `${c.target} (${c.transport}), AUTH ${c.authUri}`],
      ...(c.receiverTarget === c.target
        ? []
        : ([['receivers', `${c.receiverTarget}: each message crosses both relays`]] as Array<
            [string, string]
          >)),
      [
        'sessions',
        `${int(r.sessions.established)}/${int(r.sessions.requested)} up${unopenedNote(r)}, ${c.workers} worker(s)`,
      ],
      ['pacing', pacing],
      ['messages', `${sizes}, chunks of ${bytes(c.chunkSize)}${c.cpim ? ', message/cpim' : ''}`],
      [
        'time',
        `setup ${r.timing.setupSeconds} s, active ${r.timing.activeSeconds} s, total ${r.timing.totalSeconds} s`,
      ],
    ]),
    '',
    ...table(
      ['messages', 'sent', 'delivered', 'failed', 'lost'],
      [
        [
          'count',
          int(r.messages.sent),
          int(r.messages.delivered),
          int(r.messages.failed),
          int(r.messages.lost),
        ],
      ],
    ),
    '',
    ...pairs([
      [
        'throughput',
        `${int(r.throughput.deliveredMessagesPerSecond)} msg/s delivered, ${bytes(r.throughput.deliveredBytesPerSecond)}/s`,
      ],
      [
        'sent',
        `${int(r.throughput.sentMessagesPerSecond)} msg/s, ${bytes(r.throughput.sentBytesPerSecond)}/s`,
      ],
    ]),
    '',
    ...table(
      [
        c.warmUpSeconds > 0 ? `latency (ms, after a ${c.warmUpSeconds} s warm-up)` : 'latency (ms)',
        'count',
        'p50',
        'p90',
        'p99',
        'p99.9',
        'max',
        'mean',
      ],
      [
        lat('first hop (SEND→200)', r.latency.firstHop),
        lat('delivery (end to end)', r.latency.delivery),
        lat('report round trip', r.latency.report),
      ],
    ),
    '',
    ...pairs([
      ['errors', `${int(r.errors.total)} events, error rate ${pct(r.result.errorRate)}`],
      ['  responses', counts(r.errors.responses)],
      ['  failure REPORTs', counts(r.errors.failureReports)],
      ['  negative IMDNs', counts(r.errors.imdn)],
      ['  timeouts', int(r.errors.timeouts)],
      ['  disconnects', int(r.errors.disconnects)],
      ...(r.errors.bodyMismatches > 0
        ? [['  body mismatches', int(r.errors.bodyMismatches)] as [string, string]]
        : []),
      ['setup failures', counts(r.sessions.setupErrors)],
      ...(r.sessions.dropped > 0 ? [['sessions dropped', int(r.sessions.dropped)] as [string, string]] : []),
      ...(r.sessions.reauths + r.sessions.reauthFailures > 0
        ? [
            ['AUTH refreshes', `${int(r.sessions.reauths)} ok, ${int(r.sessions.reauthFailures)} failed`] as [
              string,
              string,
            ],
          ]
        : []),
      ...(c.requestReports.length > 0 || c.receiverImdn || r.reports.unmatched > 0
        ? [
            [
              'reports',
              `requested ${int(r.reports.requested)}, received ${counts(r.reports.received)}, ` +
                `missing ${int(r.reports.missing)}, duplicates ${int(r.reports.duplicates)}, ` +
                `unmatched ${int(r.reports.unmatched)}`,
            ] as [string, string],
          ]
        : []),
    ]),
    '',
  ];
  const ol = r.openLoop;
  if (ol !== null && (ol.fellBehind || ol.skippedWithoutSession > 0)) {
    const skipped =
      ol.skippedWithoutSession > 0
        ? `${int(ol.skippedWithoutSession)} fell due while no session was up and were skipped`
        : '';
    const late = ol.due - r.messages.sent - ol.skippedWithoutSession;
    out.push(
      `note: the open loop ${ol.fellBehind ? 'fell behind' : 'skipped messages'}: ${int(r.messages.sent)} of ` +
        `${int(ol.due)} messages due were sent` +
        (skipped ? `; ${skipped}` : '') +
        (ol.fellBehind && late >= 0.1 * ol.due
          ? '; the tester could not keep up, and the latency figures leave out the waiting of the rest ' +
            '(add --workers or lower --rate)'
          : ''),
      '',
    );
  }
  const why: string[] = [`error rate ${pct(r.result.errorRate)}`];
  if (r.sessions.failed + r.sessions.dropped > 0)
    why.push(`sessions failed or dropped ${pct(r.result.sessionErrorRate)}`);
  if (r.sessions.requested > 0 && r.sessions.established === 0) why.push('no session up');
  else if (r.messages.sent === 0 && r.config.messages !== 0) why.push('nothing sent');
  if (ol?.fellBehind === true) why.push('open loop fell behind');
  out.push(
    `result: ${r.result.passed ? 'PASS' : 'FAIL'} (${why.join(', ')}; max ${pct(r.result.maxErrorRate)})`,
  );
  return out.join('\n') + '\n';
}

/** `, N not opened (...)` when some sessions were neither set up nor refused (the run ended first). */
function unopenedNote(r: LoadReport): string {
  const n = r.sessions.requested - r.sessions.established - r.sessions.failed;
  return n > 0 ? `, ${int(n)} not opened (the run ended before their turn)` : '';
}
