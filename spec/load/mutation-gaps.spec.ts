/**
 * Load-tester behaviour that mutation testing found unpinned: flags that reach the options, binary `1m`,
 * refused values (rate 0, --users with --user, a port past 65535, --transport against --target-ws), the
 * ws:// default port, HDR's percentile rank and the clamp of merged percentiles, the open-loop figures
 * of the report, pacing under a ramp-up, closed-loop lanes, re-AUTH at 80 % of Expires, the warm-up of
 * the report latency, the round-robin of accounts, and what workers merge. Real relays and scripted
 * peers on 127.0.0.1 port 0.
 */
import { expect } from 'chai';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { loadOptionsFromFlags } from '../../lib/cli/load-command.js';
import { isMsrpError } from '../../lib/errors.js';
import { LatencyHistogram } from '../../lib/load/histogram.js';
import { LoadMetrics } from '../../lib/load/metrics.js';
import { parseSize, resolveLoadOptions, type LoadOptions } from '../../lib/load/options.js';
import { buildReport, formatReport, type LoadReport } from '../../lib/load/report.js';
import { runLoad, splitShares } from '../../lib/load/runner.js';
import { resolveTarget } from '../../lib/load/target.js';
import { parseLoadFlags } from '../helpers/cli.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { randomId, serializeResponse } from '../../lib/msrp/serializer.js';
import type { Relay } from '../../lib/relay/relay.js';
import { fakeMsrpServer, type FakeServer } from '../helpers/fake-server.js';
import { Harness, USERS } from '../helpers/relay.js';

const users = Object.entries(USERS).map(([username, password]) => ({ username, password }));

/** The message of the one-line config error `fn` throws. */
function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(isMsrpError(err) && err.code).to.equal('MSRP_ERR_CONFIG');
    expect((err as Error).message).not.to.include('\n');
    return (err as Error).message;
  }
  throw new Error('no error thrown');
}

/** What a scripted relay saw: the AUTH To-Path users and when each connection's AUTHs came. */
interface Seen {
  authUsers: string[];
  /** performance.now() of every AUTH, per connection. */
  authTimes: number[][];
}

/**
 * A relay that grants every AUTH without a challenge (after `authDelayMs`, with `expires` when given)
 * and answers each SEND with `sendStatus` (null: never) without forwarding it.
 */
async function scriptedRelay(
  opts: { authDelayMs?: number; expires?: number; sendStatus?: number | null } = {},
): Promise<FakeServer & Seen> {
  const seen: Seen = { authUsers: [], authTimes: [] };
  const fake = await fakeMsrpServer((socket: Socket, port: number) => {
    const times: number[] = [];
    seen.authTimes.push(times);
    return (f: Frame): void => {
      if (f.kind !== 'request') return;
      const to = getHeader(f.headers, 'to-path')!;
      const from = getHeader(f.headers, 'from-path')!;
      let status: number | null;
      const headers: Array<[string, string]> = [];
      if (f.method === 'AUTH') {
        times.push(performance.now());
        seen.authUsers.push(/^msrps?:\/\/([^@]+)@/.exec(to)?.[1] ?? '');
        status = 200;
        headers.push(['Use-Path', `msrp://127.0.0.1:${port}/${randomId(12)};tcp`]);
        if (opts.expires !== undefined) headers.push(['Expires', String(opts.expires)]);
      } else if (f.method === 'SEND') {
        status = opts.sendStatus === undefined ? 200 : opts.sendStatus;
      } else return;
      if (status === null) return;
      const write = (): void => {
        if (socket.destroyed) return;
        socket.write(
          serializeResponse({
            transactionId: f.transactionId,
            statusCode: status,
            toPath: from.split(' ')[0]!,
            fromPath: to.split(' ')[0]!,
            headers,
          }),
        );
      };
      if (f.method === 'AUTH' && (opts.authDelayMs ?? 0) > 0) setTimeout(write, opts.authDelayMs);
      else write();
    };
  });
  return Object.assign(fake, seen);
}

