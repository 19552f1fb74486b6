/**
 * The relay's configuration: one table of fields, each a flag (`--max-queued-bytes`), an environment
 * variable (`MSRP_RELAY_MAX_QUEUED_BYTES`) and a config-file key (`maxQueuedBytes`). Precedence is
 * flags > environment > config file > defaults, decided per field here (commander holds no defaults).
 *
 * Conventions: a list given at a higher level replaces the lower one whole (no merging); an empty
 * environment variable counts as unset; `null` in a file counts as absent; relative paths in a file are
 * relative to the file's folder; `:port` binds every IPv4 interface (`0.0.0.0`), `[::]:port` every IPv6
 * (and, on most systems, IPv4) interface.
 */
import { X509Certificate } from 'node:crypto';
import { accessSync, constants as fsConstants, readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkTlsPair } from '../relay/listeners.js';
import { defaultMaxConnections } from '../relay/options.js';
import { pemCertificates } from '../util/pem.js';
import { parseProxyEntry } from '../transport/proxy.js';
import { dirname, extname, resolve as resolvePath } from 'node:path';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { DEFAULTS } from '../constants.js';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';

/** One socket address to listen on; `host` is bare (IPv6 without brackets). */
export interface ListenAddress {
  host: string;
  port: number;
}

/** When the relay injects delivery reports (DESIGN.md "Report policy"). */
export type ReportsMode = 'on-ack' | 'on-receipt' | 'off';
/** Least severe log level written; `silent` writes nothing. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'silent';
/** Log line format: one JSON object per line, or human-readable. */
export type LogFormat = 'json' | 'pretty';

/** The relay's effective configuration; sizes in bytes, timeouts and AUTH lifetimes in seconds. */
export interface RelayConfig {
  listen: ListenAddress[];
  tlsListen: ListenAddress[];
  tlsCert?: string;
  tlsKey?: string;
  /** PEM CA certificates trusted for `msrps` next hops, besides Node's bundled roots. */
  tlsCa?: string;
  relayCa?: string;
  wsListen: ListenAddress[];
  wssListen: ListenAddress[];
  wsAllowedOrigins: string[];
  wsMaxMessage: number;
  web: boolean;
  publicHost?: string;
  realm?: string;
  users?: string;
  auth: boolean;
  authExpires: number;
  authMinExpires: number;
  authMaxExpires: number;
  /** Failed guesses for one user from one address that lock the pair out (0: no lockout). */
  authLockoutFailures: number;
  /** Seconds: a gap this long ends a run of failures; a lockout lasts this long after its last failure. */
  authLockoutTime: number;
  maxMessageSize: number;
  maxQueuedBytes: number;
  maxTotalQueuedBytes: number;
  /** Accepted connections open at once (0: no limit); resolved from the open-file limit when not given. */
  maxConnections?: number;
  /** Accepted connections open at once from one IPv4 address or IPv6 /64 (0: no limit). */
  maxConnectionsPerIp: number;
  maxNextHops: number;
  maxRelayedTokens: number;
  /** HTTP proxies (addresses, `address/prefix` networks) whose X-Forwarded-For names a WebSocket client. */
  trustedProxies: string[];
  /** Load balancers whose TCP and TLS connections must start with a PROXY header naming the client. */
  proxyProtocolFrom: string[];
  nextHopAllow: string[];
  nextHopDeny: string[];
  /** Next-hop relay hosts dialed once per session (relays that bind a connection to one session). */
  nextHopPerSession: string[];
  transactionTimeout: number;
  probationTimeout: number;
  idleTimeout: number;
  /** Seconds a connection's queue may stay over its limit with nothing leaving before it is closed. */
  writeStallTimeout: number;
  /** Seconds of silence before TCP keep-alive probes a TCP or TLS connection; 0: off. */
  tcpKeepalive: number;
  /** Seconds a connection may owe an answer, sending nothing, before it is taken for dead; 0: never. */
  deadPeerTimeout: number;
  reports: ReportsMode;
  reportsDedupe: boolean;
  reportsDedupeEntries: number;
  reportsProcessing: boolean;
  metricsListen?: ListenAddress;
  logLevel: LogLevel;
  logFormat: LogFormat;
}

type Key = keyof RelayConfig;
type ScalarKind =
  'size' | 'duration' | 'seconds' | 'count' | 'limit' | 'boolean' | 'host' | 'text' | 'path' | 'enum';
type Kind = ScalarKind | 'addresses' | 'address' | 'origins' | 'networks' | 'hosts';

