/**
 * Options of a load run: what callers of {@link LoadOptions} may give, the defaults, and the one
 * validation step that turns them into a {@link LoadConfig} — plain data, so it can be posted to worker
 * threads. Every mistake is an `MsrpError` (`MSRP_ERR_CONFIG`) with a one-line message naming the flag.
 * Also the value parsers the CLI shares: sizes (`64k`), size mixes (`100:50,1024:40`), durations (`90s`).
 */
import { readFileSync } from 'node:fs';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { resolveTarget, type LoadTarget, type LoadTransport } from './target.js';

export type { LoadTransport } from './target.js';

/** One entry of a size mix: messages of `bytes` payload octets, picked `weight` times in `sum(weights)`. */
export interface SizeWeight {
  bytes: number;
  weight: number;
}

/** A Digest account the sessions authenticate with. */
export interface LoadUser {
  username: string;
  password: string;
}

/** The delivery reports a message may ask for (CPIM `imdn.Disposition-Notification`). */
export type RequestedReport = 'positive-delivery' | 'negative-delivery';

/**
 * How an IM asks for its reports: RFC 5438 (`imdn.Message-ID`, `imdn.Disposition-Notification`) or the
 * legacy draft-khartabil-simple-im-report form (unprefixed `Message-ID`, `Receipt-Request`).
 */
export type ReportDialect = 'imdn' | 'legacy';

/** What {@link runLoad} accepts; every field is optional and documented with its default. */
export interface LoadOptions {
  /** The relay: `msrp://host:port;tcp`, `msrps://host:port;tcp` or `host:port`. Default `msrp://127.0.0.1:2855;tcp`. */
  target?: string;
  /** A WebSocket relay, `ws://host:port/path` or `wss://...`; replaces `target`. */
  targetWs?: string;
  /** tcp, tls, ws or wss; default from the target's scheme. */
  transport?: LoadTransport;
  /** Host written in the AUTH To-Path URI (Digest realm of some relays); default the target host. */
  authHost?: string;
  /**
   * Another relay for the receivers (same forms as `target`, or a `ws://`/`wss://` URL): senders
   * authenticate at `target`, receivers here, and every message crosses both (RFC 4976 §5.2: the
   * To-Path holds both relays' Use-Paths), which tests relay chaining. Default: `target`.
   */
  receiverTarget?: string;
  /** Expires asked for in AUTH, seconds; default none (the relay's default). */
  authExpires?: number;
  /** PEM CA to trust for tls/wss. */
  tlsCa?: string | Buffer;
  /** Skip certificate verification for tls/wss (default false). */
  insecure?: boolean;
  /** Sessions; each is two endpoints (sender and receiver). Default 1. */
  sessions?: number;
  /** Open loop: messages per second over all sessions. */
  rate?: number;
  /** Closed loop: messages in flight per session (default 1 when `rate` is not given). */
  concurrency?: number;
  /** Stop after this many messages in total. */
  messages?: number;
  /** Stop sending after this many seconds (default 10 when `messages` is not given either). */
  duration?: number;
  /** Payload size: bytes, or a weighted mix. Default 1024. */
  sizes?: number | SizeWeight[];
  /** Body octets per SEND chunk; default 65536 (61440 over WebSocket, to fit one 64 KiB WS message). */
  chunkSize?: number;
  /** Wrap bodies in message/cpim (From, To, DateTime, imdn.Message-ID). Default false. */
  cpim?: boolean;
  /** Reports to request with imdn.Disposition-Notification (implies `cpim`). Default none. */
  requestReports?: RequestedReport[];
  /** The form the IMs ask for reports in (`--report-dialect`). Default `imdn`. */
  reportDialect?: ReportDialect;
  /** The receiving endpoint answers positive-delivery requests with an IMDN itself. Default false. */
  receiverImdn?: boolean;
  /** Status the receiving endpoint answers every chunk with; null: no answer at all. Default 200. */
  receiverStatus?: number | null;
  /** One account for every endpoint. */
  user?: string;
  password?: string;
  /** Accounts given round-robin to endpoints (sender of session i: 2i, receiver: 2i+1). */
  users?: LoadUser[];
  /** A file of `user:password` lines, read into `users`. */
  usersFile?: string;
  /** Seconds over which sessions are opened (traffic starts per session as it comes up). Default 0. */
  rampUp?: number;
  /**
   * Seconds at the start whose messages are left out of the latency figures (JIT compilation and heap
   * growth in the relay and in this process). Default 0.
   */
  warmUp?: number;
  /** Seconds to wait at the end for outstanding messages and reports. Default 10. */
  drain?: number;
  /** Seconds a chunk waits for its transaction response (RFC 4975: 30). Default 30. */
  timeout?: number;
  /** Seconds to keep the sessions open, idle, after the traffic. Default 0. */
  hold?: number;
  /** Worker threads sharing the sessions. Default 1 (everything in this thread). */
  workers?: number;
  /** The run fails (exit code 1) above this fraction of failed or lost messages. Default 0.01. */
  maxErrorRate?: number;
  /** Session setups in progress at once. Default 200. */
  setupConcurrency?: number;
  /** Live progress line on stderr: default when stderr is a TTY. */
  progress?: boolean;
  /** Called once every session is up, before traffic starts (with `rampUp`: when traffic starts). */
  onSessionsReady?: () => void | Promise<void>;
  /** The command line recorded in the report. */
  command?: string;
  /** Aborting it stops sending early; the run then drains and reports as usual. */
  signal?: AbortSignal;
}

