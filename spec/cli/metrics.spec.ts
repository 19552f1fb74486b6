import { expect } from 'chai';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startMetricsServer, type MetricsServer } from '../../lib/cli/metrics.js';
import { READ_GC_BYTES, setCollector } from '../../lib/io/read-gc.js';
import { MsrpEndpoint, type ReceivedMessage } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import type { Relay } from '../../lib/relay/relay.js';
import { captureLogger, Harness, next, until, USERS, type LogLine } from '../helpers/relay.js';
import { otherCertificate, testCertificate } from '../helpers/tls.js';
import { connectWs, wsRelayOptions, wsRelayUri } from '../helpers/ws.js';
import { tempDir } from '../helpers/temp.js';

const CRLF = '\r\n';
const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'msrp-relay');

/** One scrape: samples by `name{label="value",...}` (labels sorted) and the declared types. */
interface Scrape {
  value(name: string, labels?: Record<string, string>): number | undefined;
  type(name: string): string | undefined;
  text: string;
}

/** A small parser for the Prometheus text format (what this test needs of it). */
function parseMetrics(text: string): Scrape {
  const samples = new Map<string, number>();
  const types = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const t = /^# TYPE (\S+) (\S+)$/.exec(line);
    if (t) types.set(t[1]!, t[2]!);
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m) throw new Error(`unparsable metrics line: ${line}`);
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
    samples.set(key(m[1]!, labels), Number(m[3]));
  }
  return { value: (name, labels = {}) => samples.get(key(name, labels)), type: (n) => types.get(n), text };
}

function key(name: string, labels: Record<string, string>): string {
  const parts = Object.keys(labels)
    .sort()
    .map((k) => `${k}="${labels[k]}"`);
  return `${name}{${parts.join(',')}}`;
}

async function scrape(url: string): Promise<Scrape> {
  const res = await fetch(url);
  expect(res.status).to.equal(200);
  expect(res.headers.get('content-type')).to.match(/^text\/plain; version=0\.0\.4/);
  return parseMetrics(await res.text());
}

async function health(metrics: MetricsServer): Promise<[number, string]> {
  const res = await fetch(metrics.url.replace(/\/metrics$/, '/healthz'));
  return [res.status, (await res.text()).trim()];
}

/** A CPIM IM from alice to bob asking for a positive-delivery IMDN (RFC 5438 form). */
function cpimIm(imdnId: string, text: string): Buffer {
  const head = [
    'From: <im:alice@example.org>',
    'To: <im:bob@example.net>',
    'DateTime: 2026-11-24T10:00:00Z',
    'NS: imdn <urn:ietf:params:imdn>',
    `imdn.Message-ID: ${imdnId}`,
    'imdn.Disposition-Notification: positive-delivery',
  ];
  return Buffer.from(head.join(CRLF) + CRLF + CRLF + 'Content-Type: text/plain' + CRLF + CRLF + text);
}

/** Octets written and read by endpoints over TCP (what the relay read and wrote). */
function tcpTotals(eps: MsrpEndpoint[]): { written: number; read: number } {
  let written = 0;
  let read = 0;
  for (const ep of eps) {
    written += ep.socket.bytesWritten;
    read += ep.socket.bytesRead;
  }
  return { written, read };
}

