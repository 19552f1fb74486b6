/**
 * `msrp-relay load`: the load tester's command line. Flags become {@link LoadOptions} here; the work is in
 * lib/load/. Prints the result table on stdout (and `--json FILE`); exit code 0 when the error rate is
 * within `--max-error-rate`, 1 when not, 2 for a bad flag (one line on stderr).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { isMsrpError } from '../errors.js';
import {
  optionError,
  parseDuration,
  parseReportList,
  parseSize,
  parseSizeMix,
  type LoadOptions,
  type LoadTransport,
  type ReportDialect,
} from '../load/options.js';
import { formatReport } from '../load/report.js';
import { runLoad } from '../load/runner.js';

/** Flags as commander hands them over (every value a string, switches boolean). */
export type LoadFlags = Record<string, string | boolean | undefined>;

function text(flags: LoadFlags, key: string): string | undefined {
  const v = flags[key];
  return typeof v === 'string' ? v : undefined;
}

function number(flags: LoadFlags, key: string, flag: string, integer: boolean): number | undefined {
  const v = text(flags, key);
  if (v === undefined) return undefined;
  // Decimal only, as --size and --duration take them: `1e3`, `0x10` or `0b11` are refused, not read.
  const decimal = integer ? /^-?\d+$/ : /^-?(?:\d+(?:\.\d+)?|\.\d+)$/;
  const n = Number(v.trim());
  if (!decimal.test(v.trim()) || !Number.isFinite(n)) {
    throw optionError(`${flag} must be ${integer ? 'a whole number' : 'a number'} (got "${v}")`);
  }
  return n;
}

function seconds(flags: LoadFlags, key: string, flag: string): number | undefined {
  const v = text(flags, key);
  return v === undefined ? undefined : parseDuration(v, flag);
}

/** Turns the parsed flags into {@link LoadOptions}; throws a one-line `MsrpError` for a bad value. */
export function loadOptionsFromFlags(flags: LoadFlags): LoadOptions {
  const o: LoadOptions = {};
  const size = text(flags, 'size');
  const chunk = text(flags, 'chunkSize');
  const reports = text(flags, 'requestReports');
  const status = text(flags, 'receiverStatus');
  const transport = text(flags, 'transport');
  if (text(flags, 'target') !== undefined) o.target = text(flags, 'target');
  if (text(flags, 'targetWs') !== undefined) o.targetWs = text(flags, 'targetWs');
  if (text(flags, 'receiverTarget') !== undefined) o.receiverTarget = text(flags, 'receiverTarget');
  if (transport !== undefined) o.transport = transport as LoadTransport;
  if (text(flags, 'authHost') !== undefined) o.authHost = text(flags, 'authHost');
  if (text(flags, 'tlsCa') !== undefined) o.tlsCa = readText(text(flags, 'tlsCa')!, '--tls-ca');
  if (flags.insecure === true) o.insecure = true;
  if (text(flags, 'user') !== undefined) o.user = text(flags, 'user');
  if (text(flags, 'password') !== undefined) o.password = text(flags, 'password');
  if (text(flags, 'users') !== undefined) o.usersFile = text(flags, 'users');
  o.authExpires = number(flags, 'authExpires', '--auth-expires', true);
  o.sessions = number(flags, 'sessions', '--sessions', true);
  o.rate = number(flags, 'rate', '--rate', false);
  o.concurrency = number(flags, 'concurrency', '--concurrency', true);
  o.messages = number(flags, 'messages', '--messages', true);
  o.duration = seconds(flags, 'duration', '--duration');
  if (size !== undefined) o.sizes = parseSizeMix(size);
  if (chunk !== undefined) o.chunkSize = parseSize(chunk, '--chunk-size');
  if (flags.cpim === true) o.cpim = true;
  if (reports !== undefined) o.requestReports = parseReportList(reports);
  if (flags.receiverImdn === true) o.receiverImdn = true;
  if (text(flags, 'reportDialect') !== undefined)
    o.reportDialect = text(flags, 'reportDialect') as ReportDialect;
  if (status !== undefined) {
    o.receiverStatus =
      status.toLowerCase() === 'none' ? null : number(flags, 'receiverStatus', '--receiver-status', true);
  }
  o.rampUp = seconds(flags, 'rampUp', '--ramp-up');
  o.warmUp = seconds(flags, 'warmUp', '--warm-up');
  o.drain = seconds(flags, 'drain', '--drain');
  o.timeout = seconds(flags, 'timeout', '--timeout');
  o.hold = seconds(flags, 'hold', '--hold');
  o.workers = number(flags, 'workers', '--workers', true);
  o.setupConcurrency = number(flags, 'setupConcurrency', '--setup-concurrency', true);
  o.maxErrorRate = number(flags, 'maxErrorRate', '--max-error-rate', false);
  if (flags.progress === false) o.progress = false;
  for (const k of Object.keys(o) as Array<keyof LoadOptions>) if (o[k] === undefined) delete o[k];
  return o;
}

function readText(path: string, flag: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw optionError(`${flag}: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
}

/**
 * The command line as typed, for the report (`msrp-relay load --sessions 50 ...`), the `--password`
 * value masked: reports are kept and shared.
 */
export function commandLine(argv: readonly string[]): string {
  const quote = (a: string): string => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`);
  const args = argv.slice(2).map((a, i, all) => {
    if (all[i - 1] === '--password') return '***';
    return a.startsWith('--password=') ? '--password=***' : a;
  });
  return ['msrp-relay', ...args].map(quote).join(' ');
}

/**
 * Runs the load command for already-parsed flags: prints the table, writes `--json`, returns the exit code
 * (0 pass, 1 error rate above the maximum, 2 bad flag). Exported for tests.
 */