/** The validated configuration: plain data, identical in every worker. */
export interface LoadConfig {
  target: LoadTarget;
  /** Where receivers connect and authenticate: `target` unless `--receiver-target` was given. */
  receiverTarget: LoadTarget;
  tlsCa?: string;
  insecure: boolean;
  authExpires?: number;
  sessions: number;
  rate: number | null;
  concurrency: number | null;
  messages: number | null;
  duration: number | null;
  sizes: SizeWeight[];
  chunkSize: number;
  cpim: boolean;
  requestReports: RequestedReport[];
  reportDialect: ReportDialect;
  receiverImdn: boolean;
  receiverStatus: number | null;
  users: LoadUser[];
  rampUp: number;
  warmUp: number;
  drain: number;
  timeout: number;
  hold: number;
  workers: number;
  maxErrorRate: number;
  setupConcurrency: number;
  /** Random prefix of every Message-ID of this run (alphanumeric). */
  idPrefix: string;
}

/** Default payload size, bytes. */
export const DEFAULT_SIZE = 1024;
/** Default chunk size over TCP/TLS, bytes. */
export const DEFAULT_CHUNK_SIZE = 65536;
/** Default chunk size over WebSocket: one chunk plus its headers fits a 64 KiB WS message. */
export const DEFAULT_WS_CHUNK_SIZE = 61440;
/** Default run length when neither messages nor duration is given, seconds. */
export const DEFAULT_DURATION = 10;
/** Default wait at the end for outstanding messages and reports, seconds. */
export const DEFAULT_DRAIN = 10;
/** Default transaction timeout of a chunk, seconds (RFC 4975 §7.3: 30). */
export const DEFAULT_TIMEOUT = 30;
/** Default pass/fail threshold: (failed + lost) / sent. */
export const DEFAULT_MAX_ERROR_RATE = 0.01;
/** Default number of session setups in progress at once. */
export const DEFAULT_SETUP_CONCURRENCY = 200;
/** Largest message the tester sends (4 GiB, the endpoint's Byte-Range arithmetic stays exact). */
const MAX_SIZE = 4 * 1024 ** 3;
/** Upper bounds of counts: beyond them a run would exhaust memory or descriptors before it measured anything. */
const MAX_SESSIONS = 100_000;
const MAX_CONCURRENCY = 10_000;
const MAX_WORKERS = 64;
/** Longest time a flag takes, in seconds: what a Node timer can wait (about 24.8 days). */
const MAX_SECONDS = 2_147_483;
const REPORT_KINDS: readonly RequestedReport[] = ['positive-delivery', 'negative-delivery'];