describe('metrics and health (--metrics-listen)', () => {
  const h = new Harness();
  const servers: MetricsServer[] = [];

  async function metricsFor(relay: Relay): Promise<MetricsServer> {
    const m = await startMetricsServer(relay, { host: '127.0.0.1', port: 0, defaultMetrics: false });
    servers.push(m);
    return m;
  }

  afterEach(async () => {
    await h.cleanup();
    await Promise.all(servers.map((s) => s.close()));
    servers.length = 0;
  });

  it('counts a scripted session exactly: AUTHs, SENDs, a 415 failure REPORT, an injected report, bytes', async () => {
    const N = 5;
    const relay = await h.relay({ reports: 'on-ack' });
    const metrics = await metricsFor(relay);
    const before = await scrape(metrics.url);
    expect(before.value('msrp_relay_auth_total', { result: 'ok' })).to.equal(0);
    expect(before.value('msrp_relay_connections_opened_total', { transport: 'tcp' })).to.equal(0);

    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', {
      respond: (f: Frame) => (getHeader(f.headers, 'message-id') === 'msg0415' ? 415 : 200),
    });
    const eve = await h.connect(relay);
    const refused = await eve.auth({
      relayUri: h.relayUri(relay, 'carol'),
      username: 'carol',
      password: 'nope',
    });
    expect(refused.kind === 'response' && refused.statusCode).to.equal(401);

    const toPath = alice.toPathFor(bob.path);
    for (let i = 0; i < N; i++) {
      const res = await alice.send({ toPath, body: `hello ${i}` });
      expect(res.statuses).to.deep.equal([200]);
    }
    const report = next<Frame>(alice, 'report');
    await alice.send({ toPath, body: 'unwanted', messageId: 'msg0415' });
    expect(getHeader((await report).headers, 'status')).to.match(/^000 415/);
    const injected = new Promise<ReceivedMessage>((resolve) =>
      alice.on('message', (m: ReceivedMessage) => resolve(m)),
    );
    await alice.send({ toPath, body: cpimIm('imdnM001', 'hi'), contentType: 'message/cpim' });
    await injected;
    await eve.close();
    await until(() => relay.connectionCount === 2 && relay.transactions.size === 0, 3000, 'quiet relay');
    const eps = [alice, bob, eve];
    await until(
      () => {
        const s = relay.stats();
        const t = tcpTotals(eps);
        return s.bytesIn.tcp === t.written && s.bytesOut.tcp === t.read;
      },
      3000,
      'byte totals to settle',
    );

    const m = await scrape(metrics.url);
    const totals = tcpTotals(eps);
    expect(m.type('msrp_relay_auth_total')).to.equal('counter');
    expect(m.type('msrp_relay_connections')).to.equal('gauge');
    // AUTH: alice and bob are challenged then accepted; eve is challenged then refused.
    expect(m.value('msrp_relay_auth_total', { result: 'challenge' })).to.equal(3);
    expect(m.value('msrp_relay_auth_total', { result: 'ok' })).to.equal(2);
    expect(m.value('msrp_relay_auth_total', { result: 'failed' })).to.equal(1);
    expect(m.value('msrp_relay_auth_total', { result: 'stale' })).to.equal(0);
    expect(m.value('msrp_relay_requests_total', { method: 'AUTH' })).to.equal(6);
    expect(m.value('msrp_relay_requests_total', { method: 'SEND' })).to.equal(N + 2);
    expect(m.value('msrp_relay_requests_total', { method: 'REPORT' })).to.equal(0);
    expect(m.value('msrp_relay_responses_total', { code: '200' })).to.equal(N + 1);
    expect(m.value('msrp_relay_responses_total', { code: '415' })).to.equal(1);
    expect(m.value('msrp_relay_forwarded_total')).to.equal(N + 2);
    expect(m.value('msrp_relay_failure_reports_total', { code: '415' })).to.equal(1);
    expect(m.text).to.not.include('msrp_relay_requests_refused_total{');
    expect(m.value('msrp_relay_transaction_timeouts_total')).to.equal(0);
    expect(m.value('msrp_relay_rechunked_total')).to.equal(0);
    expect(
      m.value('msrp_relay_report_requests_total', { dialect: 'imdn', kind: 'positive-delivery' }),
    ).to.equal(1);
    expect(
      m.value('msrp_relay_report_requests_total', { dialect: 'legacy', kind: 'positive-delivery' }),
    ).to.equal(0);
    expect(m.value('msrp_relay_reports_injected_total', { dialect: 'imdn', outcome: 'delivered' })).to.equal(
      1,
    );
    expect(m.value('msrp_relay_reports_injected_total', { dialect: 'imdn', outcome: 'failed' })).to.equal(0);
    expect(m.value('msrp_relay_report_duplicates_dropped_total')).to.equal(0);
    expect(m.value('msrp_relay_reports_tracked_messages')).to.equal(0); // every IM has its outcome
    expect(m.value('msrp_relay_reports_untracked_total', { cap: 'connection_messages' })).to.equal(0);
    expect(m.text).to.not.include('msrp_relay_parse_errors_total{');
    // Connections: three opened, eve's closed by her, alice and bob holding a token each.
    expect(m.value('msrp_relay_connections_opened_total', { transport: 'tcp' })).to.equal(3);
    expect(m.value('msrp_relay_connections_opened_total', { transport: 'ws' })).to.equal(0);
    expect(
      m.value('msrp_relay_connections_closed_total', { transport: 'tcp', reason: 'peer-closed' }),
    ).to.equal(1);
    expect(m.value('msrp_relay_connections', { transport: 'tcp', state: 'authenticated' })).to.equal(2);
    expect(m.value('msrp_relay_connections', { transport: 'tcp', state: 'unauthenticated' })).to.equal(0);
    expect(m.value('msrp_relay_tokens')).to.equal(2);
    expect(m.value('msrp_relay_transactions_pending')).to.equal(0);
    expect(m.value('msrp_relay_paused_readers')).to.equal(0);
    expect(m.value('msrp_relay_queued_bytes')).to.equal(0);
    expect(m.value('msrp_relay_draining')).to.equal(0);
    // Every octet the endpoints wrote was read by the relay, and every octet they read it wrote.
    expect(m.value('msrp_relay_bytes_received_total', { transport: 'tcp' })).to.equal(totals.written);
    expect(m.value('msrp_relay_bytes_sent_total', { transport: 'tcp' })).to.equal(totals.read);
    for (const stat of ['p50', 'p99', 'max'])
      expect(m.value('msrp_relay_event_loop_lag_seconds', { stat })).to.be.a('number').and.at.least(0);
  });

  it('counts requests it refuses by status, REPORTs it drops unanswered included', async () => {
    const relay = await h.relay();
    const metrics = await metricsFor(relay);
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const gone = `msrp://127.0.0.1:${relay.addresses()[0]!.port}/noSuchToken01;tcp`;
    const r481 = await alice.request({
      method: 'SEND',
      toPath: `${alice.usePath[0]} ${gone} ${bob.uri}`,
      fromPath: alice.uri,
      headers: [['Message-ID', 'm481']],
      contentType: 'text/plain',
      body: 'x',
    });
    expect(r481.kind === 'response' && r481.statusCode).to.equal(481);
    // A REPORT toward nobody: never answered (RFC 4975 §7.1.2), counted all the same.
    alice.write(
      Buffer.from(
        `MSRP rep00001 REPORT\r\nTo-Path: ${gone} ${bob.uri}\r\nFrom-Path: ${alice.uri}\r\n` +
          'Message-ID: m481\r\nByte-Range: 1-1/1\r\nStatus: 000 200 OK\r\n-------rep00001$\r\n',
        'latin1',
      ),
    );
    await until(() => relay.counters.refused['481'] === 2, 3000, 'both refusals counted');
    const m = await scrape(metrics.url);
    expect(m.value('msrp_relay_requests_refused_total', { code: '481' })).to.equal(2);
  });

  it('counts the young collections the relay paces by octets read', async () => {
    // mocha runs without --expose-gc: a stand-in collector counts what the relay asks for.
    const asked: unknown[] = [];
    const before = setCollector((options) => asked.push(options));
    try {
      const relay = await h.relay();
      const metrics = await metricsFor(relay);
      const start = (await scrape(metrics.url)).value('msrp_relay_paced_young_gcs_total');
      expect(start).to.be.a('number');
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob');
      const file = randomBytes(READ_GC_BYTES * 2 + 1000);
      const got = new Promise<ReceivedMessage>((resolve) => bob.once('message', resolve));
      await alice.send({ toPath: alice.toPathFor(bob.path), body: file });
      expect((await got).body.equals(file)).to.equal(true);
      // The relay read the file (and a little more): two paced collections, each a young one.
      expect(asked).to.have.length(2);
      expect(asked[0]).to.deep.equal({ type: 'minor' });
      const m = await scrape(metrics.url);
      expect(m.value('msrp_relay_paced_young_gcs_total')).to.equal(start! + 2);
      expect(m.type('msrp_relay_paced_young_gcs_total')).to.equal('counter');
    } finally {
      setCollector(before);
    }
  });

  it('counts re-chunked sub-chunks toward a WebSocket client and its octets exactly', async () => {
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: 16_384 }));
    const metrics = await metricsFor(relay);
    const carol = await connectWs(h, relay);
    let wsIn = 0;
    let wsOut = 0;
    const ws = carol.ws!;
    const send = ws.send.bind(ws) as (data: Buffer, opts: object) => void;
    (ws as unknown as { send: (data: Buffer, opts: object) => void }).send = (data, opts) => {
      wsIn += data.length;
      send(data, opts);
    };
    ws.on('message', (d: Buffer) => (wsOut += d.length));
    const auth = await carol.auth({
      relayUri: wsRelayUri(relay, 'carol'),
      username: 'carol',
      password: USERS.carol,
    });
    expect(auth.kind === 'response' && auth.statusCode).to.equal(200);
    const bob = await h.client(relay, 'bob');
    const file = randomBytes(100_000);
    const got = new Promise<ReceivedMessage>((resolve) => carol.once('message', resolve));
    const res = await bob.send({ toPath: bob.toPathFor(carol.path), body: file });
    expect(res.statuses).to.deep.equal([200]);
    expect((await got).body.equals(file)).to.equal(true);
    await until(() => relay.transactions.size === 0, 3000, 'carol to answer every sub-chunk');
    await until(() => relay.stats().bytesIn.ws === wsIn, 3000, 'carol’s responses to arrive');

    const m = await scrape(metrics.url);
    // 100 000 octets in messages of 16 KiB minus 4 KiB of head room: 9 sub-chunks, 8 beyond the first.
    expect(m.value('msrp_relay_rechunked_total')).to.equal(8);
    expect(m.value('msrp_relay_responses_total', { code: '200' })).to.equal(9);
    expect(m.value('msrp_relay_connections_opened_total', { transport: 'ws' })).to.equal(1);
    expect(m.value('msrp_relay_connections', { transport: 'ws', state: 'authenticated' })).to.equal(1);
    expect(m.value('msrp_relay_bytes_received_total', { transport: 'ws' })).to.equal(wsIn);
    expect(m.value('msrp_relay_bytes_sent_total', { transport: 'ws' })).to.equal(wsOut);
  });

  it('shows paused readers and queued bytes while a recipient stops reading', async () => {
    const maxQueued = 64 * 1024;
    const relay = await h.relay({ maxQueuedBytes: maxQueued });
    const metrics = await metricsFor(relay);
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    bob.socket.pause();
    // More than the kernel buffers on both sides hold, so the relay's queue toward bob fills up.
    void alice
      .send({
        toPath: alice.toPathFor(bob.path),
        body: Buffer.alloc(32 * 1024 * 1024, 0x78),
        failureReport: 'no',
      })
      .catch(() => {});
    let m = await scrape(metrics.url);
    const end = Date.now() + 10_000;
    while (m.value('msrp_relay_paused_readers') !== 1) {
      if (Date.now() > end) throw new Error('alice was never paused');
      await new Promise((r) => setTimeout(r, 20));
      m = await scrape(metrics.url);
    }
    expect(m.value('msrp_relay_reader_pauses_total')).to.be.at.least(1);
    // Paused until the queue toward bob falls below half of --max-queued-bytes.
    expect(m.value('msrp_relay_queued_bytes_max')).to.be.above(maxQueued / 2);
    expect(m.value('msrp_relay_queued_bytes')).to.be.at.least(m.value('msrp_relay_queued_bytes_max')!);
  });

  it('answers /healthz 200 ok while accepting and 503 draining while close() drains', async () => {
    const relay = await h.relay();
    const metrics = await metricsFor(relay);
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => null });
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'into the void' });
    await until(() => relay.transactions.size === 1, 3000, 'a pending transaction');
    expect(await health(metrics)).to.deep.equal([200, 'ok']);

    h.relays.splice(h.relays.indexOf(relay), 1);
    const closing = relay.close(10_000);
    expect(await health(metrics)).to.deep.equal([503, 'draining']);
    const m = await scrape(metrics.url);
    expect(m.value('msrp_relay_draining')).to.equal(1);
    expect(m.value('msrp_relay_transactions_pending')).to.equal(1);
    // The silent receiver goes away: its transaction fails and the drain completes.
    bob.socket.destroy();
    await closing;
    expect(await health(metrics)).to.deep.equal([503, 'draining']);
  });

  it('exports the expiry of the presented TLS certificate, and follows a replaced one', async () => {
    const first = testCertificate();
    const renewed = otherCertificate();
    const name = 'msrp_relay_tls_certificate_expiry_timestamp_seconds';
    const plain = await metricsFor(await h.relay());
    const none = await scrape(plain.url);
    expect(none.type(name)).to.equal('gauge');
    expect(none.text).to.not.match(new RegExp(`^${name}`, 'm'));
    const relay = await h.relay({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert: first.cert, key: first.key },
    });
    const m = await metricsFor(relay);
    const notAfter = (pem: Buffer): number => Date.parse(new X509Certificate(pem).validTo) / 1000;
    expect((await scrape(m.url)).value(name, { subject: 'CN=localhost' })).to.equal(notAfter(first.cert));
    relay.setTlsCredentials({ cert: renewed.cert, key: renewed.key });
    const after = await scrape(m.url);
    expect(after.value(name, { subject: 'CN=localhost-renewed' })).to.equal(notAfter(renewed.cert));
    expect(after.value(name, { subject: 'CN=localhost' })).to.equal(undefined);
  });

  it('counts sockets refused at accept by transport and limit', async () => {
    const relay = await h.relay({ maxConnectionsPerIp: 1 });
    const m = await metricsFor(relay);
    await h.client(relay, 'alice');
    const port = relay.addresses()[0]!.port;
    await new Promise<void>((resolve) => {
      const s = createConnection({ host: '127.0.0.1', port });
      s.on('error', () => {});
      s.on('close', () => resolve());
    });
    const got = await scrape(m.url);
    expect(got.type('msrp_relay_connections_refused_total')).to.equal('counter');
    expect(
      got.value('msrp_relay_connections_refused_total', {
        transport: 'tcp',
        reason: 'max-connections-per-ip',
      }),
    ).to.equal(1);
  });

  it('keeps each relay in its own registry, and answers 404 elsewhere', async () => {
    const r1 = await h.relay();
    const r2 = await h.relay();
    const m1 = await metricsFor(r1);
    const m2 = await metricsFor(r2);
    await h.client(r1, 'alice');
    const [s1, s2] = await Promise.all([scrape(m1.url), scrape(m2.url)]);
    expect(s1.value('msrp_relay_connections_opened_total', { transport: 'tcp' })).to.equal(1);
    expect(s2.value('msrp_relay_connections_opened_total', { transport: 'tcp' })).to.equal(0);
    const res = await fetch(m1.url.replace(/\/metrics$/, '/nothing'));
    expect(res.status).to.equal(404);
    await res.text();
  });

  it('logs each refused request at debug, REPORTs included, with its status', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({ logger: captureLogger(lines) });
    const alice = await h.client(relay, 'alice');
    // Alice's relay URI with a token the relay never issued: 481 for a SEND, silence for a REPORT.
    const toPath = `${alice.usePath[0]!.replace(/\/[^/;]+;tcp$/, '/nosuchtoken00001;tcp')} ${alice.uri}`;
    const res = await alice.request({
      transactionId: 'refSend01',
      method: 'SEND',
      toPath,
      fromPath: alice.uri,
      headers: [
        ['Message-ID', 'mRef1'],
        ['Byte-Range', '1-2/2'],
      ],
      contentType: 'text/plain',
      body: 'hi',
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(481);
    alice.write(
      Buffer.from(
        `MSRP refRep01 REPORT\r\nTo-Path: ${toPath}\r\nFrom-Path: ${alice.uri}\r\n` +
          'Message-ID: mRef1\r\nByte-Range: 1-2/2\r\nStatus: 000 200 OK\r\n-------refRep01$\r\n',
        'latin1',
      ),
    );
    await until(() => relay.counters.refused['481'] === 2, 3000, 'both refusals counted');
    const refused = lines.filter((l) => l.msg === 'request refused');
    expect(refused.map((l) => [l.level, l.fields.tid, l.fields.method, l.fields.status])).to.deep.equal([
      ['debug', 'refSend01', 'SEND', 481],
      ['debug', 'refRep01', 'REPORT', 481],
    ]);
  });

  it('logs connection open/close with totals, AUTH failures and failure REPORTs, never a body', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({ logger: captureLogger(lines) });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => 415 });
    const eve = await h.connect(relay);
    await eve.auth({ relayUri: h.relayUri(relay, 'carol'), username: 'carol', password: 'nope' });
    const report = next<Frame>(alice, 'report');
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'SECRET-BODY-7f3a', messageId: 'msgLog01' });
    await report;
    await eve.close();
    await until(() => lines.some((l) => l.msg === 'connection closed'), 3000, 'the close line');

    const opened = lines.filter((l) => l.msg === 'connection opened');
    expect(opened.map((l) => l.fields.transport)).to.deep.equal(['tcp', 'tcp', 'tcp']);
    const closed = lines.filter((l) => l.msg === 'connection closed');
    expect(closed.length).to.equal(1);
    expect(closed[0]!.level).to.equal('info');
    expect(closed[0]!.fields).to.include({
      conn: opened[2]!.fields.conn,
      transport: 'tcp',
      reason: 'peer-closed',
      requests: 2,
      bytesIn: eve.socket.bytesWritten,
      bytesOut: eve.socket.bytesRead,
      tokens: 0,
      pending: 0,
    });
    expect(closed[0]!.fields.durationMs).to.be.a('number');
    const authFailed = lines.filter((l) => l.msg === 'AUTH failed');
    expect(authFailed.map((l) => [l.level, l.fields.result, l.fields.failures])).to.deep.equal([
      ['warn', 'failed', 1],
    ]);
    const failure = lines.filter((l) => l.msg === 'failure REPORT');
    expect(failure.map((l) => [l.level, l.fields.messageId, l.fields.status, l.fields.range])).to.deep.equal([
      ['info', 'msgLog01', 415, '1-16'],
    ]);
    expect(JSON.stringify(lines)).to.not.include('SECRET-BODY');
  });
});

