/**
 * bench/reports — what report tracking and injection cost per message, without sockets: the relay's
 * MessageTracker and ReportPolicy fed the way the relay feeds them (head, body piece, end-line, the
 * recipient's 200) for single-chunk 1 KiB message/cpim IMs. Cases: a CPIM IM that requests nothing (tracked,
 * head read, dropped), positive-delivery in RFC 5438 form and in the legacy draft form (tracked, head read,
 * report built and handed over). Run: `npm run bench:reports`. Figures go in docs/benchmarks.md.
 */
import { cpus } from 'node:os';
import { PerformanceObserver } from 'node:perf_hooks';
import { formatCpim } from '../lib/reports/cpim.js';
import { ReportPolicy, type ReportMeta } from '../lib/reports/policy.js';
import { MessageTracker } from '../lib/reports/tracker.js';

const SIZE = 1024;
const SESSIONS = 50;
const TO_PATH = 'msrp://127.0.0.1:2855/Rk9sT1x4ZbQ8yD2;tcp msrp://127.0.0.1:2855/s8Fh2kQpZrVv7;tcp';
const FROM_PATH = 'msrp://127.0.0.1:2855/a1B2c3D4e5F6g7H;tcp';

type Case = 'no request' | 'imdn positive-delivery' | 'legacy positive-delivery';

/**
 * The IM's own id: 8 base-36 digits of its sequence number, so every IM of a run is a new one (the
 * policy reports an id once: the same IM sent again gets no second report).
 */
function imId(n: number): string {
  return `Id${n.toString(36).padStart(8, '0')}x7Qe`;
}

function imBody(kind: Case, n: number): Buffer {
  const headers: Array<[string, string]> = [
    ['From', '<sip:alice@example.com>'],
    ['To', '<sip:bob@example.com>'],
    ['DateTime', '2026-11-24T10:15:31.123Z'],
  ];
  let contentType = 'text/plain';
  if (kind === 'imdn positive-delivery') {
    headers.push(
      ['NS', 'imdn <urn:ietf:params:imdn>'],
      ['imdn.Message-ID', imId(n)],
      ['imdn.Disposition-Notification', 'positive-delivery'],
    );
  } else if (kind === 'legacy positive-delivery') {
    headers.push(['Message-ID', imId(n)], ['Receipt-Request', 'positive-delivery']);
  } else {
    headers.push(['NS', 'imdn <urn:ietf:params:imdn>'], ['imdn.Message-ID', imId(n)]);
    contentType = 'text/plain; charset=utf-8';
  }
  const head = formatCpim({ headers, contentHeaders: [['Content-Type', contentType]], body: '' });
  return Buffer.concat([head, Buffer.alloc(SIZE - head.length, 0x61)]);
}

interface Result {
  perSec: number;
  usPerMsg: number;
  reports: number;
  gcMs: number;
  gcCount: number;
}

async function run(kind: Case, minMs: number): Promise<Result> {
  let reports = 0;
  let reportBytes = 0;
  // As the relay has it: the meta names the recipient's connection, the tracker lists messages by it.
  type Meta = ReportMeta & { dest: number };
  const policy = new ReportPolicy<number, Meta>({
    mode: 'on-ack',
    inject: (_msg, frame) => {
      reports++;
      reportBytes += frame.length;
    },
  });
  const tracker = new MessageTracker<number, Meta>(policy, { groupOf: (m) => m.dest });
  const bodies = Array.from({ length: 256 }, (_, i) => imBody(kind, i));
  const idAt = bodies.map((b, i) => b.indexOf(imId(i)));
  const sessions = Array.from({ length: SESSIONS }, (_, i) => `msrp://127.0.0.1:2855/s${i}Fh2kQpZrVv7;tcp`);
  const range = { start: 1, end: SIZE, total: SIZE };
  let seq = 0;
  const one = (): void => {
    const n = seq++;
    const body = bodies[n & 255]!;
    body.write(imId(n), idAt[n & 255]!, 'latin1'); // a new IM each time (reports are built before the next)
    const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: n % SESSIONS };
    if (!policy.shouldTrack('message/cpim', true)) return;
    const chunk = tracker.begin(n % SESSIONS, sessions[n % SESSIONS]!, `M${n}`, range, meta);
    if (chunk === null) return;
    tracker.data(chunk, body);
    tracker.end(chunk, '$');
    if (!chunk.msg.done) tracker.acked(chunk.msg, 1, SIZE);
  };
  for (let i = 0; i < 20_000; i++) one(); // warm-up
  let gcMs = 0;
  let gcCount = 0;
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      gcMs += e.duration;
      gcCount++;
    }
  });
  obs.observe({ entryTypes: ['gc'] });
  reports = 0;
  const start = process.hrtime.bigint();
  let count = 0;
  let elapsed = 0;
  while (elapsed < minMs) {
    for (let i = 0; i < 5000; i++) one();
    count += 5000;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  // GC entries are delivered asynchronously: let them arrive before counting.
  await new Promise((resolve) => setTimeout(resolve, 50));
  obs.disconnect();
  if (kind !== 'no request' && reports !== count)
    throw new Error(`${kind}: ${reports} reports for ${count} IMs`);
  void reportBytes;
  return { perSec: count / (elapsed / 1000), usPerMsg: (elapsed * 1000) / count, reports, gcMs, gcCount };
}

async function main(): Promise<void> {
  const minMs = Number(process.env.MSRP_BENCH_MS ?? 2000);
  console.log(`# bench/reports — ${cpus()[0]?.model ?? 'cpu'} × ${cpus().length}, Node ${process.version}`);
  console.log(`# command: npm run bench:reports (MSRP_BENCH_MS=${minMs})`);
  console.log('');
  console.log('| case (single-chunk 1 KiB message/cpim) | IMs/s   | µs per IM | reports | GC ms (count) |');
  console.log('| --------------------------------------- | ------: | --------: | ------: | ------------: |');
  const cases: Case[] = ['no request', 'imdn positive-delivery', 'legacy positive-delivery'];
  for (const kind of cases) {
    const r = await run(kind, minMs);
    console.log(
      `| ${kind.padEnd(39)} | ${Math.round(r.perSec).toLocaleString('en-US').padStart(7)} | ` +
        `${r.usPerMsg.toFixed(2).padStart(9)} | ${r.reports.toLocaleString('en-US').padStart(7)} | ` +
        `${`${r.gcMs.toFixed(0)} (${r.gcCount})`.padStart(13)} |`,
    );
  }
}

void main();