/** The one error type of option checking: one line, `MSRP_ERR_CONFIG`. */
export function optionError(message: string): MsrpError {
  return createError(ErrorCodes.CONFIG, message, 0, true);
}

const SIZE_UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2 };
Object.assign(SIZE_UNITS, { mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 });

/** Parses a byte count: `1024`, `64k`, `1MiB`, `1g` (binary units). Throws naming `flag`. */
export function parseSize(text: string, flag = '--size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const unit = m === null ? undefined : SIZE_UNITS[m[2]!.toLowerCase()];
  if (m === null || unit === undefined) {
    throw optionError(`${flag} must be a byte count like 1024, 64k or 1m (got "${text}")`);
  }
  const n = Number(m[1]) * unit;
  if (!Number.isInteger(n)) throw optionError(`${flag} must be a whole number of bytes (got "${text}")`);
  if (n > MAX_SIZE) throw optionError(`${flag} must be at most 4g (got "${text}")`);
  return n;
}

/**
 * Parses `--size`: one size (`1024`, `64k`) or a weighted mix `bytes:weight,...`
 * (`100:50,1024:40,64k:10`). Weights are relative; an entry without `:weight` weighs 1.
 */
export function parseSizeMix(text: string): SizeWeight[] {
  const out: SizeWeight[] = [];
  for (const part of text.split(',')) {
    const [size, weight, extra] = part.split(':');
    if (extra !== undefined || size === undefined || size.trim() === '') {
      throw optionError(
        `--size must be BYTES or BYTES:WEIGHT,... like 100:50,1024:40,65536:10 (got "${text}")`,
      );
    }
    // Decimal only: Number() would also take 0x10, 1e3 or an empty string.
    const w = weight === undefined ? 1 : /^\s*\d+(?:\.\d+)?\s*$/.test(weight) ? Number(weight) : NaN;
    if (!Number.isFinite(w) || w <= 0) {
      throw optionError(`--size weights must be positive numbers (got "${part}" in "${text}")`);
    }
    out.push({ bytes: parseSize(size), weight: w });
  }
  return out;
}

/** Parses seconds: `30`, `1.5`, `90s`, `500ms`, `2m`, `1h`. Throws naming `flag`. */
export function parseDuration(text: string, flag: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/i.exec(text);
  if (m === null) throw optionError(`${flag} must be a duration like 30, 90s, 500ms or 2m (got "${text}")`);
  const scale: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  return Number(m[1]) * scale[(m[2] ?? 's').toLowerCase()]!;
}

/** Parses `--request-reports positive-delivery,negative-delivery`. */
export function parseReportList(text: string): RequestedReport[] {
  const out: RequestedReport[] = [];
  for (const raw of text.split(',')) {
    const v = raw.trim().toLowerCase();
    if (v === '') continue;
    if (!(REPORT_KINDS as readonly string[]).includes(v)) {
      throw optionError(
        `--request-reports takes positive-delivery and/or negative-delivery, comma-separated (got "${raw.trim()}")`,
      );
    }
    if (!out.includes(v as RequestedReport)) out.push(v as RequestedReport);
  }
  if (out.length === 0) {
    throw optionError(
      `--request-reports takes positive-delivery and/or negative-delivery, comma-separated (got "${text}")`,
    );
  }
  return out;
}

/**
 * Reads a users file: one `user:password` per line (the password may contain `:`); blank lines and lines
 * starting with `#` are skipped.
 */
export function readUsersFile(path: string): LoadUser[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw optionError(`--users: cannot read ${path} (${code}); give a file of user:password lines`);
  }
  const users: LoadUser[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const colon = t.indexOf(':');
    if (colon <= 0) throw optionError(`--users: ${path}:${i + 1} is not user:password`);
    users.push({ username: t.slice(0, colon), password: t.slice(colon + 1) });
  });
  if (users.length === 0) throw optionError(`--users: ${path} holds no user:password line`);
  return users;
}