interface Run {
  child: ChildProcess;
  stderr: () => string;
  exit: Promise<number | null>;
}

function run(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stderr: () => err, exit };
}

async function inBanner(r: Run, re: RegExp): Promise<RegExpExecArray> {
  const end = Date.now() + 10_000;
  for (;;) {
    const m = re.exec(r.stderr());
    if (m) return m;
    if (Date.now() > end) throw new Error(`not in the banner: ${re}; stderr: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

describe('msrp-relay start --metrics-listen', () => {
  const running: Run[] = [];
  afterEach(() => {
    for (const r of running) r.child.kill('SIGKILL');
    running.length = 0;
  });

  it('prints the metrics URL in the banner and serves the relay’s counters there', async () => {
    const dir = tempDir('msrp-metrics-');
    const users = join(dir, 'users');
    writeFileSync(users, 'alice:alice-pw\n');
    const r = run([
      'start',
      ...[
        '--listen',
        '127.0.0.1:0',
        '--metrics-listen',
        '127.0.0.1:0',
        '--users',
        users,
        '--log-level',
        'warn',
      ],
    ]);
    running.push(r);
    const url = (await inBanner(r, /metrics (http:\/\/127\.0\.0\.1:\d+\/metrics)/))[1]!;
    const port = Number((await inBanner(r, /tcp +127\.0\.0\.1:(\d+)/))[1]);
    const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
    const res = await ep.auth({
      relayUri: `msrp://alice@127.0.0.1:${port};tcp`,
      username: 'alice',
      password: 'alice-pw',
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    const m = await scrape(url);
    expect(m.value('msrp_relay_auth_total', { result: 'ok' })).to.equal(1);
    expect(m.value('msrp_relay_auth_total', { result: 'challenge' })).to.equal(1);
    expect(m.value('msrp_relay_connections', { transport: 'tcp', state: 'authenticated' })).to.equal(1);
    expect(m.value('process_resident_memory_bytes')).to.be.above(0);
    const healthz = await fetch(url.replace(/\/metrics$/, '/healthz'));
    expect([healthz.status, (await healthz.text()).trim()]).to.deep.equal([200, 'ok']);
    await ep.close();
    r.child.kill('SIGTERM');
    expect(await r.exit).to.equal(0);
  });

  it('exits 2 with one line naming --metrics-listen when its port is taken', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    try {
      const taken = (blocker.address() as AddressInfo).port;
      const r = run([
        'start',
        '--listen',
        '127.0.0.1:0',
        '--metrics-listen',
        `127.0.0.1:${taken}`,
        '--no-auth',
      ]);
      running.push(r);
      expect(await r.exit).to.equal(2);
      const lines = r.stderr().trim().split('\n');
      expect(lines[lines.length - 1]).to.include('--metrics-listen');
    } finally {
      blocker.close();
    }
  });
});
