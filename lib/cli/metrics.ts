/**
 * `--metrics-listen`: an HTTP server with `/metrics` (Prometheus text format, prom-client) and `/healthz`
 * (200 `ok` while accepting, 503 `draining` once shutdown started). Every value is read from
 * `Relay.stats()` when Prometheus scrapes: the relay only bumps plain numbers and never sees prom-client.
 * Each server has its own `Registry`, so one process (a test) can run several relays.
 *
 * ```
 * GET /metrics ─► RelayMetrics.render() ─► relay.stats() (one walk over the connections)
 *                                      └─► registry.metrics() ─► collect() of each metric reads it
 * GET /healthz ─► relay.isDraining ? 503 draining : 200 ok
 * ```
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import { pacedCollections } from '../io/read-gc.js';
import { AUTH_RESULTS } from '../relay/auth.js';
import { REFUSAL_REASONS } from '../relay/listeners.js';
import type { Relay } from '../relay/relay.js';
import { UNTRACKED_CAP_NAMES } from '../relay/relay-reports.js';
import { KNOWN_METHODS, type ConnectionState, type RelayStats } from '../relay/stats.js';
import type { UntrackedCap } from '../reports/policy.js';
import type { TransportKind } from '../transport/connection.js';

/** Sampling interval of the event-loop delay monitor, ms. */
const LOOP_RESOLUTION_MS = 10;

/** What the metrics layer needs from a relay. */
export type MetricsSource = Pick<Relay, 'stats' | 'isDraining' | 'tlsCertificate'>;

/** Options of {@link startMetricsServer}. */
export interface MetricsServerOptions {
  host: string;
  /** 0: any free port. */
  port: number;
  /** Also export prom-client's default process and Node.js metrics (RSS, CPU, heap, GC); default true. */
  defaultMetrics?: boolean;
}

/** A running metrics server. */
export interface MetricsServer {
  readonly host: string;
  /** The bound port. */
  readonly port: number;
  /** `http://host:port/metrics`. */
  readonly url: string;
  /** The registry behind `/metrics`. */
  readonly registry: Registry;
  /** Stops the server (open keep-alive connections too) and the event-loop monitor. */
  close(): Promise<void>;
}

type Labels = Record<string, string>;
type Sample = readonly [Labels, number];

const TRANSPORTS: readonly TransportKind[] = ['tcp', 'tls', 'ws', 'wss'];
const STATES: readonly ConnectionState[] = ['authenticated', 'unauthenticated', 'dialed', 'relay'];
const DIALECTS = ['imdn', 'legacy'] as const;
const REPORT_KINDS = ['positive-delivery', 'negative-delivery', 'display', 'processing'] as const;
const OUTCOMES = ['delivered', 'failed', 'processed'] as const;
/** Report-policy counters exported as `msrp_relay_reports_skipped_total{reason}`. */
const SKIP_REASONS = {
  not_requested: 'notRequested',
  not_for_relay: 'notForRelay',
  is_report: 'reportsSeen',
  inspection_failed: 'inspectionFailures',
  unanswerable: 'unanswerable',
  suppressed: 'suppressed',
  untracked: 'untracked',
  late: 'late',
  failed_before_head: 'failedBeforeHead',
  aborted: 'aborted',
  timed_out: 'timedOut',
  recipient_reported: 'recipientReported',
  already_reported: 'alreadyReported',
  sender_gone: 'senderGone',
} as const;

/** Event-loop delay since the previous scrape, seconds. */
interface LoopLag {
  p50: number;
  p99: number;
  max: number;
}

/**
 * The relay's Prometheus metrics in a registry of their own. {@link render} takes one
 * `relay.stats()` snapshot and lets every metric's `collect()` read it.
 */
export class RelayMetrics {
  readonly registry = new Registry();
  private readonly relay: MetricsSource;
  private readonly loop: IntervalHistogram;
  private snap: RelayStats;
  private lag: LoopLag = { p50: 0, p99: 0, max: 0 };

  constructor(relay: MetricsSource, options: { defaultMetrics?: boolean } = {}) {
    this.relay = relay;
    this.snap = relay.stats();
    this.loop = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loop.enable();
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.define();
  }