/** A report built from `metrics` for `options` (no run: the figures are the report's own arithmetic). */
function reportOf(options: LoadOptions, fill: (m: LoadMetrics) => void): LoadReport {
  const metrics = new LoadMetrics();
  metrics.sessionsRequested = 1;
  metrics.sessionsEstablished = 1;
  fill(metrics);
  const now = new Date();
  return buildReport({
    config: resolveLoadOptions(options),
    metrics,
    startedAt: now,
    finishedAt: now,
    setupMs: 0,
    command: 'test',
  });
}

describe('load tester: behaviour mutation testing found unpinned', function () {
  this.timeout(30_000);

  describe('options', () => {
    it('hands every timing, count and switch flag to the options', () => {
      const flags = parseLoadFlags([
        '--target-ws',
        'ws://127.0.0.1:8080/',
        '--transport',
        'ws',
        '--auth-host',
        'example.com',
        '--auth-expires',
        '300',
        '--insecure',
        '--user',
        'alice',
        '--password',
        'pw',
        '-c',
        '3',
        '-n',
        '100',
        '--cpim',
        '--receiver-imdn',
        '--receiver-status',
        '415',
        '--drain',
        '2s',
        '--timeout',
        '1500ms',
        '--hold',
        '1m',
        '--setup-concurrency',
        '7',
      ]);
      expect(loadOptionsFromFlags(flags)).to.deep.equal({
        targetWs: 'ws://127.0.0.1:8080/',
        transport: 'ws',
        authHost: 'example.com',
        authExpires: 300,
        insecure: true,
        user: 'alice',
        password: 'pw',
        concurrency: 3,
        messages: 100,
        cpim: true,
        receiverImdn: true,
        receiverStatus: 415,
        drain: 2,
        timeout: 1.5,
        hold: 60,
        setupConcurrency: 7,
      });
    });

    it('reads the binary units of sizes: 1m is 1048576 octets, as 1MiB', () => {
      expect(['1m', '1M', '1mb', '2MiB'].map((s) => parseSize(s))).to.deep.equal([
        1048576, 1048576, 1048576, 2097152,
      ]);
    });

    it('refuses --rate 0, --users with --user, and a port past 65535, naming the flag', () => {
      expect(configError(() => resolveLoadOptions({ rate: 0 }))).to.match(
        /^--rate must be a positive number/,
      );
      expect(
        configError(() => resolveLoadOptions({ user: 'alice', usersFile: '/nonexistent/users' })),
      ).to.equal('--users and --user exclude each other; give one');
      expect(configError(() => resolveTarget({ target: '127.0.0.1:70000' }))).to.match(/^--target must be/);
      expect(
        configError(() => resolveTarget({ targetWs: 'ws://127.0.0.1:8080/', transport: 'tls' })),
      ).to.match(/^--transport tls conflicts with --target-ws/);
    });

    it('takes port 80 for a ws:// target without a port, 443 for wss://', () => {
      expect(resolveTarget({ targetWs: 'ws://relay.example.com/msrp' })).to.include({
        transport: 'ws',
        port: 80,
      });
      expect(resolveTarget({ targetWs: 'wss://relay.example.com/msrp' })).to.include({ port: 443 });
    });

    it('splits the open-loop rate over workers in proportion to their sessions', () => {
      const shares = splitShares(resolveLoadOptions({ sessions: 3, workers: 2, rate: 90 }));
      expect(shares.map((s) => [s.sessions, s.rate])).to.deep.equal([
        [2, 60],
        [1, 30],
      ]);
    });
  });

  describe('histograms', () => {
    it('picks the sample HDR picks (rank p/100·n + 0.5 rounded down) from merged buckets', () => {
      // n = 6, p90: rank floor(5.4 + 0.5) = 5, the fifth value (ceil(5.4) would be the sixth).
      const local = new LatencyHistogram();
      for (const ms of [1, 2, 3, 4, 5, 6]) local.recordMs(ms);
      const merged = new LatencyHistogram();
      merged.merge(local.snapshot());
      const inThread = local.percentile(90);
      const fromBuckets = merged.percentile(90);
      expect(inThread).to.be.within(5e6, 5e6 * (1 + 1 / 128));
      expect(fromBuckets).to.be.within(5e6, 5e6 * (1 + 1 / 128));
      expect(merged.percentile(50)).to.be.within(3e6, 3e6 * (1 + 1 / 128));
    });

    it('keeps merged percentiles within the exact min and max', () => {
      const one = new LatencyHistogram();
      one.record(1_000_001); // its bucket reaches up to 1,003,519 ns
      const merged = new LatencyHistogram();
      merged.merge(one.snapshot());
      const s = merged.summary();
      expect([s.min, s.p50, s.p90, s.p99, s.p999, s.max]).to.deep.equal(Array(6).fill(1.000001));
    });
  });

  describe('report figures', () => {
    it('fails an open loop that sent under 90 % of what was due, and passes one at 90 %', () => {
      const run = (sent: number): LoadReport =>
        reportOf({ rate: 100, duration: 10 }, (m) => {
          m.messagesSent = sent;
          m.messagesDelivered = sent;
          m.activeMs = 10_000;
        });
      expect(run(899).openLoop).to.deep.equal({ due: 1000, skippedWithoutSession: 0, fellBehind: true });
      expect(run(899).result.passed).to.equal(false);
      expect(run(900).openLoop!.fellBehind).to.equal(false);
      expect(run(900).result.passed).to.equal(true);
    });

    it('counts what an open loop had due with the linear ramp and at most over --duration', () => {
      const due = (options: LoadOptions, activeMs: number): number =>
        reportOf(options, (m) => {
          m.activeMs = activeMs;
        }).openLoop!.due;
      // The ramp from 0 to R over 4 s has R·4/2 due: 100·(10 − 2).
      expect(due({ rate: 100, duration: 10, rampUp: 4 }, 10_000)).to.equal(800);
      // Within the ramp, R·t²/(2·ramp).
      expect(due({ rate: 100, duration: 10, rampUp: 4 }, 2000)).to.equal(50);
      // Outcomes that come in the drain, past --duration, put nothing more due.
      expect(due({ rate: 100, duration: 10 }, 12_000)).to.equal(1000);
    });

    it('counts throughput over the active time, not the wall time of the run', () => {
      // startedAt = finishedAt: only the active 2 s may divide.
      const r = reportOf({ messages: 500 }, (m) => {
        m.messagesSent = 500;
        m.messagesDelivered = 400;
        m.messagesLost = 100;
        m.bytesSent = 512_000;
        m.bytesDelivered = 409_600;
        m.activeMs = 2000;
      });
      expect(r.timing.activeSeconds).to.equal(2);
      expect(r.throughput).to.deep.equal({
        sentMessagesPerSecond: 250,
        deliveredMessagesPerSecond: 200,
        sentBytesPerSecond: 256_000,
        deliveredBytesPerSecond: 204_800,
      });
    });

    it('says in the latency title that a warm-up was left out', () => {
      const r = reportOf({ rate: 100, duration: 10, warmUp: 3 }, () => {});
      expect(formatReport(r)).to.match(/latency \(ms, after a 3 s warm-up\)/);
    });
  });

  describe('runs', () => {
    const h = new Harness();
    const fakes: FakeServer[] = [];
    afterEach(async () => {
      await h.cleanup();
      await Promise.all(fakes.splice(0).map((f) => f.close()));
    });
    const fake = async (opts: Parameters<typeof scriptedRelay>[0]): Promise<FakeServer & Seen> => {
      const f = await scriptedRelay(opts);
      fakes.push(f);
      return f;
    };
    const target = (relay: Relay): string => `127.0.0.1:${relay.addresses()[0]!.port}`;

    it('never sends more than the ramped rate had due, nor counts a skipped message twice', async () => {
      const base = { sessions: 1, rate: 200, drain: 0.1, progress: false } as const;
      const check = (r: LoadReport): void => {
        const ol = r.openLoop!;
        expect(r.messages.sent, JSON.stringify(ol)).to.be.above(0);
        expect(r.messages.sent + ol.skippedWithoutSession, JSON.stringify(ol)).to.be.at.most(ol.due);
      };
      const quick = await fake({});
      // Traffic ends within the ramp: R·t²/(2·ramp) due, 25 messages.
      check(await runLoad({ ...base, target: `127.0.0.1:${quick.port}`, rampUp: 1, duration: 0.5 }));
      // Past the ramp: R·(t − ramp/2), 100 messages.
      check(await runLoad({ ...base, target: `127.0.0.1:${quick.port}`, rampUp: 0.2, duration: 0.6 }));
      // The session's AUTH takes 300 ms: what fell due meanwhile is skipped once, never sent late.
      const slow = await fake({ authDelayMs: 300 });
      const r = await runLoad({ ...base, target: `127.0.0.1:${slow.port}`, rampUp: 0.2, duration: 0.8 });
      expect(r.openLoop!.skippedWithoutSession).to.be.above(0);
      check(r);
    });

    it('keeps --concurrency messages in flight per session in a closed loop', async () => {
      const silent = await fake({ sendStatus: null });
      const r = await runLoad({
        target: `127.0.0.1:${silent.port}`,
        sessions: 2,
        concurrency: 3,
        duration: 0.3,
        timeout: 1,
        drain: 0.1,
        progress: false,
      });
      // No SEND is answered: each lane sent one message and waited past the end of the traffic.
      expect(r.messages.sent).to.equal(6);
    });

    it('re-AUTHs at 80 % of the Expires granted, before it runs out', async () => {
      // 80 % of 3 s is 2.4 s: timers never fire early, and 600 ms are left for a late one on a busy machine.
      const f = await fake({ expires: 3 });
      const r = await runLoad({
        target: `127.0.0.1:${f.port}`,
        sessions: 1,
        messages: 0,
        hold: 3.3,
        progress: false,
      });
      expect(r.sessions.reauths).to.be.at.least(2);
      const gaps = f.authTimes.filter((t) => t.length >= 2).map((t) => t[1]! - t[0]!);
      expect(gaps).to.have.length(2);
      for (const gap of gaps) expect(gap).to.be.within(2350, 3000);
    });

    it('gives the sender of session i account 2i and its receiver 2i+1, round-robin', async () => {
      const f = await fake({});
      const four = ['u0', 'u1', 'u2', 'u3'].map((username) => ({ username, password: 'pw' }));
      const r = await runLoad({
        target: `127.0.0.1:${f.port}`,
        users: four,
        sessions: 2,
        messages: 0,
        progress: false,
      });
      expect(r.sessions.established).to.equal(2);
      expect([...f.authUsers].sort()).to.deep.equal(['u0', 'u1', 'u2', 'u3']);
    });

    it('counts non-200 responses in errors.total', async () => {
      const refusing = await fake({ sendStatus: 403 });
      const r = await runLoad({
        target: `127.0.0.1:${refusing.port}`,
        sessions: 1,
        messages: 4,
        progress: false,
      });
      expect(r.messages).to.deep.equal({ sent: 4, delivered: 0, failed: 4, lost: 0 });
      expect(r.errors.responses).to.deep.equal({ 403: 4 });
      expect(r.errors.total).to.equal(4);
    });

    it('leaves the report round trips of the warm-up out, as the other latencies', async () => {
      const relay = await h.relay({ reports: 'on-ack' });
      const r = await runLoad({
        target: target(relay),
        users,
        sessions: 2,
        rate: 200,
        duration: 0.6,
        warmUp: 0.3,
        requestReports: ['positive-delivery'],
        drain: 2,
        progress: false,
      });
      expect(r.reports.received).to.deep.equal({ delivered: r.messages.sent });
      expect(r.latency.delivery.count).to.be.below(r.messages.delivered);
      expect(r.latency.report.count).to.equal(r.latency.delivery.count);
    });

    it('merges what two workers measured: setup errors by reason, and the active time as the longest', async () => {
      const relay = await h.relay();
      const refused = await runLoad({
        target: target(relay),
        users: [{ username: 'alice', password: 'wrong' }],
        sessions: 2,
        workers: 2,
        messages: 2,
        progress: false,
      });
      expect(refused.sessions.setupErrors).to.deep.equal({ 'AUTH 401': 2 });
      const r = await runLoad({
        target: target(relay),
        users,
        sessions: 2,
        workers: 2,
        duration: 2,
        drain: 1,
        progress: false,
      });
      // Both workers sent for 2 s at the same time: the run was active 2 s, not 4 (the sum).
      expect(r.timing.activeSeconds).to.be.at.most(r.timing.totalSeconds);
      expect(r.timing.activeSeconds).to.be.below(3.5);
    });
  });
});
