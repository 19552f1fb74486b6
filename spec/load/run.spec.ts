import { expect } from 'chai';
import { createServer, type Socket } from 'node:net';
import type { Frame } from '../../lib/msrp/message.js';
import { randomId, serializeResponse } from '../../lib/msrp/serializer.js';
import type { LatencySummary } from '../../lib/load/histogram.js';
import type { LoadOptions } from '../../lib/load/options.js';
import { formatReport, LOAD_REPORT_SCHEMA, type LoadReport } from '../../lib/load/report.js';
import { runLoad } from '../../lib/load/runner.js';
import type { Relay } from '../../lib/relay/relay.js';
import { fakeMsrpServer } from '../helpers/fake-server.js';
import { Harness, USERS } from '../helpers/relay.js';
import { testCertificate } from '../helpers/tls.js';
import { wsRelayOptions, wsUrl } from '../helpers/ws.js';

const users = Object.entries(USERS).map(([username, password]) => ({ username, password }));

/** Every field of the v1 JSON schema, as dotted paths (maps keyed by code are checked as objects). */
const SCHEMA_FIELDS = [
  'schema',
  'tool.name',
  'tool.version',
  'startedAt',
  'finishedAt',
  'command',
  ...['node', 'platform', 'arch', 'hostname', 'cpus', 'cpuModel', 'totalMemoryBytes'].map(
    (k) => `environment.${k}`,
  ),
  ...[
    'target',
    'receiverTarget',
    'transport',
    'authUri',
    'sessions',
    'workers',
    'pacing',
    'rate',
    'concurrency',
    'messages',
    'durationSeconds',
    'rampUpSeconds',
    'warmUpSeconds',
    'drainSeconds',
    'timeoutSeconds',
    'holdSeconds',
    'sizes',
    'chunkSize',
    'cpim',
    'requestReports',
    'reportDialect',
    'receiverImdn',
    'receiverStatus',
    'users',
    'maxErrorRate',
  ].map((k) => `config.${k}`),
  'timing.setupSeconds',
  'timing.activeSeconds',
  'timing.totalSeconds',
  ...['requested', 'established', 'failed', 'dropped', 'reauths', 'reauthFailures', 'setupErrors'].map(
    (k) => `sessions.${k}`,
  ),
  ...['sent', 'delivered', 'failed', 'lost'].map((k) => `messages.${k}`),
  'openLoop',
  'chunks.sent',
  'chunks.acknowledged',
  'bytes.sent',
  'bytes.delivered',
  ...[
    'sentMessagesPerSecond',
    'deliveredMessagesPerSecond',
    'sentBytesPerSecond',
    'deliveredBytesPerSecond',
  ].map((k) => `throughput.${k}`),
  ...['firstHop', 'delivery', 'report'].flatMap((h) =>
    ['count', 'min', 'mean', 'p50', 'p90', 'p99', 'p999', 'max'].map((k) => `latency.${h}.${k}`),
  ),
  ...['requested', 'received', 'missing', 'duplicates', 'unmatched'].map((k) => `reports.${k}`),
  ...['total', 'responses', 'failureReports', 'imdn', 'timeouts', 'disconnects', 'bodyMismatches'].map(
    (k) => `errors.${k}`,
  ),
  ...['errorRate', 'sessionErrorRate', 'maxErrorRate', 'passed', 'exitCode'].map((k) => `result.${k}`),
];

/** Dotted paths of every leaf (objects keyed by code count as leaves when their parent is a count map). */
function leaves(value: unknown, prefix = ''): string[] {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return [prefix];
  const countMaps = ['setupErrors', 'responses', 'failureReports', 'imdn', 'received'];
  if (countMaps.includes(prefix.split('.').at(-1)!)) return [prefix];
  return Object.entries(value).flatMap(([k, v]) => leaves(v, prefix === '' ? k : `${prefix}.${k}`));
}

function expectMonotonic(s: LatencySummary): void {
  expect(
    s.min <= s.p50 && s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max,
    JSON.stringify(s),
  ).to.equal(true);
}

function expectCountsAddUp(r: LoadReport): void {
  expect(r.messages.sent).to.equal(r.messages.delivered + r.messages.failed + r.messages.lost);
}

/** How a fake relay answers an AUTH: after `delayMs`, with `status` and extra headers; null: never. */
interface FakeAuth {
  delayMs?: number;
  status?: number;
  headers?: Array<[string, string]>;
}