interface Field {
  readonly key: Key;
  readonly kind: Kind;
  readonly help: string;
  /** Argument placeholder shown in help, e.g. `host:port`. */
  readonly arg?: string;
  readonly def?: unknown;
  /** Default as shown in help when it is derived rather than fixed. */
  readonly defText?: string;
  readonly choices?: readonly string[];
  /** A duration that also takes 0, meaning off. */
  readonly zeroOff?: boolean;
  /** Largest value of a 'seconds' field, when below what a Node timer holds. */
  readonly maxSeconds?: number;
  /** What 0 means for a 'limit' (default `no limit`), as error messages say it. */
  readonly zeroMeans?: string;
}

const ENV_PREFIX = 'MSRP_RELAY_';
const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'silent'];
const WILDCARD_V4 = '0.0.0.0';
/** Largest count a flag takes (--reports-dedupe-entries: its slots are allocated at start). */
const MAX_COUNT = 1_000_000;
/** Largest connection limit a flag takes (0 means none). */
const MAX_LIMIT = 100_000_000;
/** setTimeout() holds at most 2^31-1 ms. */
const MAX_SECONDS = Math.floor(0x7fffffff / 1000);
/** Linux refuses a larger TCP_KEEPIDLE (MAX_TCP_KEEPIDLE): the probes would start after its default 2 h. */
const MAX_KEEPIDLE_SECONDS = 32767;

const ARG_NAMES: Partial<Record<Kind, string>> = {
  origins: 'origin',
  networks: 'address[/prefix]',
  hosts: 'host',
  seconds: 'duration',
  path: 'file',
  count: 'n',
  limit: 'n',
};

function argOf(kind: Kind): string {
  return kind === 'addresses' || kind === 'address' ? 'host:port' : (ARG_NAMES[kind] ?? kind);
}

function field(key: Key, kind: Kind, def: unknown, help: string, extra?: Partial<Field>): Field {
  return { key, kind, def, help, arg: argOf(kind), ...extra };
}

const D = DEFAULTS;
const SIZE = 'size';
const TIME = 'duration';
const SECS = 'seconds';

