/**
 * bench/relay — what our relay sustains, measured from outside through the load tester (`runLoad`), with
 * the relay in a child process of its own so its CPU and memory are its own:
 *
 *   a. 1 KiB messages, 50 sessions, closed loop at maximum rate
 *   b. 100-byte messages, 1 session, one in flight (latency floor)
 *   c. a file transfer: one 1 GiB message in 64 KiB chunks (MSRP_BENCH_FILE_SIZE to change it)
 *   d. 1,000 and 10,000 idle sessions: relay RSS (VmRSS from /proc/<pid>/status) per session
 *   e. 1 KiB message/cpim IMs requesting positive-delivery, 50 sessions, max rate, with the relay's
 *      `--reports off` and then `--reports on-ack` (issue 5's target); the note gives the relay's CPU
 *      time per message (utime + stime from /proc/<pid>/stat over the run)
 *   f. 1 KiB messages, 50 sessions, open loop at 25,000 msg/s (half of issue 3's 50,000 msg/s target):
 *      hop latency after a 3 s warm-up (issue 3's p99 < 5 ms)
 *
 * Run: `npm run bench:relay` (about 1-2 minutes): Node gets the V8 flags `bin/msrp-relay` gives
 * `msrp-relay load` (8 MiB young generation, no allocation-site pretenuring), so the measuring load tester
 * is the one operators run, GC settings included. Environment: MSRP_BENCH_RELAY=cli|script (how the relay
 * is started: `bin/msrp-relay start`, the default, or bench/relay-server.js), MSRP_BENCH_SECONDS (length
 * of a, b, e and f, default 15, 10, 15 and 15), MSRP_BENCH_FILE_SIZE (default 1g), MSRP_BENCH_ONLY (the
 * scenarios to run, e.g. `e` or `a,c`; default all), MSRP_BENCH_ROUNDS (rounds of e, each `off` then
 * `on-ack`, and of f, default 1; with more, last lines give each round's on-ack/off throughput and hop
 * p99, and their medians).
 * Prints one table.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseSize, type LoadOptions } from '../lib/load/options.js';
import type { LoadReport } from '../lib/load/report.js';
import { runLoad } from '../lib/load/runner.js';
import { openFileLimit } from '../lib/relay/options.js';

const here = dirname(fileURLToPath(import.meta.url)); // build/bench
const root = join(here, '..', '..');
const USERS = Array.from({ length: 8 }, (_, i) => ({ username: `bench${i}`, password: `pw-${i}-bench` }));
const MiB = 1024 * 1024;

interface RelayChild {
  proc: ChildProcess;
  port: number;
  pid: number;
  mode: 'cli' | 'script';
}

/** VmRSS (or another /proc status field) of `pid`, bytes; 0 when unreadable (not Linux). */
function procStatus(pid: number, field = 'VmRSS'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m === null ? 0 : Number(m[1]) * 1024;
  } catch {
    return 0;
  }
}

/** CPU time (user + system) of `pid` so far, ms; 0 when unreadable. */
function procCpuMs(pid: number): number {
  try {
    // Fields after the command name (which may hold spaces, so split after its closing parenthesis).
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100; // utime, stime in USER_HZ (100)
  } catch {
    return 0;
  }
}

function waitForPort(proc: ChildProcess, stream: 'stdout' | 'stderr', pattern: RegExp): Promise<number> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`relay did not start: ${seen.trim()}`)), 15_000);
    proc[stream]!.on('data', (d: Buffer) => {
      seen += d.toString();
      const m = pattern.exec(seen);
      if (m !== null) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`relay exited with code ${code}: ${seen.trim()}`));
    });
  });
}

