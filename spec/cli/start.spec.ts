import { expect } from 'chai';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { parseStatus } from '../../lib/msrp/headers.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { createRelay } from '../../lib/relay/relay.js';
import { exposedPlainWebSocketHosts } from '../../lib/cli/start.js';
import { FileUserStore } from '../../lib/relay/users.js';
import {
  ecCertificate,
  fingerprintOf,
  otherCertificate,
  presentedFingerprint,
  testCertificate,
} from '../helpers/tls.js';
import { bannerPort, run, type Run } from '../helpers/cli.js';
import { tempDir } from '../helpers/temp.js';

describe('msrp-relay CLI', () => {
  const running: Run[] = [];
  afterEach(() => {
    for (const r of running) r.child.kill('SIGKILL');
    running.length = 0;
  });

  it('prints help and exits 0', async () => {
    const r = run(['start', '--help']);
    expect(await r.exit).to.equal(0);
    expect(r.stdout()).to.include('--listen');
    expect(r.stdout()).to.include('MSRP_RELAY_LISTEN');
  });

  it('rejects an unknown flag with one line and exit code 2', async () => {
    const r = run(['start', '--no-such-flag']);
    expect(await r.exit).to.equal(2);
    expect(r.stderr().trim().split('\n')).to.have.length(1);
  });

  it('rejects a bad value with one line naming the flag and exit code 2', async () => {
    const r = run(['start', '--listen', 'nowhere']);
    expect(await r.exit).to.equal(2);
    const lines = r.stderr().trim().split('\n');
    expect(lines).to.have.length(1);
    expect(lines[0]).to.include('--listen');
  });

  it('check-config rejects an unreadable config file with exit code 2', async () => {
    const r = run(['check-config', '--config', '/nonexistent/relay.yaml']);
    expect(await r.exit).to.equal(2);
    expect(r.stderr()).to.include('/nonexistent/relay.yaml');
  });

  it('starts a relay that answers AUTH, and drains and exits 0 on SIGTERM', async () => {
    const dir = tempDir('msrp-cli-');
    const users = join(dir, 'users');
    writeFileSync(users, 'alice:alice-pw\n');
    const r = run(['start', '--listen', '127.0.0.1:0', '--users', users, '--log-level', 'warn']);
    running.push(r);
    const port = await bannerPort(r);
    const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
    const res = await ep.auth({
      relayUri: `msrp://alice@127.0.0.1:${port};tcp`,
      username: 'alice',
      password: 'alice-pw',
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    await ep.close();
    r.child.kill('SIGTERM');
    expect(await r.exit).to.equal(0);
  });

  it('logs draining and stopped with the signal on SIGINT', async () => {
    const r = run(['start', '--listen', '127.0.0.1:0', '--no-auth']);
    running.push(r);
    await bannerPort(r);
    r.child.kill('SIGINT');
    expect(await r.exit).to.equal(0);
    const lines = r
      .stdout()
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string; signal?: string; connections?: number; drainMs?: number });
    const draining = lines.find((l) => l.msg === 'draining');
    const stopped = lines.find((l) => l.msg === 'stopped');
    expect(draining?.signal).to.equal('SIGINT');
    expect(stopped?.signal).to.equal('SIGINT');
    expect(stopped?.connections).to.equal(0);
    expect(stopped?.drainMs).to.be.a('number');
  });

  it('names the flag of a listener whose port is taken, in one line, exit 2', async () => {
    const taken = createServer();
    await new Promise<void>((r) => taken.listen(0, '127.0.0.1', () => r()));
    const port = (taken.address() as AddressInfo).port;
    try {
      const r = run(['start', '--listen', '127.0.0.1:0', '--ws-listen', `127.0.0.1:${port}`]);
      running.push(r);
      expect(await r.exit).to.equal(2);
      expect(r.stderr()).to.equal(
        `msrp-relay: --ws-listen 127.0.0.1:${port}: cannot listen (address already in use): stop what holds it or pick another address\n`,
      );
    } finally {
      taken.close();
    }
  });

  it('warns that other relays cannot reach a relay with WebSocket listeners only', async () => {
    const r = run(['start', '--listen', '', '--ws-listen', '127.0.0.1:0', '--log-format', 'pretty']);
    running.push(r);
    const end = Date.now() + 10_000;
    while (!/ws +ws:\/\/127\.0\.0\.1:\d+/.test(r.stderr()) && Date.now() < end)
      await new Promise((res) => setTimeout(res, 20));
    r.child.kill('SIGTERM');
    expect(await r.exit).to.equal(0);
    expect(r.stdout() + r.stderr()).to.match(
      /WARN .*no --listen or --tls-listen: Use-Path URIs name a WebSocket port/,
    );
    expect(r.stdout() + r.stderr()).not.to.match(/plain WebSocket/); // loopback only
  });

  it('names plain WebSocket listeners other machines reach, unless a TLS-ending proxy is declared', () => {
    // RFC 7977 §3.2 (digest §3.2): WebSocket MSRP is meant for TLS. Checked on the config alone: a test
    // binds only loopback addresses.
    const ws = (...hosts: string[]): Array<{ host: string; port: number }> =>
      hosts.map((host) => ({ host, port: 80 }));
    expect(
      exposedPlainWebSocketHosts({ wsListen: ws('0.0.0.0', '::', '192.0.2.7'), trustedProxies: [] }),
    ).to.deep.equal(['0.0.0.0', '::', '192.0.2.7']);
    expect(
      exposedPlainWebSocketHosts({
        wsListen: ws('127.0.0.1', '127.3.2.1', '::1', 'localhost'),
        trustedProxies: [],
      }),
    ).to.deep.equal([]);
    expect(
      exposedPlainWebSocketHosts({ wsListen: ws('0.0.0.0'), trustedProxies: ['10.0.0.0/8'] }),
    ).to.deep.equal([]);
  });

  it('warns when a listener is bound to another address than an IP public host', async () => {
    // Its clients' Use-Path would name the public host with that listener's port, where nothing listens.
    const r = run(['start', '--listen', '127.0.0.1:0', '--listen', '[::1]:0', '--log-format', 'pretty']);
    running.push(r);
    const end = Date.now() + 10_000;
    while (!/tcp +\[::1\]:\d+/.test(r.stderr()) && Date.now() < end)
      await new Promise((res) => setTimeout(res, 20));
    r.child.kill('SIGTERM');
    expect(await r.exit).to.equal(0);
    expect(r.stdout() + r.stderr()).to.match(
      /WARN .*a TCP\/TLS listener is bound to another address than the public host/,
    );
  });

  it('reloads the users file on SIGHUP without dropping connections', async () => {
    const dir = tempDir('msrp-cli-');
    const users = join(dir, 'users');
    writeFileSync(users, 'alice:alice-pw\n');
    const r = run(['start', '--listen', '127.0.0.1:0', '--users', users, '--log-level', 'info']);
    running.push(r);
    const port = await bannerPort(r);
    const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
    const relayUri = `msrp://bob@127.0.0.1:${port};tcp`;
    const before = await ep.auth({ relayUri, username: 'bob', password: 'bob-pw' });
    expect(before.kind === 'response' && before.statusCode).to.equal(401);
    writeFileSync(users, 'alice:alice-pw\nbob:bob-pw\n');
    r.child.kill('SIGHUP');
    const end = Date.now() + 5000;
    while (!r.stdout().includes('configuration reloaded') && Date.now() < end)
      await new Promise((s) => setTimeout(s, 20));
    const after = await ep.auth({ relayUri, username: 'bob', password: 'bob-pw' });
    expect(after.kind === 'response' && after.statusCode).to.equal(200);
    expect(ep.isClosed).to.equal(false);
    await ep.close();
  });

  it('reloads the TLS certificate and key on SIGHUP, and keeps them when the new pair is bad', async () => {
    const first = testCertificate();
    const renewed = otherCertificate();
    const dir = tempDir('msrp-cli-');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(first.certPath, cert);
    copyFileSync(first.keyPath, key);
    const r = run([
      'start',
      '--listen',
      '127.0.0.1:0',
      '--tls-listen',
      '127.0.0.1:0',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--log-level',
      'info',
    ]);
    running.push(r);
    await bannerPort(r);
    const tlsPort = Number(/tls +127\.0\.0\.1:(\d+)/.exec(r.stderr())![1]);
    const logged = async (text: string, count: number): Promise<void> => {
      const end = Date.now() + 5000;
      while (r.stdout().split(text).length - 1 < count && Date.now() < end)
        await new Promise((s) => setTimeout(s, 20));
      expect(r.stdout().split(text).length - 1).to.equal(count);
    };
    expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(first.cert));
    // The test certificates live two days: the start-up check warns (level 40) about them.
    await logged('TLS certificate expires soon', 1);
    expect(r.stdout()).to.match(/"level":40,[^\n]*"days":1,[^\n]*TLS certificate expires soon/);

    copyFileSync(renewed.certPath, cert);
    copyFileSync(renewed.keyPath, key);
    r.child.kill('SIGHUP');
    await logged('configuration reloaded', 1);
    expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(renewed.cert));
    expect(r.stdout()).to.include(fingerprintOf(renewed.cert));

    copyFileSync(first.keyPath, key); // the renewed certificate with the old key: not a pair
    r.child.kill('SIGHUP');
    await logged('reload failed', 1);
    expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(renewed.cert));
  });

  it('dials msrps next hops trusting --tls-ca, and fails them without it', async function () {
    this.timeout(20_000);
    const { cert, key, certPath } = testCertificate();
    const far = createRelay({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key },
      users: FileUserStore.fromMap({ bob: 'bob-pw' }),
    });
    await far.listen();
    const bob = await MsrpEndpoint.connect({
      host: '127.0.0.1',
      port: far.addresses()[0]!.port,
      tls: { ca: cert, servername: 'localhost' },
    });
    try {
      const bobAuth = await bob.auth({
        relayUri: `msrps://bob@127.0.0.1:${far.addresses()[0]!.port};tcp`,
        username: 'bob',
        password: 'bob-pw',
      });
      expect(bobAuth.kind === 'response' && bobAuth.statusCode).to.equal(200);
      /** Alice on a CLI relay started with `extra` sends to bob on `far`; resolves with what came of it. */
      const attempt = async (extra: string[]): Promise<'delivered' | number> => {
        const r = run(['start', '--listen', '127.0.0.1:0', '--no-auth', '--log-level', 'warn', ...extra]);
        running.push(r);
        const port = await bannerPort(r);
        const alice = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
        try {
          await alice.auth({ relayUri: `msrp://alice@127.0.0.1:${port};tcp` });
          const got = new Promise<'delivered'>((resolve) => bob.once('message', () => resolve('delivered')));
          const failed = new Promise<number>((resolve) =>
            alice.once('report', (f: Frame) => resolve(parseStatus(getHeader(f.headers, 'status')!).code)),
          );
          await alice.send({ toPath: alice.toPathFor(bob.path), body: Buffer.from('over msrps') });
          return await Promise.race([got, failed]);
        } finally {
          await alice.close();
          r.child.kill('SIGKILL');
        }
      };
      expect(await attempt(['--tls-ca', certPath])).to.equal('delivered');
      const code = await attempt([]);
      expect(code).to.be.a('number').and.not.equal(200);
    } finally {
      await bob.close();
      await far.close(100);
    }
  });

  it('re-reads on SIGHUP the certificate it presents to msrps next hops, with no TLS listener', async function () {
    this.timeout(20_000);
    // Operations audit: without a TLS or WSS listener the reload skipped --tls-cert/--tls-key, so a relay
    // that uses them only as its client certificate toward other relays kept the old pair to the restart.
    const far = testCertificate();
    const first = otherCertificate();
    const renewed = ecCertificate();
    const dir = tempDir('msrp-cli-');
    const cert = join(dir, 'cert.pem');
    const key = join(dir, 'key.pem');
    copyFileSync(first.certPath, cert);
    copyFileSync(first.keyPath, key);
    // The next hop: a TLS server that notes the certificate each client presents, then hangs up.
    const presented: string[] = [];
    const server = createTlsServer(
      { cert: far.cert, key: far.key, requestCert: true, rejectUnauthorized: false },
      (socket) => {
        presented.push(socket.getPeerCertificate().fingerprint256);
        socket.destroy();
      },
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const farPort = (server.address() as AddressInfo).port;
    const r = run([
      'start',
      '--listen',
      '127.0.0.1:0',
      '--no-auth',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
      '--tls-ca',
      far.certPath,
      '--log-level',
      'info',
    ]);
    running.push(r);
    const port = await bannerPort(r);
    const alice = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
    try {
      await alice.auth({ relayUri: `msrp://alice@127.0.0.1:${port};tcp` });
      const dialFar = async (count: number): Promise<void> => {
        await alice.send({ toPath: alice.toPathFor([`msrps://127.0.0.1:${farPort}/far1;tcp`]), body: 'hi' });
        const end = Date.now() + 5000;
        while (presented.length < count && Date.now() < end) await new Promise((s) => setTimeout(s, 20));
      };
      await dialFar(1);
      copyFileSync(renewed.certPath, cert);
      copyFileSync(renewed.keyPath, key);
      r.child.kill('SIGHUP');
      const end = Date.now() + 5000;
      while (!r.stdout().includes('configuration reloaded') && Date.now() < end)
        await new Promise((s) => setTimeout(s, 20));
      await new Promise((s) => setTimeout(s, 1100)); // the relay keeps off a next hop that failed for 1 s
      await dialFar(2);
      expect(presented).to.deep.equal([fingerprintOf(first.cert), fingerprintOf(renewed.cert)]);
    } finally {
      await alice.close();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