const FIELDS: readonly Field[] = [
  field('listen', 'addresses', [{ host: '127.0.0.1', port: D.port }], 'TCP listener, repeatable'),
  field('tlsListen', 'addresses', [], 'TLS listener, repeatable; needs --tls-cert and --tls-key'),
  field('tlsCert', 'path', undefined, 'PEM certificate chain for TLS and WSS listeners'),
  field('tlsKey', 'path', undefined, 'PEM private key for TLS and WSS listeners'),
  field('tlsCa', 'path', undefined, "PEM CA certificates trusted for msrps next hops, besides Node's roots"),
  field(
    'relayCa',
    'path',
    undefined,
    'PEM CA certificates of other relays: TLS listeners ask for a client certificate, and one from these CAs proves a relay',
  ),
  field('wsListen', 'addresses', [], 'WebSocket listener, repeatable'),
  field('wssListen', 'addresses', [], 'secure WebSocket listener, repeatable'),
  field('wsAllowedOrigins', 'origins', [], 'WebSocket Origin allowed in, repeatable', { defText: 'any' }),
  field(
    'wsMaxMessage',
    SIZE,
    D.wsMaxMessageBytes,
    'largest WebSocket message sent (chunks are cut to fit); messages up to the larger of this and --max-queued-bytes are taken',
  ),
  field('web', 'boolean', true, 'the built-in web page on the WebSocket listeners'),
  field('publicHost', 'host', undefined, "host in the relay's URI", { defText: 'the first listen host' }),
  field('realm', 'text', undefined, 'Digest realm of AUTH challenges', { defText: 'the public host' }),
  field('users', 'path', undefined, 'file of users allowed to AUTH'),
  field('auth', 'boolean', true, 'Digest AUTH (off: relay for anyone)'),
  field('authExpires', SECS, D.authExpires, 'AUTH lifetime granted when none is asked'),
  field('authMinExpires', SECS, D.authMinExpires, 'shortest AUTH lifetime accepted'),
  field('authMaxExpires', SECS, D.authMaxExpires, 'longest AUTH lifetime accepted'),
  field(
    'authLockoutFailures',
    'limit',
    D.authLockoutFailures,
    'wrong passwords (or unknown users) for one user from one address (IPv6: /64) that lock them out; 0: no lockout',
    { zeroMeans: 'no lockout' },
  ),
  field(
    'authLockoutTime',
    TIME,
    D.authLockoutMs / 1000,
    'how long a lockout lasts after the last failure; a gap this long between failures restarts the count',
  ),
  field('maxMessageSize', SIZE, D.maxMessageBytes, 'largest message across all its chunks'),
  field('maxQueuedBytes', SIZE, D.maxQueuedBytes, 'queued bytes per connection before its sources pause'),
  field(
    'maxTotalQueuedBytes',
    SIZE,
    D.maxTotalQueuedBytes,
    'queued bytes of all connections together past which every queue over 64 KiB pauses its sources',
  ),
  field('maxConnections', 'limit', undefined, 'accepted connections open at once; 0: no limit', {
    defText: 'the open-file limit minus 128',
  }),
  field('maxConnectionsPerIp', 'limit', 0, 'accepted connections open at once per IPv4 address or IPv6 /64', {
    defText: '0, no limit',
  }),
  field(
    'maxNextHops',
    'count',
    D.maxNextHops,
    'connections dialed toward next hops open at once; past it the one idle longest is closed, or the request refused (408)',
  ),
  field(
    'maxRelayedTokens',
    'count',
    D.maxRelayedTokens,
    "live tokens for AUTHs another relay forwarded (its clients'), per address or relay certificate, past which the oldest is revoked; also the URIs a proven relay's own connections carry back",
  ),
  field(
    'trustedProxies',
    'networks',
    [],
    'HTTP proxy address or network whose X-Forwarded-For names a WS/WSS client, repeatable',
    { defText: 'none' },
  ),
  field(
    'proxyProtocolFrom',
    'networks',
    [],
    'load balancer address or network whose TCP/TLS connections must start with a PROXY header (v1, v2), repeatable',
    { defText: 'none' },
  ),
  field(
    'nextHopAllow',
    'networks',
    [],
    'address or network next hops may be dialed at (relay chaining), repeatable; others are refused (403)',
    { defText: 'any' },
  ),
  field(
    'nextHopDeny',
    'networks',
    [],
    'address or network next hops may not be dialed at, e.g. 127.0.0.0/8 or 10.0.0.0/8, repeatable',
    { defText: 'none' },
  ),
  field(
    'nextHopPerSession',
    'hosts',
    [],
    'next-hop host (as in URIs) dialed once per session, for relays that bind a connection to one session, repeatable',
    { defText: 'none' },
  ),
  field('transactionTimeout', TIME, D.transactionTimeoutMs / 1000, 'wait for a response from the next hop'),
  field(
    'probationTimeout',
    TIME,
    D.probationMs / 1000,
    'wait for the first successful request on a connection',
  ),
  field('idleTimeout', TIME, D.idleTimeoutMs / 1000, 'close a connection silent this long'),
  field(
    'writeStallTimeout',
    TIME,
    D.writeStallMs / 1000,
    'close a connection whose full queue has had nothing leave for this long (3x for other relays); 0: never',
    { zeroOff: true },
  ),
  field(
    'tcpKeepalive',
    SECS,
    D.tcpKeepAliveMs / 1000,
    'TCP keep-alive: the kernel probes a TCP or TLS connection silent this long; 0: off',
    { zeroOff: true, maxSeconds: MAX_KEEPIDLE_SECONDS },
  ),
  field(
    'deadPeerTimeout',
    TIME,
    D.deadPeerMs / 1000,
    'close a connection that owes an answer and has sent nothing for this long (10x for relays); 0: never',
    { zeroOff: true },
  ),
  field('reports', 'enum', 'on-ack', 'inject delivery reports', {
    arg: 'mode',
    choices: ['on-ack', 'on-receipt', 'off'],
  }),
  field(
    'reportsDedupe',
    'boolean',
    true,
    "dropping a recipient's delivery reports the relay already sent, and sending none where the recipient reported first",
  ),
  field(
    'reportsDedupeEntries',
    'count',
    D.reportDedupeEntries,
    'delivery notifications (delivered, failed) remembered for dedupe',
  ),
  field('reportsProcessing', 'boolean', false, "answering 'processing' requests with 'processed'"),
  field('metricsListen', 'address', undefined, 'serve Prometheus metrics over HTTP here', { defText: 'off' }),
  field('logLevel', 'enum', 'info', 'least severe level logged', { arg: 'level', choices: LOG_LEVELS }),
  field('logFormat', 'enum', 'json', 'log line format', { arg: 'format', choices: ['json', 'pretty'] }),
];

const FIELD_BY_KEY = new Map<string, Field>(FIELDS.map((f) => [f.key, f]));

function fail(message: string): MsrpError {
  return createError(ErrorCodes.CONFIG, message, 0, true);
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);
}

function envName(key: string): string {
  return ENV_PREFIX + kebab(key).replace(/-/g, '_').toUpperCase();
}