export async function loadCommand(
  flags: LoadFlags,
  io: { stdout: (s: string) => void; stderr: (s: string) => void } = {
    stdout: (s) => process.stdout.write(s),
    stderr: (s) => process.stderr.write(s),
  },
  argv: readonly string[] = process.argv,
): Promise<number> {
  const json = text(flags, 'json');
  try {
    const options = loadOptionsFromFlags(flags);
    options.command = commandLine(argv);
    if (json !== undefined) {
      // Fail before the run, not after it, when the report cannot be written; an earlier report stays
      // until this one replaces it (a run stopped by a second Ctrl-C leaves it as it was).
      try {
        appendFileSync(json, '');
      } catch (err) {
        throw optionError(
          `--json: cannot write ${json} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        );
      }
    }
    // First Ctrl-C: stop sending, drain, report. Second: the default (exit at once).
    const abort = new AbortController();
    const onSigint = (): void => {
      io.stderr('\nmsrp-relay load: stopping (Ctrl-C again to quit at once)\n');
      abort.abort();
      process.off('SIGINT', onSigint);
    };
    process.on('SIGINT', onSigint);
    options.signal = abort.signal;
    let report;
    try {
      report = await runLoad(options);
    } finally {
      process.off('SIGINT', onSigint);
    }
    io.stdout(formatReport(report));
    if (json !== undefined) writeFileSync(json, JSON.stringify(report, null, 2) + '\n');
    return report.result.exitCode;
  } catch (err) {
    if (!isMsrpError(err)) throw err;
    io.stderr(`msrp-relay load: ${err.message}\n`);
    return 2;
  }
}

/** Adds the `load` subcommand with all its flags to `program`. */
export function registerLoadCommand(program: Command): void {
  program
    .command('load')
    .description(
      'load-test any RFC 4976 MSRP relay with authenticated session pairs; prints latency and throughput',
    )
    .option(
      '--target <uri>',
      'relay: msrp://host:port;tcp, msrps://host:port;tcp or host:port (default: msrp://127.0.0.1:2855;tcp)',
    )
    .option('--target-ws <url>', 'WebSocket relay instead: ws://host:port/path or wss://host:port/path')
    .option('--transport <kind>', 'tcp, tls, ws or wss (default: from the target scheme)')
    .option(
      '--receiver-target <uri>',
      'another relay for the receivers (msrp://, msrps://, host:port, ws:// or wss://): messages cross both (default: the target)',
    )
    .option(
      '--auth-host <host>',
      'host in the AUTH To-Path URI, e.g. the Digest domain (default: the target host)',
    )
    .option('--auth-expires <seconds>', 'Expires to ask for in AUTH (default: none, the relay decides)')
    .option('--tls-ca <file>', 'PEM CA certificate(s) to trust for tls/wss (default: the system store)')
    .option('--insecure', 'do not verify the relay certificate for tls/wss (default: verify)')
    .option('--user <name>', 'Digest user for every endpoint (default: AUTH without credentials)')
    .option('--password <password>', 'password of --user')
    .option('--users <file>', 'file of user:password lines; endpoints take them round-robin (default: none)')
    .option('-s, --sessions <n>', 'sessions, each a sender and a receiver endpoint (default: 1)')
    .option('-r, --rate <msgs/s>', 'open loop: messages per second over all sessions (default: closed loop)')
    .option('-c, --concurrency <n>', 'closed loop: messages in flight per session (default: 1)')
    .option('-n, --messages <n>', 'stop after this many messages in total (default: no limit)')
    .option(
      '-d, --duration <time>',
      'stop sending after this time: 30, 90s, 2m (default: 10s without --messages)',
    )
    .option('--size <bytes|mix>', 'payload bytes, or a weighted mix like 100:50,1k:40,64k:10 (default: 1024)')
    .option('--chunk-size <bytes>', 'body octets per SEND chunk (default: 64k; 60k over WebSocket)')
    .option('--cpim', 'wrap bodies in message/cpim with From, To, DateTime, imdn.Message-ID (default: off)')
    .option('--request-reports <list>', 'ask for IMDNs: positive-delivery,negative-delivery (implies --cpim)')
    .option(
      '--report-dialect <dialect>',
      'how IMs ask for reports: imdn (RFC 5438) or legacy (Message-ID, Receipt-Request) (default: imdn)',
    )
    .option('--receiver-imdn', 'receiving endpoints send delivery IMDNs themselves (default: off)')
    .option('--receiver-status <code>', 'status the receiver answers each chunk with, or none (default: 200)')
    .option('--ramp-up <time>', 'open the sessions over this time (default: 0, all before traffic)')
    .option(
      '--warm-up <time>',
      'leave messages sent in this first part of the traffic out of the latency figures (default: 0)',
    )
    .option('--drain <time>', 'wait at the end for outstanding messages and reports (default: 10s)')
    .option('--timeout <time>', 'transaction timeout of each chunk (default: 30s)')
    .option('--hold <time>', 'keep the sessions open, idle, after the traffic (default: 0)')
    .option('-w, --workers <n>', 'worker threads sharing the sessions (default: 1)')
    .option('--setup-concurrency <n>', 'session setups in progress at once (default: 200)')
    .option('--max-error-rate <fraction>', 'exit 1 above this (failed + lost) / sent (default: 0.01)')
    .option(
      '--json <file>',
      'also write the report as JSON, schema msrp-relay/load-report/v1 (default: none)',
    )
    .option('--no-progress', 'no live progress line (default: shown when stderr is a TTY)')
    .action(async (flags: LoadFlags) => {
      process.exitCode = await loadCommand(flags);
    });
}