  /** The metrics in Prometheus text format, read now. */
  async render(): Promise<string> {
    this.snap = this.relay.stats();
    const h = this.loop;
    // Each sample is the time between two ticks of the monitor's timer, so an idle loop reads the
    // resolution itself: the delay is what lies beyond it.
    const lag = (ns: number): number =>
      h.count === 0 ? 0 : Math.max(0, ns / 1e6 - LOOP_RESOLUTION_MS) / 1e3;
    this.lag = { p50: lag(h.percentile(50)), p99: lag(h.percentile(99)), max: lag(h.max) };
    h.reset();
    return this.registry.metrics();
  }

  /** Stops the event-loop monitor. */
  stop(): void {
    this.loop.disable();
  }

  private define(): void {
    const s = (): RelayStats => this.snap;
    // ---- levels (gauges) ----
    this.gauge(
      'msrp_relay_connections',
      'Open connections by transport and state.',
      ['transport', 'state'],
      () =>
        TRANSPORTS.flatMap((transport) =>
          STATES.map((state): Sample => [{ transport, state }, s().connections[transport][state]]),
        ),
    );
    this.gauge('msrp_relay_tokens', 'Live Use-Path tokens (authenticated sessions).', [], () => s().tokens);
    this.gauge(
      'msrp_relay_return_paths',
      'URIs of relays proven by their certificate that go back over the connection each opened.',
      [],
      () => s().returnPaths,
    );
    this.gauge(
      'msrp_relay_reports_tracked_messages',
      'Messages the report tracker follows now (all connections; capped, see docs/reports.md Limits).',
      [],
      () => s().reportsTracked,
    );
    this.gauge(
      'msrp_relay_reports_tracked_bytes',
      'CPIM head and path octets the tracked messages hold now.',
      [],
      () => s().reportsTrackedBytes,
    );
    this.gauge(
      'msrp_relay_transactions_pending',
      'Forwarded transactions waiting for the next hop to answer.',
      [],
      () => s().transactions,
    );
    this.gauge(
      'msrp_relay_queued_bytes',
      'Bytes queued toward all connections (relay queues plus unflushed socket buffers).',
      [],
      () => s().queuedBytesTotal,
    );
    this.gauge(
      'msrp_relay_queued_bytes_max',
      'Bytes queued toward the most loaded connection (what --max-queued-bytes bounds).',
      [],
      () => s().queuedBytesMax,
    );
    this.gauge(
      'msrp_relay_queue_pressure',
      '1 while all queues together are past --max-total-queued-bytes (until back under half): every queue over 64 KiB pauses its sources.',
      [],
      () => (s().queuePressure ? 1 : 0),
    );
    this.gauge(
      'msrp_relay_paused_readers',
      'Connections whose reading is paused because a destination queue is full (backpressure).',
      [],
      () => s().pausedReaders,
    );
    this.gauge(
      'msrp_relay_handshakes_pending',
      'Accepted TLS, WS and WSS sockets still in their handshake (closed if not done within the probation time).',
      [],
      () => s().handshakesPending,
    );
    this.gauge(
      'msrp_relay_draining',
      '1 once shutdown started (no new connections, in-flight transactions finishing), else 0.',
      [],
      () => (s().draining ? 1 : 0),
    );
    this.gauge(
      'msrp_relay_tls_certificate_expiry_timestamp_seconds',
      'Expiry (notAfter) of the certificate the TLS and WSS listeners present, Unix time; absent without one.',
      ['subject'],
      () => {
        const c = this.relay.tlsCertificate();
        return c === null ? [] : [[{ subject: c.subject.replace(/\n/g, ', ') }, c.notAfter / 1000]];
      },
    );
    this.gauge(
      'msrp_relay_event_loop_lag_seconds',
      'Event-loop delay since the previous scrape (perf_hooks.monitorEventLoopDelay): p50, p99, max.',
      ['stat'],
      () => [
        [{ stat: 'p50' }, this.lag.p50],
        [{ stat: 'p99' }, this.lag.p99],
        [{ stat: 'max' }, this.lag.max],
      ],
    );
    // ---- connections ----
    this.counter(
      'msrp_relay_connections_opened_total',
      'Connections opened (accepted and dialed), by transport.',
      ['transport'],
      () => TRANSPORTS.map((transport): Sample => [{ transport }, s().counters.opened[transport]]),
    );
    this.counter(
      'msrp_relay_connections_closed_total',
      'Connections closed, by transport and close reason.',
      ['transport', 'reason'],
      () =>
        TRANSPORTS.flatMap((transport) =>
          entries(s().counters.closed[transport]).map(([reason, n]): Sample => [{ transport, reason }, n]),
        ),
    );
    this.counter(
      'msrp_relay_connections_refused_total',
      'Sockets closed at accept because a connection limit was reached, by transport and limit.',
      ['transport', 'reason'],
      () =>
        TRANSPORTS.flatMap((transport) =>
          REFUSAL_REASONS.map((reason): Sample => [
            { transport, reason },
            s().counters.refusedConnections[transport][reason] ?? 0,
          ]),
        ),
    );
    this.counter(
      'msrp_relay_handshake_timeouts_total',
      'TLS, WS and WSS sockets closed for not finishing their handshake within the probation time.',
      ['transport'],
      () => TRANSPORTS.map((transport): Sample => [{ transport }, s().counters.handshakeTimeouts[transport]]),
    );
    this.counter(
      'msrp_relay_bytes_received_total',
      'MSRP octets read, by transport (WebSocket: message payloads).',
      ['transport'],
      () => TRANSPORTS.map((transport): Sample => [{ transport }, s().bytesIn[transport]]),
    );
    this.counter(
      'msrp_relay_bytes_sent_total',
      'MSRP octets written, by transport (WebSocket: message payloads).',
      ['transport'],
      () => TRANSPORTS.map((transport): Sample => [{ transport }, s().bytesOut[transport]]),
    );
    // ---- AUTH and requests ----
    this.counter('msrp_relay_auth_total', 'AUTH requests to this relay, by result.', ['result'], () =>
      withZeros(AUTH_RESULTS, s().counters.auth).map(([result, n]): Sample => [{ result }, n]),
    );
    this.counter(
      'msrp_relay_auth_lockouts_total',
      'Lockouts for failed AUTHs (--auth-lockout-failures): a user from an address, or a spraying address.',
      [],
      () => [[{}, s().counters.authLockouts]],
    );
    this.gauge(
      'msrp_relay_auth_locked_out',
      'Lockouts in force now (a user from an address, or a spraying address).',
      [],
      () => s().authLockedOut,
    );
    this.counter(
      'msrp_relay_requests_total',
      'Requests read, by method (unknown methods: other).',
      ['method'],
      () =>
        withZeros([...KNOWN_METHODS, 'other'], s().counters.requestsIn).map(([method, n]): Sample => [
          { method },
          n,
        ]),
    );
    this.counter('msrp_relay_responses_total', 'Responses read, by status code.', ['code'], () =>
      entries(s().counters.responsesIn).map(([code, n]): Sample => [{ code }, n]),
    );
    this.counter('msrp_relay_forwarded_total', 'Requests (SEND chunks and others) forwarded.', [], () => [
      [{}, s().counters.forwarded],
    ]);
    this.counter(
      'msrp_relay_rechunked_total',
      'Sub-chunks written beyond the first of a forwarded chunk (interruptions, WebSocket splits).',
      [],
      () => [[{}, s().counters.rechunked]],
    );
    this.counter(
      'msrp_relay_reader_pauses_total',
      'Times a connection was paused because a destination queue was full.',
      [],
      () => [[{}, s().counters.readerPauses]],
    );
    this.counter(
      'msrp_relay_transaction_timeouts_total',
      'Forwarded transactions the next hop did not answer in time (408).',
      [],
      () => [[{}, s().counters.transactionTimeouts]],
    );
    this.counter('msrp_relay_failure_reports_total', 'Failure REPORTs sent, by status code.', ['code'], () =>
      entries(s().counters.failureReports).map(([code, n]): Sample => [{ code }, n]),
    );
    this.counter(
      'msrp_relay_requests_refused_total',
      'Requests not forwarded, by the status they were refused with (answered or, as REPORTs are, not).',
      ['code'],
      () => entries(s().counters.refused).map(([code, n]): Sample => [{ code }, n]),
    );
    this.counter(
      'msrp_relay_failure_reports_undeliverable_total',
      'Failure REPORTs not sent: the connection the failed chunk came on had closed.',
      [],
      () => [[{}, s().counters.failureReportsUndeliverable]],
    );
    this.counter(
      'msrp_relay_paced_young_gcs_total',
      'Young collections the relay ran itself, one per 8 MiB read (needs node --expose-gc).',
      [],
      () => [[{}, pacedCollections()]],
    );
    this.counter('msrp_relay_parse_errors_total', 'Malformed input, by MSRP_ERR_ code.', ['code'], () =>
      entries(s().counters.parseErrors).map(([code, n]): Sample => [{ code }, n]),
    );
    // ---- delivery reports ----
    this.counter(
      'msrp_relay_report_requests_total',
      'Report requests seen in IMs toward local recipients, by dialect and kind.',
      ['dialect', 'kind'],
      () =>
        DIALECTS.flatMap((dialect) =>
          REPORT_KINDS.map((kind): Sample => [{ dialect, kind }, s().reports.requests[dialect][kind]]),
        ),
    );
    this.counter(
      'msrp_relay_reports_injected_total',
      'Delivery reports the relay injected toward senders, by dialect and outcome.',
      ['dialect', 'outcome'],
      () =>
        DIALECTS.flatMap((dialect) =>
          OUTCOMES.map((outcome): Sample => [{ dialect, outcome }, s().reports.injected[dialect][outcome]]),
        ),
    );
    this.counter(
      'msrp_relay_report_duplicates_dropped_total',
      "Recipients' own delivery IMDNs dropped because the relay had reported delivery already.",
      [],
      () => [[{}, s().reports.duplicatesDropped]],
    );
    this.counter(
      'msrp_relay_reports_untracked_total',
      'IMs not tracked, so given no report, by the cap that left them out (reason untracked above).',
      ['cap'],
      () =>
        entries(UNTRACKED_CAP_NAMES).map(([key, cap]): Sample => [
          { cap },
          s().reports.untrackedBy[key as UntrackedCap],
        ]),
    );
    this.counter(
      'msrp_relay_reports_skipped_total',
      'IMs (chunks, for late) the report policy did not report on, by reason.',
      ['reason'],
      () => entries(SKIP_REASONS).map(([reason, key]): Sample => [{ reason }, s().reports[key]]),
    );
  }