/** A value quoted for a one-line message, cut short. */
function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Formats an address as `host:port`, bracketing IPv6 hosts. */
export function formatHostPort(addr: ListenAddress): string {
  return isIP(addr.host) === 6 ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}

const HOSTNAME =
  /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/;

function checkHost(host: string, where: string): string {
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) !== 0 || HOSTNAME.test(bare)) return bare;
  throw fail(`invalid host ${show(host)} in ${where}: give a host name, an IPv4 address or an IPv6 address`);
}

function checkPort(port: unknown, where: string): number {
  const n = typeof port === 'string' && /^\d+$/.test(port) ? Number(port) : port;
  if (typeof n === 'number' && Number.isInteger(n) && n >= 0 && n <= 65535) return n;
  throw fail(`invalid port ${show(port)} in ${where}: give a whole number from 0 to 65535`);
}

/**
 * Parses `host:port`, `[v6]:port` or `:port` (every IPv4 interface, `0.0.0.0`); port 0 asks for an
 * ephemeral port. Throws a CONFIG {@link MsrpError} naming `where` on bad input.
 */
export function parseHostPort(text: string, where = 'address'): ListenAddress {
  const trimmed = text.trim();
  const m = /^(?:\[([^\]]*)\]|([^:[\]]*)):([^:]*)$/.exec(trimmed);
  if (m === null) {
    const hint = trimmed.includes(':') ? 'bracket IPv6 hosts, e.g. [::1]:2855' : 'add the port';
    throw fail(`invalid ${where} ${show(text)}: expected host:port such as 127.0.0.1:2855 or :2855; ${hint}`);
  }
  const port = checkPort(m[3], `${where} ${show(text)}`);
  if (m[1] !== undefined) {
    if (isIP(m[1]) !== 6) throw fail(`invalid ${where} ${show(text)}: only IPv6 addresses go in brackets`);
    return { host: m[1], port };
  }
  const host = m[2] === '' ? WILDCARD_V4 : checkHost(m[2], `${where} ${show(text)}`);
  return { host, port };
}

/** `12.5k` → 12.5 × units.k (a negative unit divides: ms → / 1000); NaN when the text does not fit. */
function withUnit(value: string | number, units: Record<string, number>): number {
  if (typeof value === 'number') return value;
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  const unit = m ? units[m[2].toLowerCase()] : undefined;
  if (m === null || unit === undefined) return NaN;
  return unit < 0 ? Number(m[1]) / -unit : Number(m[1]) * unit;
}

const KIB = 1024;
const SIZE_UNITS: Record<string, number> = {
  '': 1,
  k: KIB,
  kib: KIB,
  m: KIB ** 2,
  mib: KIB ** 2,
  g: KIB ** 3,
  gib: KIB ** 3,
};

/**
 * Parses a size in bytes: a whole number, or a number with `k`/`KiB`/`m`/`MiB`/`g`/`GiB` (1024-based,
 * any case). The result is a whole number above 0; throws a CONFIG {@link MsrpError} otherwise.
 */
export function parseSize(value: string | number, where = 'size'): number {
  const bytes = withUnit(value, SIZE_UNITS);
  if (Number.isSafeInteger(bytes) && bytes > 0) return bytes;
  throw fail(
    `invalid ${where} ${show(value)}: expected a whole number of bytes above 0, e.g. 1048576, 512k or 64MiB`,
  );
}

const TIME_UNITS: Record<string, number> = { '': 1, ms: -1000, s: 1, m: 60, h: 3600 };

/**
 * Parses a duration into seconds: a number of seconds, or a number with `ms`/`s`/`m`/`h`. The result is
 * above 0 (or 0 itself, meaning off, with `zeroOff`) and fits a Node timer (about 24.8 days); throws a
 * CONFIG {@link MsrpError} otherwise.
 */
export function parseDuration(
  value: string | number,
  where = 'duration',
  zeroOff = false,
  maxSeconds = MAX_SECONDS,
): number {
  const seconds = withUnit(value, TIME_UNITS);
  if (Number.isFinite(seconds) && (seconds > 0 || (zeroOff && seconds === 0)) && seconds <= maxSeconds)
    return seconds;
  const range = zeroOff ? '0 (off) or a duration of' : 'a duration above 0 and';
  throw fail(
    `invalid ${where} ${show(value)}: expected ${range} at most ${maxSeconds}s, e.g. 30, 500ms, 10m or 1h`,
  );
}