/** Starts our relay in a child process: `msrp-relay start` or the bench script. */
async function startRelay(
  usersFile: string,
  maxMessageBytes: number,
  extraArgs: readonly string[] = [],
): Promise<RelayChild> {
  const wanted = process.env.MSRP_BENCH_RELAY;
  const cliBuilt = existsSync(join(root, 'build', 'lib', 'cli', 'start.js'));
  const mode = wanted === 'script' || (wanted === undefined && !cliBuilt) ? 'script' : 'cli';
  if (mode === 'cli') {
    const args = ['start', '--listen', '127.0.0.1:0', '--users', usersFile];
    args.push('--max-message-size', String(maxMessageBytes), '--log-level', 'warn', ...extraArgs);
    // Executed as a program so that its shebang's V8 flags apply, as for `npx msrp-relay start`.
    const proc = spawn(join(root, 'bin', 'msrp-relay'), args, { stdio: ['ignore', 'ignore', 'pipe'] });
    const port = await waitForPort(proc, 'stderr', /tcp\s+127\.0\.0\.1:(\d+)/);
    return { proc, port, pid: proc.pid!, mode };
  }
  const script = join(here, 'relay-server.js');
  const args = [script, '--users', usersFile, '--max-message-size', String(maxMessageBytes), ...extraArgs];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await waitForPort(proc, 'stdout', /"port":(\d+)/);
  return { proc, port, pid: proc.pid!, mode };
}

async function stopRelay(r: RelayChild): Promise<void> {
  if (r.proc.exitCode !== null) return;
  const exited = new Promise((resolve) => r.proc.once('exit', resolve));
  r.proc.kill('SIGTERM');
  const timer = setTimeout(() => r.proc.kill('SIGKILL'), 15_000);
  await exited;
  clearTimeout(timer);
}

interface Row {
  scenario: string;
  report: LoadReport;
  relayRss: number;
  relayPeak: number;
  note: string;
}

const envSeconds = Number(process.env.MSRP_BENCH_SECONDS ?? 0);
const only = new Set((process.env.MSRP_BENCH_ONLY ?? 'a,b,c,d,e,f').split(',').map((x) => x.trim()));
const rounds = Number(process.env.MSRP_BENCH_ROUNDS ?? 1);
for (const x of only) {
  if (!/^[a-f]$/.test(x))
    usage(`MSRP_BENCH_ONLY: '${x}' is not a scenario (a, b, c, d, e or f, comma-separated)`);
}
if (!Number.isInteger(rounds) || rounds < 1)
  usage('MSRP_BENCH_ROUNDS: expected a whole number of rounds, 1 or more');

/** A bad setting: one line on stderr, exit 2. */
function usage(message: string): never {
  process.stderr.write(`bench/relay: ${message}\n`);
  process.exit(2);
}
const fileSize = parseSize(process.env.MSRP_BENCH_FILE_SIZE ?? '1g', 'MSRP_BENCH_FILE_SIZE');
const dir = mkdtempSync(join(tmpdir(), 'msrp-bench-'));
const usersFile = join(dir, 'users');
writeFileSync(usersFile, USERS.map((u) => `${u.username}:${u.password}`).join('\n') + '\n');
const rows: Row[] = [];
let relayMode = '';

/** One scenario against a fresh relay; `measure(relay, baselineRss)` runs once every session is up. */
async function scenario(
  name: string,
  options: LoadOptions,
  measure?: (relay: RelayChild, baseline: number) => string,
  relayArgs: readonly string[] = [],
  finish?: (relay: RelayChild, report: LoadReport, note: string) => string,
): Promise<void> {
  const relay = await startRelay(usersFile, Math.max(64 * MiB, fileSize + MiB), relayArgs);
  relayMode = relay.mode;
  const baseline = procStatus(relay.pid);
  let note = `relay RSS at start ${(baseline / MiB).toFixed(1)} MiB`;
  try {
    process.stderr.write(`bench/relay: ${name} ...\n`);
    const report = await runLoad({
      target: `msrp://127.0.0.1:${relay.port};tcp`,
      users: USERS,
      progress: process.stderr.isTTY === true,
      ...options,
      ...(measure && {
        onSessionsReady: async () => {
          await new Promise((r) => setTimeout(r, 500)); // let the relay settle after the AUTH burst
          note = measure(relay, baseline);
        },
      }),
    });
    rows.push({
      scenario: name,
      report,
      relayRss: procStatus(relay.pid),
      relayPeak: procStatus(relay.pid, 'VmHWM'),
      note: finish === undefined ? note : finish(relay, report, note),
    });
  } finally {
    await stopRelay(relay);
  }
}

