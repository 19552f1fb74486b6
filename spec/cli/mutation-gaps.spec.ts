/**
 * Behaviour of the CLI and its configuration that mutation testing found unpinned: duration bounds,
 * whole-second AUTH lifetimes, YAML keys left empty, equal AUTH bounds, the type of each metric, what
 * SIGHUP reloads (the log level, --tls-ca) and what it refuses (an expired certificate, and with it the
 * users file of the same reload), the second signal's exit code, seconds → milliseconds for lockout and
 * probation, and `--no-web`. Real processes and sockets on 127.0.0.1 port 0.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { copyFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { Command } from 'commander';
import { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { parseStatus } from '../../lib/msrp/headers.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { createRelay } from '../../lib/relay/relay.js';
import { FileUserStore } from '../../lib/relay/users.js';
import { addRelayOptions, resolveConfig, type RelayConfig } from '../../lib/cli/config.js';
import { startMetricsServer } from '../../lib/cli/metrics.js';
import { isMsrpError } from '../../lib/errors.js';
import { Harness } from '../helpers/relay.js';
import { fingerprintOf, presentedFingerprint, testCertificate } from '../helpers/tls.js';
import { bannerPort, run, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

function resolve(args: string[] = [], env: NodeJS.ProcessEnv = {}): RelayConfig {
  const cmd = addRelayOptions(new Command('x').exitOverride());
  cmd.parse(['node', 'x', ...args]);
  return resolveConfig(cmd.opts(), env);
}

/** The one-line CONFIG error message `resolve(args, env)` throws. */
function configError(args: string[], env: NodeJS.ProcessEnv = {}): string {
  try {
    resolve(args, env);
  } catch (err) {
    expect(isMsrpError(err) && err.code).to.equal('MSRP_ERR_CONFIG');
    expect((err as Error).message).not.to.include('\n');
    return (err as Error).message;
  }
  return expect.fail(`expected ${args.join(' ')} to be refused`);
}

/** Waits (at most 5 s) until stdout holds `text` `count` times, and checks that it does. */
async function logged(r: Run, text: string, count = 1): Promise<void> {
  const seen = (): number => r.stdout().split(text).length - 1;
  const end = Date.now() + 5000;
  while (seen() < count && Date.now() < end) await new Promise((s) => setTimeout(s, 20));
  expect(seen(), `"${text}" in ${r.stdout()}`).to.equal(count);
}

const sleep = (ms: number): Promise<void> => new Promise((res) => setTimeout(res, ms));

/** A self-signed certificate for localhost, with its key, valid only in January 2020 (expired). */
function expiredCertificate(): { certPath: string; keyPath: string } {
  const dir = tempDir('msrp-expired-');
  const keyPath = join(dir, 'key.pem');
  const csr = join(dir, 'req.csr');
  const certPath = join(dir, 'cert.pem');
  const opts = { cwd: dir, stdio: 'ignore' as const };
  execFileSync(
    'openssl',
    ['req', '-new', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost'].concat([
      '-keyout',
      keyPath,
      '-out',
      csr,
    ]),
    opts,
  );
  writeFileSync(join(dir, 'index.txt'), '');
  writeFileSync(join(dir, 'serial'), '01\n');
  writeFileSync(
    join(dir, 'ca.cnf'),
    '[ca]\ndefault_ca = d\n[d]\ndatabase = index.txt\nserial = serial\nnew_certs_dir = .\n' +
      'default_md = sha256\npolicy = p\n[p]\ncommonName = supplied\n',
  );
  execFileSync(
    'openssl',
    ['ca', '-batch', '-notext', '-config', 'ca.cnf', '-selfsign', '-keyfile', keyPath, '-in', csr].concat([
      '-startdate',
      '20200101000000Z',
      '-enddate',
      '20200102000000Z',
      '-out',
      certPath,
    ]),
    opts,
  );
  return { certPath, keyPath };
}

