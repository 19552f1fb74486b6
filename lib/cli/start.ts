/**
 * `msrp-relay start`: resolves the configuration, starts the relay (and `--metrics-listen`), prints how to
 * reach it, and handles signals (SIGINT/SIGTERM: drain and exit 0, the metrics server answering /healthz
 * 503 meanwhile; SIGHUP: reload the users file, the TLS certificate, key and CA file, and the log level).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { rootCertificates } from 'node:tls';
import type { Command } from 'commander';
import { createError, ErrorCodes, isMsrpError } from '../errors.js';
import { randomId } from '../msrp/serializer.js';
import { createRelay, type Relay, type RelayOptions } from '../relay/relay.js';
import type { ListenError, TlsCredentials } from '../relay/listeners.js';
import { FileUserStore, type UserStore } from '../relay/users.js';
import { uriHost } from '../msrp/uri.js';
import {
  addRelayOptions,
  describeConfig,
  formatHostPort,
  readCaFile,
  resolveConfig,
  WILDCARD_HOSTS,
  type RelayConfig,
} from './config.js';
import { createWebHandler } from '../web/page.js';
import { createLogger } from './logger.js';
import { startMetricsServer, type MetricsServer } from './metrics.js';

/** Users and how the operator learns about them. */
interface UsersSetup {
  store: UserStore | undefined;
  /** A generated account for a first run without `--users`, printed at start. */
  demo?: { username: string; password: string };
}

function loadUsers(cfg: RelayConfig): UsersSetup {
  if (cfg.users !== undefined) return { store: FileUserStore.fromFile(cfg.users) };
  if (!cfg.auth) return { store: undefined };
  // First run without a users file: one random account for this process only, printed below.
  const demo = { username: 'demo', password: randomId(16) };
  return { store: FileUserStore.fromMap({ [demo.username]: demo.password }), demo };
}

function readTls(cfg: RelayConfig): TlsCredentials | undefined {
  if (cfg.tlsCert === undefined || cfg.tlsKey === undefined) return undefined;
  return { cert: readFileSync(cfg.tlsCert), key: readFileSync(cfg.tlsKey) };
}

/** What `msrps` next hops are checked against: Node's bundled roots plus `--tls-ca`, or undefined (the roots). */
function readCa(cfg: RelayConfig): string[] | undefined {
  return cfg.tlsCa === undefined ? undefined : [...rootCertificates, ...readCaFile(cfg.tlsCa)];
}

/** `--relay-ca`: the CAs whose certificates prove another relay (none of Node's roots), or undefined. */
function readRelayCa(cfg: RelayConfig): string[] | undefined {
  return cfg.relayCa === undefined ? undefined : readCaFile(cfg.relayCa, '--relay-ca');
}

/** The presented certificate as log fields, or undefined without TLS listeners. */
function certificateFields(relay: Relay): Record<string, string> | undefined {
  const c = relay.tlsCertificate();
  if (c === null) return undefined;
  return {
    subject: c.subject.replace(/\n/g, ', '),
    notAfter: new Date(c.notAfter).toISOString(),
    fingerprint256: c.fingerprint256,
  };
}

/**
 * Throws when the (first) certificate of `cert` is not valid now: a reload does not swap a working
 * certificate for one that clients refuse (at start the relay runs with it, and logs an error).
 */
function checkValidNow(cert: string | Buffer): void {
  const x = new X509Certificate(cert);
  const now = Date.now();
  if (Date.parse(x.validTo) <= now)
    throw createError(ErrorCodes.CONFIG, `the new TLS certificate expired on ${x.validTo}`, 0);
  if (Date.parse(x.validFrom) > now)
    throw createError(ErrorCodes.CONFIG, `the new TLS certificate is not valid before ${x.validFrom}`, 0);
}

/** Certificates are renewed about 30 days ahead (ACME clients): fewer days left means renewal is failing. */
const EXPIRY_WARNING_DAYS = 14;