/**
 * A "relay" that grants AUTH and answers 200 to every SEND, then drops it: every message is lost.
 * `auth` changes its AUTH answers (null: none at all).
 */
async function blackHoleRelay(auth: FakeAuth | null = {}): Promise<{ port: number; close(): Promise<void> }> {
  return fakeMsrpServer((socket, port) => (f: Frame): void => {
    if (f.kind !== 'request') return;
    if (f.method === 'AUTH' && auth === null) return;
    const to = f.headers[0]![1];
    const from = f.headers[1]![1];
    const status = f.method === 'AUTH' ? (auth?.status ?? 200) : 200;
    const headers: Array<[string, string]> =
      f.method !== 'AUTH'
        ? []
        : status === 200
          ? [['Use-Path', `msrp://127.0.0.1:${port}/${randomId(12)};tcp`], ...(auth?.headers ?? [])]
          : (auth?.headers ?? []);
    const toPath = f.method === 'SEND' ? from.split(' ')[0]! : from;
    const write = (): void => {
      if (socket.destroyed) return;
      socket.write(
        serializeResponse({
          transactionId: f.transactionId,
          statusCode: status,
          toPath,
          fromPath: to.split(' ')[0]!,
          headers,
        }),
      );
    };
    if (f.method === 'AUTH' && (auth?.delayMs ?? 0) > 0) setTimeout(write, auth!.delayMs);
    else write();
  });
}