/** Idle sessions: relay RSS once all are up, over the RSS of the fresh relay, per session. */
async function idle(requested: number): Promise<void> {
  // A session is two connections; this process and the relay each hold a descriptor per connection.
  const sessions = Math.min(requested, Math.floor((openFileLimit() - 512) / 2));
  const capped =
    sessions < requested ? `; capped from ${n(requested)} by RLIMIT_NOFILE ${openFileLimit()}` : '';
  const options: LoadOptions = { sessions, messages: 0, drain: 0, setupConcurrency: 500, timeout: 60 };
  await scenario(`d. ${n(requested)} idle sessions`, options, (relay, baseline) => {
    const rss = procStatus(relay.pid);
    const perSession = (rss - baseline) / sessions / 1024;
    return `RSS ${(baseline / MiB).toFixed(1)} → ${(rss / MiB).toFixed(1)} MiB with ${n(sessions)} up: ${perSession.toFixed(1)} KiB/session (2 connections)${capped}`;
  });
}

const n = (v: number): string => Math.round(v).toLocaleString('en-US');
/** Rates: thousands separators from 100 up, decimals below (one 256 MiB message is 0.2 msg/s). */
const rate = (v: number): string => (v >= 100 ? n(v) : f(v));
const f = (v: number): string => (v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2));

const started = Date.now();
if (only.has('a')) {
  await scenario('a. 1 KiB × 50 sessions, max rate', {
    sessions: 50,
    concurrency: 4,
    duration: envSeconds || 15,
    sizes: 1024,
    drain: 5,
  });
}
if (only.has('b')) {
  await scenario('b. 100 B × 1 session, 1 in flight', {
    sessions: 1,
    concurrency: 1,
    duration: envSeconds || 10,
    sizes: 100,
    drain: 5,
  });
}
if (only.has('c')) {
  await scenario(`c. file ${(fileSize / MiB).toFixed(0)} MiB in 64 KiB chunks`, {
    sessions: 1,
    messages: 1,
    sizes: fileSize,
    chunkSize: 64 * 1024,
    timeout: 120,
    drain: 120,
  });
}
if (only.has('d')) {
  await idle(1000);
  await idle(10000);
}

/** Issue 5's target: the same CPIM load with the relay's reports off, then on. */
async function reports(mode: 'off' | 'on-ack'): Promise<void> {
  let cpuAtStart = 0;
  let ownCpuAtStart = process.cpuUsage();
  const options: LoadOptions = {
    sessions: 50,
    concurrency: 4,
    duration: envSeconds || 15,
    sizes: 1024,
    cpim: true,
    requestReports: ['positive-delivery'],
    drain: mode === 'off' ? 1 : 5, // with reports off the requested reports never come
  };
  await scenario(
    `e. 1 KiB CPIM × 50 sessions, reports ${mode}`,
    options,
    (relay) => {
      cpuAtStart = procCpuMs(relay.pid);
      ownCpuAtStart = process.cpuUsage();
      return '';
    },
    ['--reports', mode],
    (relay, report) => {
      const sent = Math.max(1, report.messages.sent);
      const perMessage = ((procCpuMs(relay.pid) - cpuAtStart) * 1000) / sent;
      // The load tester's own CPU (this process) shares the two cores: the ratio follows the sum.
      const own = process.cpuUsage(ownCpuAtStart);
      const ownPerMessage = (own.user + own.system) / sent;
      const got = report.reports.received.delivered ?? 0;
      return `relay CPU ${perMessage.toFixed(0)} µs/message, load tester ${ownPerMessage.toFixed(0)}; ${n(got)} delivered reports received`;
    },
  );
}
/** Each round's reports on-ack throughput over reports off (scenario e), in order. */
const ratios: number[] = [];
if (only.has('e')) {
  for (let i = 0; i < rounds; i++) {
    await reports('off');
    await reports('on-ack');
    const [off, on] = rows.slice(-2).map((r) => r.report.throughput.deliveredMessagesPerSecond);
    ratios.push(on! / Math.max(1, off!));
  }
}
/** Each round's hop p99 of scenario f, ms, in order. */
const hopP99s: number[] = [];
if (only.has('f')) {
  // Issue 3: p99 hop latency < 5 ms at half of its 50,000 msg/s target (both processes warmed up). A
  // fixed rate, not half of a's measured one: a moves from run to run, and the target does not.
  const rate = 25_000;
  const duration = envSeconds || 15;
  const warmUp = Math.min(3, duration / 3);
  for (let i = 0; i < rounds; i++) {
    await scenario(
      `f. 1 KiB × 50 sessions, open loop at ${n(rate)} msg/s`,
      { sessions: 50, rate, duration, warmUp, sizes: 1024, drain: 5 },
      undefined,
      [],
      (_relay, _report, note) => `latency after a ${f(warmUp)} s warm-up; ${note}`,
    );
    hopP99s.push(rows.at(-1)!.report.latency.firstHop.p99);
  }
}
rmSync(dir, { recursive: true, force: true });