/** Logs a warning when the presented certificate expires within {@link EXPIRY_WARNING_DAYS}, an error once expired. */
function checkCertificateExpiry(relay: Relay, log: ReturnType<typeof createLogger>): void {
  const c = relay.tlsCertificate();
  if (c === null) return;
  const days = (c.notAfter - Date.now()) / 86_400_000;
  const fields = { notAfter: new Date(c.notAfter).toISOString(), days: Math.trunc(days) };
  if (days <= 0) log.error(fields, 'TLS certificate has expired: renew it, then send SIGHUP');
  else if (days < EXPIRY_WARNING_DAYS)
    log.warn(fields, 'TLS certificate expires soon: renew it, then send SIGHUP');
}

/** Maps the CLI configuration onto relay options (seconds → milliseconds). */
export function relayOptionsFrom(cfg: RelayConfig, users: UserStore | undefined): RelayOptions {
  return {
    listen: cfg.listen,
    tlsListen: cfg.tlsListen,
    wsListen: cfg.wsListen,
    wssListen: cfg.wssListen,
    wsAllowedOrigins: cfg.wsAllowedOrigins,
    trustedProxies: cfg.trustedProxies,
    proxyProtocolFrom: cfg.proxyProtocolFrom,
    nextHopAllow: cfg.nextHopAllow,
    nextHopDeny: cfg.nextHopDeny,
    nextHopPerSession: cfg.nextHopPerSession,
    wsMaxMessageBytes: cfg.wsMaxMessage,
    tls: { ...readTls(cfg), ca: readCa(cfg), relayCa: readRelayCa(cfg) },
    publicHost: cfg.publicHost,
    realm: cfg.realm,
    users,
    auth: cfg.auth,
    authExpires: cfg.authExpires,
    authMinExpires: cfg.authMinExpires,
    authMaxExpires: cfg.authMaxExpires,
    maxMessageBytes: cfg.maxMessageSize,
    maxQueuedBytes: cfg.maxQueuedBytes,
    maxTotalQueuedBytes: cfg.maxTotalQueuedBytes,
    maxConnections: cfg.maxConnections,
    maxConnectionsPerIp: cfg.maxConnectionsPerIp,
    maxNextHops: cfg.maxNextHops,
    maxRelayedTokens: cfg.maxRelayedTokens,
    authLockoutFailures: cfg.authLockoutFailures,
    authLockoutMs: cfg.authLockoutTime * 1000,
    transactionTimeoutMs: cfg.transactionTimeout * 1000,
    probationMs: cfg.probationTimeout * 1000,
    idleTimeoutMs: cfg.idleTimeout * 1000,
    writeStallMs: cfg.writeStallTimeout * 1000,
    tcpKeepAliveMs: cfg.tcpKeepalive * 1000,
    deadPeerMs: cfg.deadPeerTimeout * 1000,
    reports: cfg.reports,
    reportsDedupe: cfg.reportsDedupe,
    reportsDedupeEntries: cfg.reportsDedupeEntries,
    reportsProcessing: cfg.reportsProcessing,
    // The browser chat page at `/` of the WebSocket listeners (`--no-web` turns it off).
    onHttpRequest: cfg.web ? createWebHandler() : undefined,
  };
}

/** Adds the `start` subcommand. */
export function registerStartCommand(program: Command): void {
  const cmd = program
    .command('start')
    .description('run the relay (defaults: TCP on 127.0.0.1:2855, Digest AUTH)');
  addRelayOptions(cmd);
  cmd.action(async (flags: Record<string, unknown>) => {
    await start(flags, process.env);
  });
}

/** Adds the `check-config` subcommand: validate and print the effective configuration. */
export function registerCheckConfigCommand(program: Command): void {
  const cmd = program
    .command('check-config')
    .description('validate flags, environment and config file; print the effective configuration');
  addRelayOptions(cmd);
  cmd.action((flags: Record<string, unknown>) => {
    const cfg = resolveConfig(flags, process.env);
    if (cfg.users !== undefined) FileUserStore.fromFile(cfg.users);
    process.stdout.write(JSON.stringify(describeConfig(cfg), null, 2) + '\n');
  });
}