describe('runLoad against a relay', function () {
  this.timeout(30_000);
  const h = new Harness();
  afterEach(() => h.cleanup());

  const target = (relay: Relay): string => {
    const a = relay.addresses().find((x) => x.kind === 'tcp')!;
    return `msrp://${a.host}:${a.port};tcp`;
  };
  const run = (relay: Relay, options: LoadOptions): Promise<LoadReport> =>
    runLoad({ target: target(relay), users, progress: false, drain: 5, ...options });

  it('delivers 5 sessions × 200 messages: every message accounted for, nothing lost', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 5, messages: 1000, concurrency: 4 });
    expect(r.sessions).to.deep.include({ requested: 5, established: 5, failed: 0, dropped: 0 });
    expect(r.messages).to.deep.equal({ sent: 1000, delivered: 1000, failed: 0, lost: 0 });
    expect(r.bytes).to.deep.equal({ sent: 1024 * 1000, delivered: 1024 * 1000 });
    expect(r.chunks).to.deep.equal({ sent: 1000, acknowledged: 1000 });
    expect(r.errors.total).to.equal(0);
    expect([r.latency.firstHop.count, r.latency.delivery.count, r.latency.report.count]).to.deep.equal([
      1000, 1000, 0,
    ]);
    expectMonotonic(r.latency.firstHop);
    expectMonotonic(r.latency.delivery);
    expect(r.throughput.deliveredMessagesPerSecond).to.be.above(0);
    expect(r.result).to.deep.include({ errorRate: 0, passed: true, exitCode: 0 });
  });

  it("sends across two chained relays with --receiver-target; only the receivers' relay reports", async () => {
    const first = await h.relay();
    const second = await h.relay();
    const r = await run(first, {
      receiverTarget: target(second),
      sessions: 3,
      messages: 60,
      concurrency: 2,
      cpim: true,
      requestReports: ['positive-delivery'],
    });
    expect(r.config.receiverTarget).to.equal(target(second));
    expect(r.messages).to.deep.equal({ sent: 60, delivered: 60, failed: 0, lost: 0 });
    expect(r.reports.received).to.deep.equal({ delivered: 60 });
    // The first relay dialed the second and forwarded every SEND to it; the second injected the reports.
    expect(first.stats().connections.tcp.dialed).to.equal(1);
    expect(first.stats().reports.injected.imdn.delivered).to.equal(0);
    expect(second.stats().reports.injected.imdn.delivered).to.equal(60);
  });

  it('reports every field of the JSON schema, and nothing else', async () => {
    const relay = await h.relay();
    const r = await run(relay, {
      sessions: 2,
      messages: 20,
      sizes: [
        { bytes: 100, weight: 1 },
        { bytes: 3000, weight: 1 },
      ],
      chunkSize: 2048,
    });
    const json = JSON.parse(JSON.stringify(r)) as LoadReport;
    expect(json.schema).to.equal(LOAD_REPORT_SCHEMA);
    expect(leaves(json).sort()).to.deep.equal([...SCHEMA_FIELDS].sort());
    expect(json.chunks.sent).to.equal(30); // 10 × 1 chunk + 10 × 2 chunks
    expect(json.config.authUri).to.match(/^msrp:\/\/alice@127\.0\.0\.1:\d+;tcp$/);
    expectCountsAddUp(json);
  });

  it('counts a receiver answering 415 as failure REPORTs with code 415 (RFC 4976 §6.5)', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 2, messages: 10, receiverStatus: 415 });
    expect(r.messages).to.deep.equal({ sent: 10, delivered: 0, failed: 10, lost: 0 });
    expect(r.errors.failureReports).to.deep.equal({ 415: 10 });
    expect(r.errors.total).to.equal(10);
    expect(r.result).to.deep.include({ errorRate: 1, passed: false, exitCode: 1 });
  });

  it('counts a silent receiver as 408 failure REPORTs once the relay transaction times out', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 200 });
    const r = await run(relay, { sessions: 2, messages: 6, concurrency: 3, receiverStatus: null });
    expect(r.messages).to.deep.equal({ sent: 6, delivered: 0, failed: 6, lost: 0 });
    expect(r.errors.failureReports).to.deep.equal({ 408: 6 });
  });

  it('counts messages that never arrive and never fail as lost after the drain period', async () => {
    const hole = await blackHoleRelay();
    try {
      const r = await runLoad({
        target: `127.0.0.1:${hole.port}`,
        sessions: 2,
        messages: 8,
        concurrency: 2,
        drain: 0.2,
        timeout: 0.3,
        progress: false,
      });
      expect(r.messages).to.deep.equal({ sent: 8, delivered: 0, failed: 0, lost: 8 });
      expect(r.chunks).to.deep.equal({ sent: 8, acknowledged: 8 });
      expect(r.result.exitCode).to.equal(1);
    } finally {
      await hole.close();
    }
  });

  it('records setup failures by reason: wrong password gives AUTH 401', async () => {
    const relay = await h.relay();
    const r = await run(relay, {
      users: [{ username: 'alice', password: 'wrong' }],
      sessions: 2,
      messages: 2,
    });
    expect(r.sessions).to.deep.include({ requested: 2, established: 0, failed: 2 });
    expect(r.sessions.setupErrors).to.deep.equal({ 'AUTH 401': 2 });
    expect(r.result).to.deep.include({ passed: false, exitCode: 1, sessionErrorRate: 1 });
  });

  it('merges two worker threads: counts and histograms add up', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 4, messages: 301, concurrency: 2, workers: 2 });
    expect(r.config.workers).to.equal(2);
    expect(r.sessions).to.deep.include({ requested: 4, established: 4 });
    expect(r.messages).to.deep.equal({ sent: 301, delivered: 301, failed: 0, lost: 0 });
    expect(r.latency.delivery.count).to.equal(301);
    expect(r.latency.firstHop.count).to.equal(301);
    expectMonotonic(r.latency.delivery);
  });

  it('measures the report round trip of IMDNs sent by the receiver (RFC 5438)', async () => {
    const relay = await h.relay({ reports: 'off' });
    const r = await run(relay, {
      sessions: 2,
      messages: 40,
      requestReports: ['positive-delivery'],
      receiverImdn: true,
    });
    expect(r.config.cpim).to.equal(true);
    expect(r.messages.delivered).to.equal(40);
    expect(r.reports).to.deep.equal({
      requested: 40,
      received: { delivered: 40 },
      missing: 0,
      duplicates: 0,
      unmatched: 0,
    });
    expect(r.latency.report.count).to.equal(40);
    expectMonotonic(r.latency.report);
  });

  it('measures the report round trip of delivery IMDNs the relay injects', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const r = await run(relay, { sessions: 3, messages: 3, requestReports: ['positive-delivery'] });
    expect(r.messages.delivered).to.equal(3);
    expect(r.reports).to.deep.equal({
      requested: 3,
      received: { delivered: 3 },
      missing: 0,
      duplicates: 0,
      unmatched: 0,
    });
    expect(r.latency.report.count).to.equal(3);
  });

  it('asks for reports in the legacy form with --report-dialect legacy, and reads the answers', async () => {
    // draft-khartabil-simple-im-report: unprefixed Message-ID and Receipt-Request (digest §6); the relay
    // answers a delivered message/status-report and a failed one for the 486s.
    const relay = await h.relay({ reports: 'on-ack' });
    const r = await run(relay, {
      sessions: 2,
      messages: 4,
      requestReports: ['positive-delivery', 'negative-delivery'],
      reportDialect: 'legacy',
    });
    const failing = await h.relay({ reports: 'on-ack' });
    const f = await run(failing, {
      sessions: 1,
      messages: 2,
      requestReports: ['negative-delivery'],
      reportDialect: 'legacy',
      receiverStatus: 486,
      maxErrorRate: 1,
    });
    expect({
      received: r.reports.received,
      missing: r.reports.missing,
      dialect: r.config.reportDialect,
      legacyRequests: relay.reports.counters.requests.legacy['positive-delivery'],
      imdnRequests: relay.reports.counters.requests.imdn['positive-delivery'],
      failed: f.reports.received,
      legacyFailed: failing.reports.counters.injected.legacy.failed,
    }).to.deep.equal({
      received: { delivered: 4 },
      missing: 0,
      dialect: 'legacy',
      legacyRequests: 4,
      imdnRequests: 0,
      failed: { failed: 2 },
      legacyFailed: 2,
    });
  });

  it('refuses --report-dialect legacy with --receiver-imdn, and an unknown dialect', async () => {
    const relay = await h.relay();
    const errors: string[] = [];
    for (const extra of [
      { reportDialect: 'legacy' as const, receiverImdn: true },
      { reportDialect: 'cpim' as unknown as 'imdn' },
    ]) {
      await run(relay, { sessions: 1, messages: 1, ...extra }).catch((e: Error) => errors.push(e.message));
    }
    expect(errors).to.deep.equal([
      '--receiver-imdn writes RFC 5438 IMDNs: it goes with --report-dialect imdn only',
      '--report-dialect must be imdn or legacy (got cpim)',
    ]);
  });

  it('counts positive reports that never come as missing, without failing the messages', async () => {
    const relay = await h.relay({ reports: 'off' });
    const r = await run(relay, {
      sessions: 1,
      messages: 5,
      requestReports: ['positive-delivery'],
      drain: 0.2,
    });
    expect(r.messages.delivered).to.equal(5);
    expect(r.reports.missing).to.equal(5);
    expect(r.result.passed).to.equal(true);
  });

  it('paces an open loop at the requested rate', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 4, rate: 400, duration: 0.5 });
    expect(r.config.pacing).to.equal('open-loop');
    expect(r.messages.sent).to.be.within(180, 201);
    expect(r.messages.delivered).to.equal(r.messages.sent);
  });

  it('leaves the messages of the warm-up out of the latency figures, and counts them in the rest', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 2, rate: 200, duration: 0.6, warmUp: 0.3 });
    expect(r.config.warmUpSeconds).to.equal(0.3);
    expect(r.messages.delivered).to.equal(r.messages.sent);
    // About half the messages fall due in the warm-up: the histograms hold only the rest.
    expect(r.latency.firstHop.count).to.be.within(40, 80);
    expect(r.latency.delivery.count).to.equal(r.latency.firstHop.count);
    expect(r.messages.sent - r.latency.firstHop.count).to.be.within(40, 80);
  });

  it('opens sessions over the ramp-up and still sends every message', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 4, messages: 100, rampUp: 0.3 });
    expect(r.sessions.established).to.equal(4);
    expect(r.timing.setupSeconds).to.equal(0);
    expect(r.messages).to.deep.equal({ sent: 100, delivered: 100, failed: 0, lost: 0 });
  });

  it('sends a large message in chunks of --chunk-size with exact Byte-Ranges', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 1, messages: 2, sizes: 300_000, chunkSize: 65536 });
    expect(r.messages.delivered).to.equal(2);
    expect(r.chunks).to.deep.equal({ sent: 10, acknowledged: 10 });
    expect(r.errors.bodyMismatches).to.equal(0);
  });

  it('delivers more interleaved chunked messages than an endpoint reassembles by default (1,000)', async () => {
    // Review (sixteenth session): the endpoint's cap on unfinished messages dropped the oldest, and with
    // 1,200 in flight each one pushed out another: every message was lost though every chunk got its 200.
    const relay = await h.relay();
    const r = await run(relay, {
      sessions: 1,
      concurrency: 1200,
      messages: 1200,
      sizes: 16 * 1024,
      chunkSize: 2 * 1024,
      drain: 10,
    });
    expect(r.messages).to.deep.equal({ sent: 1200, delivered: 1200, failed: 0, lost: 0 });
  });

  it('fails a run whose relay goes away mid-run, and leaves no timer behind', async () => {
    const relay = await h.relay();
    const timers = (): number => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    setTimeout(() => void relay.close(0), 500);
    const r = await run(relay, { sessions: 4, duration: 2, concurrency: 1, drain: 1 });
    expect(r.sessions).to.deep.include({ requested: 4, established: 4, dropped: 4 });
    expect(r.result).to.deep.include({ sessionErrorRate: 1, passed: false, exitCode: 1 });
    // Each message's --timeout timer (30 s) is cleared with it: none keeps the process up after the run.
    // (A closing socket's own short timers may still run for a moment.)
    for (let waited = 0; timers() > before && waited < 1500; waited += 50)
      await new Promise((resolve) => setTimeout(resolve, 50));
    expect(timers()).to.be.at.most(before);
  });

  it('runs over TLS (msrps) with the CA given', async () => {
    const { cert, key } = testCertificate();
    const relay = await h.relay({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key },
    });
    const port = relay.addresses()[0]!.port;
    const r = await runLoad({
      target: `msrps://localhost:${port};tcp`,
      tlsCa: cert,
      users,
      sessions: 2,
      messages: 20,
      progress: false,
    });
    expect(r.config.transport).to.equal('tls');
    expect(r.config.authUri).to.equal(`msrps://alice@localhost:${port};tcp`);
    expect(r.messages.delivered).to.equal(20);
  });

  it('runs over WebSocket (RFC 7977) with ;ws URIs', async () => {
    const relay = await h.relay(wsRelayOptions());
    const r = await runLoad({
      targetWs: wsUrl(relay),
      users,
      sessions: 2,
      messages: 20,
      cpim: true,
      progress: false,
    });
    expect(r.config.transport).to.equal('ws');
    expect(r.config.authUri).to.match(/^msrp:\/\/alice@127\.0\.0\.1:\d+;ws$/);
    expect(r.messages).to.deep.equal({ sent: 20, delivered: 20, failed: 0, lost: 0 });
  });

  it('re-AUTHs before the Use-Path expires and keeps delivering on the new paths', async () => {
    const relay = await h.relay({ authExpires: 1, authMinExpires: 1 });
    const r = await run(relay, { sessions: 1, duration: 2, concurrency: 2 });
    expect(r.sessions.reauths).to.be.at.least(2); // both endpoints, at 0.8 s and 1.6 s
    expect(r.sessions.reauthFailures).to.equal(0);
    expect(r.messages.failed + r.messages.lost).to.equal(0);
    expect(r.messages.delivered).to.be.above(0);
  });

  it('stops at once when aborted during session setup: nothing is sent', async () => {
    const hole = await blackHoleRelay({ delayMs: 400 });
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 100);
    try {
      const r = await runLoad({
        target: `127.0.0.1:${hole.port}`,
        sessions: 2,
        duration: 20,
        drain: 0.2,
        signal: abort.signal,
        progress: false,
      });
      // The AUTHs still waiting are cut short (not left to their answer or timeout), and not counted failed.
      expect(r.sessions.established).to.equal(0);
      expect(r.sessions.setupErrors).to.deep.equal({});
      expect(r.messages.sent).to.equal(0);
      expect(r.timing.totalSeconds).to.be.below(2);
    } finally {
      await hole.close();
    }
  });

  it('stops at once when aborted during a connect that never completes (a TLS peer that never answers)', async () => {
    const held: Socket[] = [];
    const server = createServer((s) => {
      s.pause(); // accepts, and never answers the ClientHello: the connect hangs
      held.push(s);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const abort = new AbortController();
    setTimeout(() => abort.abort(), 300);
    try {
      const r = await runLoad({
        target: `msrps://127.0.0.1:${(server.address() as { port: number }).port};tcp`,
        insecure: true,
        sessions: 2,
        duration: 20,
        timeout: 20,
        drain: 0.2,
        signal: abort.signal,
        progress: false,
      });
      // Not the 20 s connect timeout; and a connect cut short is no setup failure.
      expect(r.timing.totalSeconds).to.be.below(5);
      expect([r.sessions.established, r.sessions.setupErrors]).to.deep.equal([0, {}]);
    } finally {
      for (const s of held) s.destroy();
      server.close();
    }
  });

  it('cuts --hold short when aborted', async () => {
    const relay = await h.relay();
    const abort = new AbortController();
    const r = await run(relay, {
      sessions: 1,
      messages: 2,
      hold: 20,
      signal: abort.signal,
      onSessionsReady: () => void setTimeout(() => abort.abort(), 300),
    });
    expect(r.messages.delivered).to.equal(2);
    expect(r.timing.totalSeconds).to.be.below(10);
  });

  it('waits --timeout for an AUTH answer, and names a 401 without a usable challenge', async () => {
    const silent = await blackHoleRelay(null);
    const bare = await blackHoleRelay({ status: 401 });
    try {
      const options = { sessions: 2, messages: 2, timeout: 0.3, drain: 0.1, progress: false };
      const quiet = await runLoad({ target: `127.0.0.1:${silent.port}`, ...options });
      expect(quiet.sessions.setupErrors).to.deep.equal({ 'AUTH timeout': 2 });
      // Not the endpoint's own 10 s default.
      expect(quiet.timing.setupSeconds).to.be.below(5);
      const refused = await runLoad({ target: `127.0.0.1:${bare.port}`, users, ...options });
      expect(refused.sessions.setupErrors).to.deep.equal({ 'AUTH 401 with an invalid challenge': 2 });
    } finally {
      await silent.close();
      await bare.close();
    }
  });

  it('re-AUTHs once at 80 % of an Expires too long for a timer, not in a loop', async () => {
    // 2,700,000 s at 80 % is 2.16e9 ms, past setTimeout's 2^31-1: Node would fire it at once, each time.
    const hole = await blackHoleRelay({ headers: [['Expires', '2700000']] });
    try {
      const r = await runLoad({
        target: `127.0.0.1:${hole.port}`,
        sessions: 1,
        rate: 20,
        duration: 0.5,
        drain: 0.1,
        progress: false,
      });
      expect(r.sessions.established).to.equal(1);
      expect(r.sessions.reauths).to.equal(0);
    } finally {
      await hole.close();
    }
  });

  it('ends the drain when the sessions still waiting have lost their connections', async () => {
    const hole = await blackHoleRelay();
    setTimeout(() => void hole.close(), 400);
    const r = await runLoad({
      target: `127.0.0.1:${hole.port}`,
      sessions: 2,
      rate: 50,
      duration: 1,
      drain: 20,
      progress: false,
    });
    expect(r.messages.lost).to.be.above(0);
    expect(r.sessions.dropped).to.equal(2);
    expect(r.timing.totalSeconds).to.be.below(10);
  });

  it('counts the octets of the chunks written, not of a message refused midway', async () => {
    const relay = await h.relay({ maxMessageBytes: 100_000 });
    const r = await run(relay, { sessions: 1, messages: 1, sizes: 1_000_000, chunkSize: 65536, drain: 1 });
    expect(r.messages.failed).to.equal(1);
    expect(r.chunks.sent).to.be.below(16);
    expect(r.bytes.sent).to.equal(r.chunks.sent * 65536);
  });

  it('says so when an open loop cannot keep up with its rate, or the run ends before every session is up', async () => {
    const relay = await h.relay();
    const r = await run(relay, { sessions: 2, rate: 1e6, duration: 0.3, drain: 1 });
    expect(r.messages.sent).to.be.below(0.9 * 1e6 * 0.3);
    expect(formatReport(r)).to.match(
      /note: the open loop fell behind: [\d,]+ of [\d,]+ messages due were sent; the tester could not keep up/,
    );
    // The run did not offer the load asked for: it fails, and the JSON says why.
    expect(r.openLoop!.fellBehind).to.equal(true);
    expect(r.result.passed).to.equal(false);
    expect(formatReport(r)).to.match(/result: FAIL \(.*open loop fell behind/);
    const paced = await run(relay, { sessions: 2, rate: 200, duration: 0.5 });
    expect(formatReport(paced)).not.to.match(/fell behind/);
    expect(paced.openLoop).to.deep.include({ fellBehind: false, skippedWithoutSession: 0 });
    expect(paced.result.passed).to.equal(true);
    const ramped = await run(relay, { sessions: 4, rate: 100, duration: 0.3, rampUp: 2 });
    expect(ramped.sessions.established).to.be.below(4);
    expect(formatReport(ramped)).to.match(/\d\/4 up, \d not opened \(the run ended before their turn\)/);
  });

  it('keeps idle sessions open without traffic when --messages is 0', async () => {
    const relay = await h.relay();
    let connectionsWhenReady = 0;
    const r = await run(relay, {
      sessions: 3,
      messages: 0,
      onSessionsReady: () => {
        connectionsWhenReady = relay.connectionCount;
      },
    });
    expect(connectionsWhenReady).to.equal(6);
    expect(r.messages.sent).to.equal(0);
    expect(r.result).to.deep.include({ errorRate: 0, passed: true });
  });
});