describe('CLI and configuration: behaviour mutation testing found unpinned', function () {
  this.timeout(30_000);

  describe('configuration values', () => {
    it('takes a duration up to 2147483 s (a Node timer’s limit), and refuses one second more', () => {
      // Math.floor((2^31 - 1) / 1000): 2147484 s would overflow setTimeout, which then fires at once.
      expect(resolve(['--idle-timeout', '2147483']).idleTimeout).to.equal(2_147_483);
      expect(resolve([], { MSRP_RELAY_TRANSACTION_TIMEOUT: '2147483s' }).transactionTimeout).to.equal(
        2_147_483,
      );
      expect(configError(['--idle-timeout', '2147484'])).to.match(/^invalid --idle-timeout "2147484"/);
      expect(configError(['--write-stall-timeout', '2147484s'])).to.include('--write-stall-timeout');
    });

    it('refuses an AUTH lifetime that is not whole seconds even within the bounds', () => {
      expect(configError(['--auth-expires', '90500ms'])).to.equal(
        'invalid --auth-expires "90500ms": expected a whole number of seconds',
      );
      expect(configError(['--auth-max-expires', '1800.5'])).to.include('--auth-max-expires');
    });

    it('accepts AUTH bounds that are equal (every AUTH then gets that one lifetime)', () => {
      const cfg = resolve(['--auth-min-expires', '10m', '--auth-max-expires', '600']);
      expect([cfg.authMinExpires, cfg.authMaxExpires, cfg.authExpires]).to.deep.equal([600, 600, 600]);
    });

    it('treats a YAML key left empty (null) as absent: the default, or the environment, applies', () => {
      const file = join(tempDir('msrp-gaps-'), 'relay.yaml');
      writeFileSync(file, 'maxQueuedBytes:\nusers:\nlisten: ["127.0.0.1:4000"]\n');
      const cfg = resolve(['--config', file]);
      expect(cfg.maxQueuedBytes).to.equal(1024 * 1024);
      expect(cfg.users).to.equal(undefined);
      expect(resolve(['--config', file], { MSRP_RELAY_MAX_QUEUED_BYTES: '2k' }).maxQueuedBytes).to.equal(
        2048,
      );
    });
  });

  describe('metrics', () => {
    const h = new Harness();
    afterEach(() => h.cleanup());

    it('declares every metric with the type docs/operations.md gives it', async () => {
      const documented: Record<string, 'gauge' | 'counter'> = {};
      for (const name of [
        'connections',
        'auth_locked_out',
        'tokens',
        'return_paths',
        'reports_tracked_messages',
        'reports_tracked_bytes',
        'transactions_pending',
        'queued_bytes',
        'queued_bytes_max',
        'queue_pressure',
        'paused_readers',
        'handshakes_pending',
        'draining',
        'event_loop_lag_seconds',
        'tls_certificate_expiry_timestamp_seconds',
      ])
        documented[`msrp_relay_${name}`] = 'gauge';
      for (const name of [
        'connections_opened',
        'connections_closed',
        'connections_refused',
        'handshake_timeouts',
        'bytes_received',
        'bytes_sent',
        'auth',
        'auth_lockouts',
        'requests',
        'responses',
        'forwarded',
        'rechunked',
        'transaction_timeouts',
        'failure_reports',
        'requests_refused',
        'failure_reports_undeliverable',
        'paced_young_gcs',
        'reader_pauses',
        'report_requests',
        'reports_injected',
        'report_duplicates_dropped',
        'reports_skipped',
        'reports_untracked',
        'parse_errors',
      ])
        documented[`msrp_relay_${name}_total`] = 'counter';
      const relay = await h.relay();
      const metrics = await startMetricsServer(relay, { host: '127.0.0.1', port: 0, defaultMetrics: false });
      try {
        const text = await (await fetch(metrics.url)).text();
        const declared: Record<string, string> = {};
        for (const m of text.matchAll(/^# TYPE (msrp_relay_\w+) (\w+)$/gm)) declared[m[1]!] = m[2]!;
        expect(declared).to.deep.equal(documented);
      } finally {
        await metrics.close();
      }
    });
  });

  describe('msrp-relay start', () => {
    const running: Run[] = [];
    const endpoints: MsrpEndpoint[] = [];
    afterEach(async () => {
      await Promise.all(endpoints.splice(0).map((e) => e.close()));
      for (const r of running) r.child.kill('SIGKILL');
      running.length = 0;
    });
    const start = (args: string[]): Run => {
      const r = run(['start', ...args]);
      running.push(r);
      return r;
    };
    const connect = async (port: number): Promise<MsrpEndpoint> => {
      const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
      endpoints.push(ep);
      return ep;
    };
    const authStatus = async (
      ep: MsrpEndpoint,
      port: number,
      user: string,
      password: string,
    ): Promise<number> => {
      const res = await ep.auth({
        relayUri: `msrp://${user}@127.0.0.1:${port};tcp`,
        username: user,
        password,
      });
      return res.kind === 'response' ? res.statusCode : 0;
    };

    it('writes only lines at --log-level and above, and takes a new logLevel from the file on SIGHUP', async () => {
      const dir = tempDir('msrp-gaps-');
      const config = join(dir, 'relay.yaml');
      writeFileSync(config, 'listen: ["127.0.0.1:0"]\nauth: false\nlogLevel: warn\n');
      const r = start(['--config', config]);
      await bannerPort(r);
      await logged(r, 'authentication is off'); // a warning: written
      writeFileSync(config, 'listen: ["127.0.0.1:0"]\nauth: false\nlogLevel: info\n');
      r.child.kill('SIGHUP');
      // Written at info, so only once the new level is in force.
      await logged(r, 'configuration reloaded (SIGHUP)');
      expect(r.stdout()).to.match(/"logLevel":"info"/);
      // Lines come in order: the info line of the start, before the reload, was left out at warn.
      expect(r.stdout()).not.to.include('relay started');
    });

    it('keeps the whole old configuration on SIGHUP when the new certificate has expired', async () => {
      // Checked after the files were read and found a pair: the users file read in the same reload must
      // not be applied either ("every file is read and checked before anything is applied").
      const first = testCertificate();
      const expired = expiredCertificate();
      const dir = tempDir('msrp-gaps-');
      const cert = join(dir, 'cert.pem');
      const key = join(dir, 'key.pem');
      const users = join(dir, 'users');
      copyFileSync(first.certPath, cert);
      copyFileSync(first.keyPath, key);
      writeFileSync(users, 'alice:alice-pw\n');
      const r = start([
        '--listen',
        '127.0.0.1:0',
        '--tls-listen',
        '127.0.0.1:0',
        '--tls-cert',
        cert,
        '--tls-key',
        key,
        '--users',
        users,
      ]);
      const port = await bannerPort(r);
      const tlsPort = Number(/tls +127\.0\.0\.1:(\d+)/.exec(r.stderr())![1]);
      writeFileSync(users, 'alice:alice-pw\nbob:bob-pw\n');
      copyFileSync(expired.certPath, cert);
      copyFileSync(expired.keyPath, key);
      r.child.kill('SIGHUP');
      await logged(r, 'reload failed; keeping the old configuration');
      expect(r.stdout()).to.match(/the new TLS certificate expired on Jan +2 00:00:00 2020 GMT/);
      expect(r.stdout()).not.to.include('configuration reloaded');
      expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(first.cert));
      const ep = await connect(port);
      expect(await authStatus(ep, port, 'bob', 'bob-pw')).to.equal(401);
      expect(await authStatus(ep, port, 'alice', 'alice-pw')).to.equal(200);
    });

    it('trusts a --tls-ca added to the config file from the next SIGHUP on', async () => {
      const { cert, key, certPath } = testCertificate();
      const far = createRelay({
        listen: [],
        tlsListen: [{ host: '127.0.0.1', port: 0 }],
        tls: { cert, key },
        users: FileUserStore.fromMap({ bob: 'bob-pw' }),
      });
      await far.listen();
      const farPort = far.addresses()[0]!.port;
      const bob = await MsrpEndpoint.connect({
        host: '127.0.0.1',
        port: farPort,
        tls: { ca: cert, servername: 'localhost' },
      });
      endpoints.push(bob);
      try {
        const bobAuth = await bob.auth({
          relayUri: `msrps://bob@127.0.0.1:${farPort};tcp`,
          username: 'bob',
          password: 'bob-pw',
        });
        expect(bobAuth.kind === 'response' && bobAuth.statusCode).to.equal(200);
        const config = join(tempDir('msrp-gaps-'), 'relay.json');
        writeFileSync(config, JSON.stringify({ listen: ['127.0.0.1:0'], auth: false }));
        const r = start(['--config', config]);
        const port = await bannerPort(r);
        const alice = await connect(port);
        await alice.auth({ relayUri: `msrp://alice@127.0.0.1:${port};tcp` });
        /** What came of one SEND from alice to bob: delivered, or the status of its failure REPORT. */
        const attempt = async (): Promise<'delivered' | number> => {
          const got = new Promise<'delivered'>((res) => bob.once('message', () => res('delivered')));
          const failed = new Promise<number>((res) =>
            alice.once('report', (f: Frame) => res(parseStatus(getHeader(f.headers, 'status')!).code)),
          );
          const sent = await alice.send({
            toPath: alice.toPathFor(bob.path),
            body: Buffer.from('over msrps'),
          });
          const refused = sent.statuses.find((s) => s !== 200);
          return refused ?? Promise.race([got, failed]);
        };
        expect(await attempt())
          .to.be.a('number')
          .and.not.equal(200);
        writeFileSync(config, JSON.stringify({ listen: ['127.0.0.1:0'], auth: false, tlsCa: certPath }));
        r.child.kill('SIGHUP');
        await logged(r, 'configuration reloaded (SIGHUP)');
        await sleep(1100); // the relay keeps off a next hop whose dial failed for 1 s (next-hops.ts)
        expect(await attempt()).to.equal('delivered');
      } finally {
        await far.close(100);
      }
    });

    it('asks TLS peers for a certificate with --relay-ca, re-reads it on SIGHUP, warns when added or removed', async () => {
      const { cert, key, certPath, keyPath } = testCertificate();
      const config = join(tempDir('msrp-gaps-'), 'relay.json');
      const base = {
        listen: [],
        tlsListen: ['127.0.0.1:0'],
        tlsCert: certPath,
        tlsKey: keyPath,
        auth: false,
      };
      writeFileSync(config, JSON.stringify({ ...base, relayCa: certPath }));
      const r = start(['--config', config]);
      const port = await bannerPort(r, /tls +127\.0\.0\.1:(\d+)/);
      // The CA reached the TLS listener: a peer showing a certificate it signed is known as a relay.
      const relayPeer = await MsrpEndpoint.connect({
        host: '127.0.0.1',
        port,
        tls: { ca: cert, servername: 'localhost', cert, key },
      });
      endpoints.push(relayPeer);
      await logged(r, '"relayCertificate":"DNS:localhost, IP Address:127.0.0.1"');
      r.child.kill('SIGHUP');
      await logged(r, 'configuration reloaded (SIGHUP)');
      const quiet = !r.stdout().includes('--relay-ca added or removed');
      writeFileSync(config, JSON.stringify(base));
      r.child.kill('SIGHUP');
      await logged(r, '--relay-ca added or removed');
      expect(quiet).to.equal(true);
    });

    it('exits 1 at once on a second SIGTERM while draining', async () => {
      const r = start(['--listen', '127.0.0.1:0', '--no-auth']);
      const port = await bannerPort(r);
      const alice = await connect(port);
      const relayUri = `msrp://127.0.0.1:${port};tcp`;
      await alice.auth({ relayUri });
      // Bob never answers: alice's SEND stays in flight, and the drain waits for it (up to 10 s).
      const bob = await MsrpEndpoint.connect({ host: '127.0.0.1', port, respond: () => null });
      endpoints.push(bob);
      await bob.auth({ relayUri });
      alice.send({ toPath: alice.toPathFor(bob.path), body: 'never answered' }).catch(() => {});
      await new Promise<void>((res) => bob.once('request', () => res()));
      r.child.kill('SIGTERM');
      await logged(r, '"msg":"draining"');
      r.child.kill('SIGTERM');
      expect(await r.exit).to.equal(1);
      expect(r.stdout()).to.include('second signal: exiting at once');
      expect(r.stdout()).not.to.include('"msg":"stopped"');
    });

    it('reads --auth-lockout-time in seconds: a lockout of 60 s still holds 300 ms later', async () => {
      const users = join(tempDir('msrp-gaps-'), 'users');
      writeFileSync(users, 'alice:alice-pw\n');
      const r = start(
        ['--listen', '127.0.0.1:0', '--users', users].concat([
          '--auth-lockout-failures',
          '1',
          '--auth-lockout-time',
          '60',
        ]),
      );
      const port = await bannerPort(r);
      const ep = await connect(port);
      expect(await authStatus(ep, port, 'alice', 'wrong')).to.equal(401);
      await sleep(300);
      expect(await authStatus(ep, port, 'alice', 'alice-pw')).to.equal(403);
    });

    it('reads --probation-timeout in seconds: a silent connection is still open 500 ms later', async () => {
      const r = start(['--listen', '127.0.0.1:0', '--no-auth', '--probation-timeout', '30']);
      const port = await bannerPort(r);
      const socket = createConnection({ host: '127.0.0.1', port });
      let closed = false;
      socket.on('close', () => (closed = true));
      socket.on('error', () => {});
      await new Promise<void>((res) => socket.once('connect', () => res()));
      await sleep(500);
      expect(closed).to.equal(false);
      socket.destroy();
    });

    it('serves no page on the WebSocket listener with --no-web, and the page without it', async () => {
      const page = async (extra: string[]): Promise<number> => {
        const r = start(['--listen', '127.0.0.1:0', '--ws-listen', '127.0.0.1:0', '--no-auth', ...extra]);
        const port = await bannerPort(r, /ws +ws:\/\/127\.0\.0\.1:(\d+)\//);
        const res = await fetch(`http://127.0.0.1:${port}/`);
        await res.arrayBuffer();
        return res.status;
      };
      expect(await page([])).to.equal(200);
      expect(await page(['--no-web'])).not.to.equal(200);
    });
  });
});