async function start(flags: Record<string, unknown>, env: NodeJS.ProcessEnv): Promise<void> {
  const cfg = resolveConfig(flags, env);
  const log = createLogger(cfg.logLevel, cfg.logFormat);
  const users = loadUsers(cfg);
  const relay = createRelay({ ...relayOptionsFrom(cfg, users.store), logger: log });
  // A stop asked for before the listeners are up: nothing is in flight yet, so exit 0 at once.
  const early = (): never => process.exit(0);
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  // A reload asked for before the handlers are in place must not kill the process (Node's default).
  const earlyHup = (): void => log.warn({}, 'SIGHUP before the relay was up: ignored');
  process.on('SIGHUP', earlyHup);
  try {
    await relay.listen();
  } catch (err) {
    const e = err as Partial<ListenError> & Error;
    if (e.listener === undefined)
      throw createError(ErrorCodes.CONFIG, `cannot listen: ${e.message}`, 0, true);
    const { kind, host, port } = e.listener;
    const flag = { tcp: '--listen', tls: '--tls-listen', ws: '--ws-listen', wss: '--wss-listen' }[kind];
    throw createError(
      ErrorCodes.CONFIG,
      `${flag} ${uriHost(host)}:${port}: cannot listen (${e.reason}): stop what holds it or pick another address`,
      0,
      true,
    );
  }
  let metrics: MetricsServer | null = null;
  if (cfg.metricsListen !== undefined) {
    const { host, port } = cfg.metricsListen;
    try {
      metrics = await startMetricsServer(relay, { host, port });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      const msg = `cannot listen on --metrics-listen ${host}:${port}: ${e.code ?? ''} ${e.message}`;
      throw createError(ErrorCodes.CONFIG, msg.replace(/ +/g, ' '), 0, true);
    }
  }
  if (!cfg.auth) log.warn({}, 'authentication is off (--no-auth): any client can obtain a Use-Path token');
  if (cfg.listen.length === 0 && cfg.tlsListen.length === 0)
    // RFC 7977 §6: a relay's Use-Path names a TCP/TLS address; other relays cannot dial a WebSocket one.
    log.warn(
      {},
      'no --listen or --tls-listen: Use-Path URIs name a WebSocket port, which other relays cannot reach (clients of this relay can still talk to each other)',
    );
  // RFC 7977 §3.2/§8 (digest §3.2): MSRP over WebSocket is meant to run over TLS. Plain ws stays (the
  // product serves it, docs/operations.md): on loopback for tests, or behind a proxy that ends TLS.
  const plainWs = exposedPlainWebSocketHosts(cfg);
  if (plainWs.length > 0)
    log.warn(
      { wsListen: plainWs },
      'plain WebSocket (--ws-listen) on a non-loopback address: tokens and messages cross the network unencrypted; use --wss-listen, or a proxy that ends TLS (--trusted-proxies)',
    );
  // A Use-Path pairs the public host with the port of the listener the client came in on: with the public
  // host an IP address, a listener bound to another address hands out URIs where nothing listens.
  const publicIp = isIP(cfg.publicHost ?? '') !== 0;
  const elsewhere = [...cfg.listen, ...cfg.tlsListen]
    .map((l) => l.host)
    .filter((host) => host !== cfg.publicHost && !WILDCARD_HOSTS.has(host));
  if (publicIp && elsewhere.length > 0)
    log.warn(
      { publicHost: cfg.publicHost, listeners: [...new Set(elsewhere)] },
      'a TCP/TLS listener is bound to another address than the public host: Use-Path URIs of its clients name the public host with its port; give --public-host a name that reaches every listener',
    );
  // The handlers for the running relay go in before the early ones come out: a signal with no listener
  // at all gets Node's default action (a SIGINT right after the banner killed the process, exit null).
  installSignals(relay, metrics, flags, env, log);
  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  process.off('SIGHUP', earlyHup);
  printBanner(relay, cfg, users, metrics);
  log.info(
    {
      addresses: relay.addresses(),
      metrics: metrics?.url,
      config: describeConfig(cfg),
      connectionLimits: relay.connectionLimits,
      tls: certificateFields(relay),
    },
    'relay started',
  );
  checkCertificateExpiry(relay, log);
}