// ---- the table ------------------------------------------------------------------------------------

const header = [
  'scenario',
  'sessions',
  'messages',
  'msg/s',
  'MiB/s',
  'hop p50/p99 ms',
  'e2e p50/p99/p99.9 ms',
  'errors',
  'relay RSS MiB (peak)',
  'note',
];
const table = rows.map((r) => {
  const rep = r.report;
  const hop = rep.latency.firstHop;
  const e2e = rep.latency.delivery;
  return [
    r.scenario,
    `${n(rep.sessions.established)}/${n(rep.sessions.requested)}`,
    n(rep.messages.delivered),
    rate(rep.throughput.deliveredMessagesPerSecond),
    f(rep.throughput.deliveredBytesPerSecond / MiB),
    hop.count === 0 ? '-' : `${f(hop.p50)}/${f(hop.p99)}`,
    e2e.count === 0 ? '-' : `${f(e2e.p50)}/${f(e2e.p99)}/${f(e2e.p999)}`,
    n(rep.errors.total + rep.messages.lost + rep.sessions.failed),
    `${f(r.relayRss / MiB)} (${f(r.relayPeak / MiB)})`,
    r.note,
  ];
});
const cpu = cpus();
console.log(
  `bench/relay — node ${process.version}, ${cpu[0]?.model.trim() ?? 'cpu'} ×${cpu.length}, ` +
    `${(totalmem() / 1024 ** 3).toFixed(1)} GiB RAM, ${new Date().toISOString()}`,
);
console.log(
  `command: npm run bench:relay   (relay: ${relayMode === 'cli' ? 'bin/msrp-relay start' : 'build/bench/relay-server.js'}, child process; load: runLoad in this process, 1 worker, ${process.execArgv.join(' ') || 'no V8 flags'})`,
);
console.log(`total time ${((Date.now() - started) / 1000).toFixed(0)} s`);
console.log('');
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map((_, i) => (i === 0 || i === header.length - 1 ? '---' : '---:')).join('|')}|`);
for (const r of table) console.log(`| ${r.join(' | ')} |`);
/** The median of `values` (at least one). */
function median(values: readonly number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}
if (ratios.length > 1 || hopP99s.length > 1) console.log('');
if (ratios.length > 1) {
  const pct = (v: number): string => `${(v * 100).toFixed(0)} %`;
  console.log(`e. on-ack / off by round: ${ratios.map(pct).join(', ')}; median ${pct(median(ratios))}`);
}
if (hopP99s.length > 1) {
  const ms = (v: number): string => `${f(v)} ms`;
  console.log(`f. hop p99 by round: ${hopP99s.map(ms).join(', ')}; median ${ms(median(hopP99s))}`);
}