function splitList(text: string): string[] {
  return text
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function toList(raw: unknown, where: string): unknown[] {
  if (typeof raw === 'string') return splitList(raw);
  if (Array.isArray(raw)) return raw.flatMap((v) => (typeof v === 'string' ? splitList(v) : [v]));
  throw fail(`invalid ${where} ${show(raw)}: expected a list or a comma-separated string`);
}

function toAddress(raw: unknown, where: string): ListenAddress {
  if (typeof raw === 'string') return parseHostPort(raw, where);
  if (isRecord(raw)) {
    const extra = Object.keys(raw).filter((k) => k !== 'host' && k !== 'port');
    if (extra.length > 0 || typeof raw.host !== 'string') {
      throw fail(`invalid ${where} ${show(raw)}: expected "host:port" or {host, port} with a string host`);
    }
    const host = raw.host === '' ? WILDCARD_V4 : checkHost(raw.host, where);
    return { host, port: checkPort(raw.port, where) };
  }
  throw fail(`invalid ${where} ${show(raw)}: expected "host:port" such as 127.0.0.1:2855`);
}

function toOrigin(raw: unknown, where: string): string {
  if (typeof raw === 'string') {
    let origin = 'null';
    try {
      origin = new URL(raw).origin;
    } catch {
      // reported below
    }
    if (origin !== 'null' && origin === raw.replace(/\/$/, '').toLowerCase()) return origin;
  }
  throw fail(`invalid ${where} ${show(raw)}: expected an origin such as https://chat.example.com (no path)`);
}

function toNetwork(raw: unknown, where: string): string {
  if (typeof raw === 'string') {
    try {
      parseProxyEntry(raw);
      return raw;
    } catch (err) {
      throw fail(`invalid ${where} ${show(raw)}: ${(err as Error).message}`);
    }
  }
  throw fail(`invalid ${where} ${show(raw)}: expected an IP address or network, e.g. 10.0.0.0/8`);
}

const TRUE_WORDS = new Set(['true', '1', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', '0', 'no', 'off']);

function toBoolean(raw: unknown, where: string): boolean {
  if (typeof raw === 'boolean') return raw;
  const word = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
  if (TRUE_WORDS.has(word)) return true;
  if (FALSE_WORDS.has(word)) return false;
  throw fail(`invalid ${where} ${show(raw)}: expected true or false`);
}

/** A whole number written in decimal digits (or a file's number), from `min` (shown as `minText`) to `max`. */
function toWholeNumber(raw: unknown, where: string, min: number, max: number, minText: string): number {
  const text = typeof raw === 'number' ? String(raw) : typeof raw === 'string' ? raw.trim() : '';
  const n = /^\d{1,9}$/.test(text) ? Number(text) : NaN;
  if (!(n >= min && n <= max)) {
    throw fail(`invalid ${where} ${show(raw)}: expected a whole number from ${minText} to ${max}`);
  }
  return n;
}

function toText(raw: unknown, where: string): string {
  // eslint-disable-next-line no-control-regex
  if (typeof raw === 'string' && raw.trim() !== '' && !/[\x00-\x1f\x7f"]/.test(raw)) return raw.trim();
  throw fail(`invalid ${where} ${show(raw)}: expected non-empty text without quotes or control characters`);
}

function convert(field: Field, raw: unknown, where: string, baseDir?: string): unknown {
  switch (field.kind) {
    case 'addresses':
      return toList(raw, where).map((v) => toAddress(v, where));
    case 'address':
      return toAddress(raw, where);
    case 'origins':
      return toList(raw, where).map((v) => toOrigin(v, where));
    case 'networks':
      return toList(raw, where).map((v) => toNetwork(v, where));
    case 'hosts':
      return toList(raw, where).map((v) => checkHost(toText(v, where), where));
    case 'size':
    case 'duration':
    case 'seconds': {
      if (typeof raw !== 'string' && typeof raw !== 'number') throw fail(`invalid ${where} ${show(raw)}`);
      if (field.kind === 'size') return parseSize(raw, where);
      const seconds = parseDuration(raw, where, field.zeroOff === true, field.maxSeconds);
      if (field.kind === 'seconds' && !Number.isInteger(seconds)) {
        throw fail(`invalid ${where} ${show(raw)}: expected a whole number of seconds`);
      }
      return seconds;
    }
    case 'count':
      return toWholeNumber(raw, where, 1, MAX_COUNT, '1');
    case 'limit':
      return toWholeNumber(raw, where, 0, MAX_LIMIT, `0 (${field.zeroMeans ?? 'no limit'})`);
    case 'boolean':
      return toBoolean(raw, where);
    case 'host':
      return checkHost(toText(raw, where), where);
    case 'text':
      return toText(raw, where);
    case 'path': {
      const path = toText(raw, where);
      return baseDir === undefined ? path : resolvePath(baseDir, path);
    }
    case 'enum': {
      const word = typeof raw === 'string' ? raw.trim().toLowerCase() : '';
      if (field.choices?.includes(word)) return word;
      throw fail(`invalid ${where} ${show(raw)}: expected one of ${field.choices?.join(', ')}`);
    }
  }
}

interface ConfigFile {
  path: string;
  data: Record<string, unknown>;
}

function unknownKey(key: string, path: string): MsrpError {
  const camel = key.toLowerCase().replace(/[-_]+([a-z])/g, (_, c: string) => c.toUpperCase());
  const field = FIELD_BY_KEY.get(camel) ?? FIELDS.find((f) => f.key.toLowerCase() === key.toLowerCase());
  const hint = field ? `did you mean ${field.key}?` : 'remove it or check its spelling';
  return fail(`unknown key ${show(key)} in config file ${path}: ${hint}`);
}

function readConfigFile(path: string, where: string): ConfigFile {
  const ext = extname(path).toLowerCase();
  if (ext !== '.json' && ext !== '.yaml' && ext !== '.yml') {
    throw fail(`config file ${path} (${where}) must end in .json, .yaml or .yml`);
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw fail(`cannot read config file ${path} (${where}): ${code}; check the path and permissions`);
  }
  let data: unknown;
  // A byte-order mark (an editor's UTF-8 with BOM) is not JSON; the users file and YAML skip it too.
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  try {
    data = ext === '.json' ? JSON.parse(text) : (parseYaml(text) ?? {});
  } catch (err) {
    // One line: the yaml library ends its first line with a colon before a code frame; that goes.
    const first = String((err as Error).message)
      .split('\n')[0]!
      .replace(/:\s*$/, '');
    throw fail(`config file ${path} (${where}) is not valid ${ext === '.json' ? 'JSON' : 'YAML'}: ${first}`);
  }
  if (!isRecord(data))
    throw fail(`config file ${path} (${where}) must hold a mapping of keys such as listen`);
  for (const key of Object.keys(data)) if (!FIELD_BY_KEY.has(key)) throw unknownKey(key, path);
  return { path, data };
}

/**
 * The certificates of a PEM CA file, each checked; throws naming the file when there is none or one does
 * not parse.
 */
export function readCaFile(path: string, where = '--tls-ca'): string[] {
  const text = readFileSync(path, 'latin1');
  const pems = pemCertificates(text);
  if (pems.length === 0)
    throw fail(`${where} ${show(path)} holds no PEM certificate: give a file of "BEGIN CERTIFICATE" blocks`);
  for (const [i, pem] of pems.entries()) {
    try {
      new X509Certificate(pem);
    } catch {
      throw fail(`${where} ${show(path)}: certificate ${i + 1} of ${pems.length} does not parse`);
    }
  }
  return pems;
}

function checkReadable(path: string, where: string): void {
  try {
    if (!statSync(path).isFile()) throw Object.assign(new Error('not a file'), { code: 'ENOTFILE' });
    accessSync(path, fsConstants.R_OK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'error';
    throw fail(`${where} ${show(path)} is not a readable file (${code}): check the path and permissions`);
  }
}

/** Listen hosts that bind every interface. */
export const WILDCARD_HOSTS: ReadonlySet<string> = new Set([WILDCARD_V4, '::', '0:0:0:0:0:0:0:0']);

/**
 * Checks that span fields, and fills publicHost and realm. `defaulted`: the fields nobody set (flag,
 * environment or file).
 */
function finish(
  cfg: RelayConfig,
  where: Record<string, string>,
  defaulted: ReadonlySet<string>,
  checkFiles: boolean,
): void {
  const { authMinExpires, authMaxExpires } = cfg;
  // A default AUTH lifetime follows the bounds the operator set (--auth-max-expires 300 alone is fine).
  if (defaulted.has('authExpires'))
    cfg.authExpires = Math.min(authMaxExpires, Math.max(authMinExpires, cfg.authExpires));
  const { authExpires } = cfg;
  if (authMinExpires > authMaxExpires) {
    throw fail(
      `${where.authMinExpires} (${authMinExpires}) exceeds ${where.authMaxExpires} (${authMaxExpires}): lower the minimum or raise the maximum`,
    );
  }
  if (authExpires < authMinExpires || authExpires > authMaxExpires) {
    throw fail(
      `${where.authExpires} (${authExpires}) must lie between ${where.authMinExpires} (${authMinExpires}) and ${where.authMaxExpires} (${authMaxExpires}): change one of them`,
    );
  }
  const lists = ['listen', 'tlsListen', 'wsListen', 'wssListen'] as const;
  const first = lists.map((k) => cfg[k][0]).find((a) => a !== undefined);
  if (first === undefined)
    throw fail(`no listener configured: give --listen, --tls-listen, --ws-listen or --wss-listen`);
  for (const list of ['tlsListen', 'wssListen'] as const) {
    if (cfg[list].length === 0) continue;
    for (const key of ['tlsCert', 'tlsKey'] as const) {
      if (cfg[key] === undefined) {
        throw fail(
          `${where[list]} needs ${where[key]}: give it a PEM file (or ${envName(key)}, or ${key} in the config file)`,
        );
      }
    }
  }
  if (cfg.relayCa !== undefined && cfg.tlsListen.length === 0)
    throw fail(
      `${where.relayCa} needs ${where.tlsListen}: relays present their certificates to a TLS listener`,
    );
  for (const key of ['tlsCert', 'tlsKey', 'tlsCa', 'relayCa', 'users'] as const) {
    const path = cfg[key];
    if (path !== undefined && checkFiles) checkReadable(path, where[key]);
  }
  if (cfg.tlsCa !== undefined && checkFiles) readCaFile(cfg.tlsCa, where.tlsCa!);
  if (cfg.relayCa !== undefined && checkFiles) readCaFile(cfg.relayCa, where.relayCa!);
  if (cfg.tlsCert !== undefined && cfg.tlsKey !== undefined && checkFiles) {
    // Found now rather than at bind time, with the files named (check-config too).
    try {
      checkTlsPair({ cert: readFileSync(cfg.tlsCert), key: readFileSync(cfg.tlsKey) });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const reason = `${e.code ?? ''} ${e.message.replace(/^error:[\dA-F]+:/, '')}`.trim();
      throw fail(
        `${where.tlsCert} ${show(cfg.tlsCert)} and ${where.tlsKey} ${show(cfg.tlsKey)} are not a usable certificate and key (${reason}): give PEM files of a certificate and its own private key`,
      );
    }
  }
  const seen: Array<[ListenAddress, string]> = [];
  const bound: Array<[ListenAddress, string]> = lists.flatMap((k) =>
    cfg[k].map((a): [ListenAddress, string] => [a, where[k]]),
  );
  if (cfg.metricsListen) bound.push([cfg.metricsListen, where.metricsListen]);
  for (const [addr, label] of bound) {
    if (addr.port === 0) continue;
    const id = formatHostPort(addr);
    // The same port on the same host, or on every interface, cannot be bound twice.
    const clash = seen.find(
      ([a]) =>
        a.port === addr.port &&
        (a.host === addr.host || WILDCARD_HOSTS.has(a.host) || WILDCARD_HOSTS.has(addr.host)),
    );
    if (clash !== undefined) {
      const [a, other] = clash;
      const hint =
        other === where.listen
          ? ` (${where.listen} defaults to 127.0.0.1:${DEFAULTS.port}; '' turns it off)`
          : '';
      throw fail(
        `${label} ${id} clashes with ${formatHostPort(a)} of ${other}${hint}: give each listener its own port`,
      );
    }
    seen.push([addr, label]);
  }
  if (cfg.publicHost === undefined) {
    if (WILDCARD_HOSTS.has(first.host)) {
      throw fail(
        `the first listener binds every interface (${formatHostPort(first)}): give --public-host with the name clients reach the relay by`,
      );
    }
    cfg.publicHost = first.host;
  }
  cfg.realm ??= cfg.publicHost;
  // Resolved here, not in the relay, so that check-config and 'relay started' show the value in force.
  cfg.maxConnections ??= defaultMaxConnections();
}

/**
 * Declares every relay flag on `cmd` (plus `--config <file>`), with help naming the default and the
 * environment variable. No commander defaults are set: an option not given reads `undefined`.
 */
export function addRelayOptions(cmd: Command): Command {
  cmd.addOption(new Option('--config <file>', `JSON or YAML config file (env ${ENV_PREFIX}CONFIG)`));
  for (const field of FIELDS) {
    const flag = kebab(field.key);
    const tail = `(default: ${defaultText(field)}; env ${envName(field.key)})`;
    if (field.kind === 'boolean') {
      const positive = new Option(`--${flag}`, `turn on ${field.help} ${tail}`).hideHelp(field.def === true);
      const negative = new Option(`--no-${flag}`, `turn off ${field.help} ${tail}`).hideHelp(
        field.def !== true,
      );
      // the positive form first, so commander gives the pair no default
      cmd.addOption(positive).addOption(negative);
      continue;
    }
    const choices = field.choices ? `: ${field.choices.join(', ')}` : '';
    const option = new Option(`--${flag} <${field.arg}>`, `${field.help}${choices} ${tail}`);
    if (
      field.kind === 'addresses' ||
      field.kind === 'origins' ||
      field.kind === 'networks' ||
      field.kind === 'hosts'
    ) {
      option.argParser((value: string, previous: string[] | undefined) => [...(previous ?? []), value]);
    }
    cmd.addOption(option);
  }
  return cmd;
}

function defaultText(field: Field): string {
  if (field.defText !== undefined) return field.defText;
  const def = field.def;
  if (def === undefined) return 'none';
  if (typeof def === 'boolean') return def ? 'on' : 'off';
  if (Array.isArray(def))
    return def.length === 0 ? 'none' : def.map((a: ListenAddress) => formatHostPort(a)).join(',');
  if (field.kind === 'size' && typeof def === 'number') {
    const units: Array<[number, string]> = [
      [1024 ** 3, 'GiB'],
      [1024 ** 2, 'MiB'],
      [1024, 'KiB'],
    ];
    const unit = units.find(([n]) => def % n === 0);
    return unit ? `${def / unit[0]}${unit[1]}` : String(def);
  }
  if (field.kind === 'duration' || field.kind === 'seconds') return `${String(def)}s`;
  return String(def);
}

/**
 * Resolves the effective configuration from commander's `opts()` and the environment, reading the file
 * named by `flags.config` or `MSRP_RELAY_CONFIG`. Every bad value throws a fatal CONFIG {@link MsrpError}
 * whose one-line message names the flag, variable or file key and how to fix it.
 */
/**
 * `checkFiles: false` leaves the users, TLS and CA files unread (`passwd` needs only the realm, and may
 * run before the users file exists or without the right to read the TLS key).
 */
export function resolveConfig(
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  { checkFiles = true }: { checkFiles?: boolean } = {},
): RelayConfig {
  let file: ConfigFile | undefined;
  const envFile = env[`${ENV_PREFIX}CONFIG`]?.trim() ?? '';
  if (flags.config !== undefined && flags.config !== null) {
    file = readConfigFile(toText(flags.config, '--config'), '--config');
  } else if (envFile !== '') {
    file = readConfigFile(envFile, `${ENV_PREFIX}CONFIG`);
  }
  const out: Record<string, unknown> = {};
  const where: Record<string, string> = {};
  const defaulted = new Set<string>();
  for (const field of FIELDS) {
    const flag = `--${kebab(field.key)}`;
    const envValue = env[envName(field.key)];
    const fileValue = file?.data[field.key];
    if (flags[field.key] !== undefined && flags[field.key] !== null) {
      where[field.key] = flag;
      out[field.key] = convert(field, flags[field.key], flag);
    } else if (envValue !== undefined && envValue.trim() !== '') {
      where[field.key] = envName(field.key);
      out[field.key] = convert(field, envValue, where[field.key]);
    } else if (file && fileValue !== undefined && fileValue !== null) {
      where[field.key] = `${field.key} in ${file.path}`;
      out[field.key] = convert(field, fileValue, where[field.key], dirname(resolvePath(file.path)));
    } else {
      where[field.key] = flag;
      out[field.key] = structuredClone(field.def);
      defaulted.add(field.key);
    }
  }
  const cfg = out as unknown as RelayConfig;
  finish(cfg, where, defaulted, checkFiles);
  const ordered: Record<string, unknown> = {};
  for (const field of FIELDS) if (out[field.key] !== undefined) ordered[field.key] = out[field.key];
  return ordered as unknown as RelayConfig;
}

const SECRET_KEY = /secret|passw(or)?d|passphrase|token|credential|api-?key/i;

function describeValue(value: unknown, key: string): unknown {
  // A count (maxRelayedTokens) is no secret: only what could hold one is masked.
  if (SECRET_KEY.test(key) && typeof value !== 'number' && typeof value !== 'boolean') return '***';
  if (Array.isArray(value)) return value.map((v) => describeValue(v, ''));
  if (isRecord(value)) {
    if (typeof value.host === 'string' && typeof value.port === 'number' && Object.keys(value).length === 2) {
      return formatHostPort(value as unknown as ListenAddress);
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) if (v !== undefined) out[k] = describeValue(v, k);
    return out;
  }
  return value;
}

/**
 * The effective configuration for printing: addresses as `host:port`, absent keys left out, and the
 * value of any key whose name looks secret (`secret`, `password`, `token`, ...) shown as `***`. Apart
 * from masked values, the result is itself a valid config file.
 */
export function describeConfig(cfg: RelayConfig): Record<string, unknown> {
  return describeValue(cfg, '') as Record<string, unknown>;
}