function printBanner(relay: Relay, cfg: RelayConfig, users: UsersSetup, metrics: MetricsServer | null): void {
  const host = uriHost(cfg.publicHost ?? relay.addresses()[0]?.host ?? '127.0.0.1');
  const user = users.demo?.username ?? 'USER';
  const lines = ['msrp-relay is running. Clients AUTH to:'];
  for (const a of relay.addresses()) {
    const scheme = a.kind === 'tls' || a.kind === 'wss' ? 'msrps' : 'msrp';
    const where =
      a.kind === 'ws' || a.kind === 'wss' ? `${a.kind}://${formatHostPort(a)}/` : formatHostPort(a);
    lines.push(
      `  ${a.kind.padEnd(4)} ${where}   AUTH To-Path: ${scheme}://${user}@${host}:${a.port};${a.kind.startsWith('ws') ? 'ws' : 'tcp'}`,
    );
  }
  if (metrics !== null)
    lines.push(`  metrics ${metrics.url}   health: ${metrics.url.replace(/\/metrics$/, '/healthz')}`);
  if (users.demo) {
    lines.push(
      `No --users file: this run accepts user "${users.demo.username}" with password "${users.demo.password}".`,
    );
  }
  lines.push('Stop with Ctrl-C. Flags: msrp-relay start --help');
  process.stderr.write(lines.join('\n') + '\n');
}

function installSignals(
  relay: Relay,
  metrics: MetricsServer | null,
  flags: Record<string, unknown>,
  env: NodeJS.ProcessEnv,
  log: ReturnType<typeof createLogger>,
): void {
  let stopping = false;
  const stop = (signal: string): void => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting at once');
      process.exit(1);
    }
    stopping = true;
    const drainingSince = Date.now();
    log.info({ signal, connections: relay.connectionCount }, 'draining');
    // The metrics server stays up while draining, so /healthz answers 503 until the relay is gone.
    void relay.close(10_000).then(async () => {
      await metrics?.close();
      log.info(
        { signal, connections: relay.connectionCount, drainMs: Date.now() - drainingSince },
        'stopped',
      );
      log.flush?.();
      setTimeout(() => process.exit(0), 50).unref();
    });
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGHUP', () => {
    try {
      // Everything is read and checked before anything is applied: a bad file changes nothing.
      const cfg = resolveConfig(flags, env);
      const users = cfg.users === undefined ? undefined : FileUserStore.fromFile(cfg.users);
      // With or without TLS listeners: the pair is also the client certificate of msrps dials.
      const tls = readTls(cfg);
      if (tls !== undefined) checkValidNow(tls.cert);
      const ca = readCa(cfg);
      const relayCa = readRelayCa(cfg);
      if (tls !== undefined) relay.setTlsCredentials(tls); // throws on a pair that does not match
      relay.setOutboundCa(ca);
      if (relayCa !== undefined) relay.setRelayCa(relayCa);
      if ((relayCa !== undefined) !== relay.checksRelayCertificates)
        log.warn(
          { relayCa: cfg.relayCa ?? null },
          '--relay-ca added or removed: the TLS listeners change only at the next restart',
        );
      if (users !== undefined) relay.setUsers(users);
      log.level = cfg.logLevel;
      log.info(
        {
          users: cfg.users,
          logLevel: cfg.logLevel,
          tls: certificateFields(relay),
          tlsCa: cfg.tlsCa,
          relayCa: cfg.relayCa,
        },
        'configuration reloaded (SIGHUP)',
      );
      checkCertificateExpiry(relay, log);
    } catch (err) {
      log.error(
        { err: isMsrpError(err) ? err.message : String(err) },
        'reload failed; keeping the old configuration',
      );
    }
  });
}

/**
 * The `--ws-listen` hosts other machines can reach when no TLS-ending proxy is declared
 * (`--trusted-proxies`): where `start` warns that WebSocket traffic goes unencrypted.
 */
export function exposedPlainWebSocketHosts(cfg: Pick<RelayConfig, 'wsListen' | 'trustedProxies'>): string[] {
  if (cfg.trustedProxies.length > 0) return [];
  return [...new Set(cfg.wsListen.map((l) => l.host).filter((host) => !isLoopbackHost(host)))];
}

/** True for an address only this machine reaches: 127.0.0.0/8, ::1, `localhost`. */
function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}