  private gauge(name: string, help: string, labelNames: string[], read: () => Sample[] | number): void {
    new Gauge({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        const v = read();
        this.reset();
        if (typeof v === 'number') this.set(v);
        else for (const [labels, n] of v) this.set(labels, n);
      },
    });
  }

  private counter(name: string, help: string, labelNames: string[], read: () => Sample[]): void {
    new Counter({
      name,
      help,
      labelNames,
      registers: [this.registry],
      collect() {
        this.reset();
        for (const [labels, n] of read()) this.inc(labels, n);
      },
    });
  }
}

/** Starts the metrics and health server of `relay`; resolves once bound. */
export async function startMetricsServer(
  relay: MetricsSource,
  options: MetricsServerOptions,
): Promise<MetricsServer> {
  const metrics = new RelayMetrics(relay, options);
  const server = createServer((req, res) => {
    void handle(relay, metrics, req, res);
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(options.port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    metrics.stop();
    throw err;
  }
  const addr = server.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  return {
    host: options.host,
    port,
    url: `http://${host}:${port}/metrics`,
    registry: metrics.registry,
    close: () =>
      new Promise<void>((resolve) => {
        metrics.stop();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function handle(
  relay: MetricsSource,
  metrics: RelayMetrics,
  req: IncomingMessage,
  res: ServerResponse,
): Promise<void> {
  const path = (req.url ?? '/').split('?')[0];
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    reply(res, 405, 'method not allowed\n', { Allow: 'GET, HEAD' });
    return;
  }
  if (path === '/healthz') {
    if (relay.isDraining) reply(res, 503, 'draining\n');
    else reply(res, 200, 'ok\n');
    return;
  }
  if (path !== '/metrics') {
    reply(res, 404, 'not found: try /metrics or /healthz\n');
    return;
  }
  try {
    const text = await metrics.render();
    reply(res, 200, text, { 'Content-Type': metrics.registry.contentType });
  } catch (err) {
    reply(res, 500, `metrics failed: ${String(err)}\n`);
  }
}

function reply(
  res: ServerResponse,
  status: number,
  body: string,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(res.req.method === 'HEAD' ? undefined : body);
}

function entries<V>(record: Record<string, V>): Array<[string, V]> {
  return Object.entries(record);
}

/** The counts of `record`, with every name of `names` present (0 when never seen). */
function withZeros(names: readonly string[], record: Record<string, number>): Array<[string, number]> {
  const out: Array<[string, number]> = names.map((n) => [n, record[n] ?? 0]);
  for (const [k, v] of Object.entries(record)) if (!names.includes(k)) out.push([k, v]);
  return out;
}