function positiveInt(
  value: number | undefined,
  flag: string,
  min = 1,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || value < min || value > max) {
    const range = max === Number.MAX_SAFE_INTEGER ? `of at least ${min}` : `from ${min} to ${max}`;
    throw optionError(`${flag} must be an integer ${range} (got ${String(value)})`);
  }
  return value;
}

/** A number of seconds from 0 to {@link MAX_SECONDS} (or another non-negative number with `max`). */
function nonNegative(value: number | undefined, flag: string, max = MAX_SECONDS): number | undefined {
  if (value === undefined) return undefined;
  if (!Number.isFinite(value) || value < 0 || value > max) {
    throw optionError(`${flag} must be a number from 0 to ${max} (got ${String(value)})`);
  }
  return value;
}

function randomPrefix(): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789';
  let s = 'L';
  for (let i = 0; i < 5; i++) s += alphabet[Math.floor(Math.random() * alphabet.length)];
  return s;
}

/** Validates `options`, applies the defaults and reads the users file; throws one-line `MsrpError`s. */
export function resolveLoadOptions(options: LoadOptions): LoadConfig {
  const target = resolveTarget(options);
  const r = options.receiverTarget;
  let receiverTarget = target;
  if (r !== undefined) {
    try {
      // --transport applies to both relays (a bare host:port takes it; a scheme must agree with it).
      const transport = options.transport;
      receiverTarget = resolveTarget(
        /^wss?:\/\//i.test(r) ? { targetWs: r, transport } : { target: r, transport },
      );
    } catch (err) {
      // The same rules as --target: name the flag that was given.
      throw optionError((err as Error).message.replace(/--target(-ws)?\b/g, '--receiver-target'));
    }
    if (isWebSocket(receiverTarget) !== isWebSocket(target))
      throw optionError(
        '--receiver-target must be a WebSocket relay exactly when the target is (chunk sizes follow the target)',
      );
  }
  const sessions = positiveInt(options.sessions, '--sessions', 1, MAX_SESSIONS) ?? 1;
  if (options.rate !== undefined && options.concurrency !== undefined) {
    throw optionError('--rate (open loop) and --concurrency (closed loop) exclude each other; give one');
  }
  const rate = options.rate === undefined ? null : options.rate;
  if (rate !== null && (!Number.isFinite(rate) || rate <= 0)) {
    throw optionError(`--rate must be a positive number of messages per second (got ${String(rate)})`);
  }
  const concurrency =
    rate === null ? (positiveInt(options.concurrency, '--concurrency', 1, MAX_CONCURRENCY) ?? 1) : null;
  const messages = positiveInt(options.messages, '--messages', 0) ?? null;
  let duration = nonNegative(options.duration, '--duration') ?? null;
  if (duration === 0) throw optionError('--duration must be more than 0 seconds');
  if (messages === null && duration === null) duration = DEFAULT_DURATION;
  let sizes: SizeWeight[];
  if (options.sizes === undefined) sizes = [{ bytes: DEFAULT_SIZE, weight: 1 }];
  else if (typeof options.sizes === 'number') sizes = [{ bytes: options.sizes, weight: 1 }];
  else sizes = options.sizes.map((s) => ({ ...s }));
  if (sizes.length === 0) throw optionError('--size needs at least one size');
  for (const s of sizes) {
    if (!Number.isInteger(s.bytes) || s.bytes < 0 || s.bytes > MAX_SIZE) {
      throw optionError(`--size entries must be whole byte counts from 0 to 4g (got ${String(s.bytes)})`);
    }
    if (!Number.isFinite(s.weight) || s.weight <= 0) {
      throw optionError(`--size weights must be positive numbers (got ${String(s.weight)})`);
    }
  }
  const ws = isWebSocket(target);
  const chunkSize =
    positiveInt(options.chunkSize, '--chunk-size', 1, MAX_SIZE) ??
    (ws ? DEFAULT_WS_CHUNK_SIZE : DEFAULT_CHUNK_SIZE);
  const requestReports = [...(options.requestReports ?? [])];
  for (const r of requestReports) {
    if (!REPORT_KINDS.includes(r)) throw optionError(`--request-reports: unknown report "${String(r)}"`);
  }
  const receiverImdn = options.receiverImdn ?? false;
  const reportDialect = options.reportDialect ?? 'imdn';
  if (reportDialect !== 'imdn' && reportDialect !== 'legacy') {
    throw optionError(`--report-dialect must be imdn or legacy (got ${String(reportDialect)})`);
  }
  if (reportDialect === 'legacy' && receiverImdn) {
    throw optionError('--receiver-imdn writes RFC 5438 IMDNs: it goes with --report-dialect imdn only');
  }
  const cpim = (options.cpim ?? false) || requestReports.length > 0 || receiverImdn;
  const receiverStatus = options.receiverStatus === undefined ? 200 : options.receiverStatus;
  if (
    receiverStatus !== null &&
    (!Number.isInteger(receiverStatus) || receiverStatus < 200 || receiverStatus > 999)
  ) {
    throw optionError(
      `--receiver-status must be a 3-digit status code or "none" (got ${String(receiverStatus)})`,
    );
  }
  let users: LoadUser[] = options.users?.map((u) => ({ ...u })) ?? [];
  if (options.usersFile !== undefined) {
    if (users.length > 0 || options.user !== undefined) {
      throw optionError('--users and --user exclude each other; give one');
    }
    users = readUsersFile(options.usersFile);
  }
  if (options.user !== undefined) users = [{ username: options.user, password: options.password ?? '' }];
  else if (options.password !== undefined) {
    throw optionError(
      users.length === 0
        ? '--password needs --user'
        : '--password goes with --user; with --users the file holds the passwords',
    );
  }
  const workers = positiveInt(options.workers, '--workers', 1, MAX_WORKERS) ?? 1;
  const maxErrorRate = nonNegative(options.maxErrorRate, '--max-error-rate', 1) ?? DEFAULT_MAX_ERROR_RATE;
  const config: LoadConfig = {
    target,
    receiverTarget,
    insecure: options.insecure ?? false,
    sessions,
    rate,
    concurrency,
    messages,
    duration,
    sizes,
    chunkSize,
    cpim,
    requestReports,
    reportDialect,
    receiverImdn,
    receiverStatus,
    users,
    rampUp: nonNegative(options.rampUp, '--ramp-up') ?? 0,
    warmUp: nonNegative(options.warmUp, '--warm-up') ?? 0,
    drain: nonNegative(options.drain, '--drain') ?? DEFAULT_DRAIN,
    timeout: nonNegative(options.timeout, '--timeout') ?? DEFAULT_TIMEOUT,
    hold: nonNegative(options.hold, '--hold') ?? 0,
    workers: Math.min(workers, sessions),
    maxErrorRate,
    setupConcurrency:
      positiveInt(options.setupConcurrency, '--setup-concurrency', 1, MAX_SESSIONS) ??
      DEFAULT_SETUP_CONCURRENCY,
    idPrefix: randomPrefix(),
  };
  if (config.timeout === 0) throw optionError('--timeout must be more than 0 seconds');
  if (config.duration !== null && config.warmUp >= config.duration) {
    throw optionError(
      `--warm-up must be shorter than --duration (got ${config.warmUp} s and ${config.duration} s)`,
    );
  }
  if (options.tlsCa !== undefined) {
    config.tlsCa = options.tlsCa.toString();
    if (!config.tlsCa.includes('-----BEGIN CERTIFICATE-----'))
      throw optionError('--tls-ca holds no PEM certificate (-----BEGIN CERTIFICATE-----)');
  }
  if (options.authExpires !== undefined)
    config.authExpires = positiveInt(options.authExpires, '--auth-expires');
  return config;
}

/** True for a WebSocket relay (`ws`, `wss`): chunks must fit one WebSocket message. */
function isWebSocket(t: LoadTarget): boolean {
  return t.transport === 'ws' || t.transport === 'wss';
}
