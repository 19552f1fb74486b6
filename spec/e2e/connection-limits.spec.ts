import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { WebSocket } from 'ws';
import { addressKey } from '../../lib/relay/listeners.js';
import { defaultMaxConnections, FD_RESERVE } from '../../lib/relay/options.js';
import { createRelay, type Relay, type RelayOptions } from '../../lib/relay/relay.js';
import { captureLogger, Harness, sleep, until, USERS, type LogLine } from '../helpers/relay.js';
import { testCertificate } from '../helpers/tls.js';
import { portOf, wsUrl } from '../helpers/ws.js';

interface Outcome {
  /** Octets the relay sent before the socket closed. */
  received: number;
  /** The TLS handshake or the WebSocket upgrade completed. */
  opened: boolean;
}

/** Opens a plain TCP socket and resolves once the relay closes it (rejects if it stays open 3 s). */
function closedByRelay(port: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let received = 0;
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('the relay kept the connection open'));
    }, 3000);
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received, opened: true });
    });
  });
}

/** A TLS connection attempt: whether its handshake completed before the socket closed. */
function tlsAttempt(port: number): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    let opened = false;
    const s = tlsConnect({ host: '127.0.0.1', port, ca: testCertificate().cert, servername: 'localhost' });
    const timer = setTimeout(() => {
      s.destroy();
      reject(new Error('neither handshake nor close within 3 s'));
    }, 3000);
    s.on('secureConnect', () => {
      opened = true;
      clearTimeout(timer);
      s.end();
      resolve({ received: 0, opened });
    });
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(timer);
      resolve({ received: 0, opened });
    });
  });
}

/** A WebSocket upgrade attempt (subprotocol `msrp`): whether it opened. */
function wsAttempt(url: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['msrp']);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('neither open nor close within 3 s'));
    }, 3000);
    ws.on('open', () => {
      clearTimeout(timer);
      ws.close();
      resolve({ received: 0, opened: true });
    });
    ws.on('error', () => {});
    ws.on('close', () => {
      clearTimeout(timer);
      resolve({ received: 0, opened: false });
    });
  });
}

/** A relay with one TLS and one plain WebSocket listener (no TCP one), plus `extra`. */
function tlsAndWs(extra: RelayOptions): RelayOptions {
  const { cert, key } = testCertificate();
  return {
    listen: [],
    tlsListen: [{ host: '127.0.0.1', port: 0 }],
    wsListen: [{ host: '127.0.0.1', port: 0 }],
    tls: { cert, key },
    ...extra,
  };
}

function refused(relay: Relay, kind: 'tcp' | 'tls' | 'ws' | 'wss', reason: string): number {
  return relay.stats().counters.refusedConnections[kind][reason] ?? 0;
}

describe('connection limits (--max-connections, --max-connections-per-ip)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('closes a TCP connection over the per-IP limit at once, and admits one again when a slot frees', async () => {
    const relay = await h.relay({ maxConnectionsPerIp: 2 });
    const alice = await h.client(relay, 'alice');
    await h.client(relay, 'bob');
    const third = await closedByRelay(portOf(relay, 'tcp'));
    expect(third.received).to.equal(0);
    expect(refused(relay, 'tcp', 'max-connections-per-ip')).to.equal(1);
    // The two admitted connections keep working.
    const again = await alice.auth({ relayUri: h.relayUri(relay), username: 'alice', password: USERS.alice });
    expect(again.kind === 'response' && again.statusCode).to.equal(200);
    await alice.close();
    await until(() => relay.connectionCount === 1, 3000, 'alice gone');
    const carol = await h.client(relay, 'carol');
    expect(carol.isClosed).to.equal(false);
    expect(refused(relay, 'tcp', 'max-connections-per-ip')).to.equal(1);
  });

  it('counts sockets still in their TLS handshake or WebSocket upgrade against --max-connections', async () => {
    const relay = await h.relay(tlsAndWs({ maxConnections: 2 }));
    const tlsPort = portOf(relay, 'tls');
    // Two raw sockets that never start a handshake take both slots.
    const idle = [0, 1].map(() => netConnect({ host: '127.0.0.1', port: tlsPort }));
    for (const s of idle) s.on('error', () => {});
    await until(() => idle.every((s) => !s.connecting), 3000, 'two raw sockets connected');
    await sleep(100); // the relay, in this process, accepts them on its next turns
    expect((await tlsAttempt(tlsPort)).opened).to.equal(false);
    expect((await wsAttempt(wsUrl(relay))).opened).to.equal(false);
    expect(refused(relay, 'tls', 'max-connections')).to.equal(1);
    expect(refused(relay, 'ws', 'max-connections')).to.equal(1);
    for (const s of idle) s.destroy();
    // The slots free once the relay has seen both sockets close.
    let opened = false;
    for (let i = 0; i < 30 && !opened; i++) {
      opened = (await tlsAttempt(tlsPort)).opened;
      if (!opened) await sleep(100);
    }
    expect(opened).to.equal(true);
    expect((await wsAttempt(wsUrl(relay))).opened).to.equal(true);
    expect(refused(relay, 'ws', 'max-connections')).to.equal(1);
  });

  it('closes TLS and WebSocket sockets that never finish their handshake within the probation time', async () => {
    const { cert } = testCertificate();
    const relay = await h.relay(tlsAndWs({ probationMs: 400 }));
    // A client that finishes its handshake and authenticates is a relay connection: no timer closes it.
    const alice = await h.connect(relay, { tls: { ca: cert, servername: 'localhost' } });
    const auth = await alice.auth({
      relayUri: `msrps://alice@127.0.0.1:${portOf(relay, 'tls')};tcp`,
      username: 'alice',
      password: USERS.alice,
    });
    expect(auth.kind === 'response' && auth.statusCode).to.equal(200);
    const silent = [closedByRelay(portOf(relay, 'tls')), closedByRelay(portOf(relay, 'ws'))];
    await until(() => relay.stats().handshakesPending === 2, 2000, 'two handshakes pending');
    const outcomes = await Promise.all(silent);
    expect(outcomes.map((o) => o.received)).to.deep.equal([0, 0]);
    const { handshakeTimeouts } = relay.stats().counters;
    expect([handshakeTimeouts.tls, handshakeTimeouts.ws]).to.deep.equal([1, 1]);
    expect(relay.stats().handshakesPending).to.equal(0);
    await sleep(600);
    expect(alice.isClosed).to.equal(false);
    expect(relay.stats().counters.handshakeTimeouts.tls).to.equal(1);
  });

  it('logs the first refusal with its address, then sums the others into one line per interval', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({
      maxConnections: 1,
      refusalLogIntervalMs: 400,
      logger: captureLogger(lines),
    });
    await h.client(relay, 'alice');
    for (let i = 0; i < 5; i++) await closedByRelay(portOf(relay, 'tcp'));
    expect(refused(relay, 'tcp', 'max-connections')).to.equal(5);
    const first = lines.filter((l) => l.msg === 'connection refused: limit reached');
    expect(first).to.have.length(1);
    expect(first[0]!.level).to.equal('warn');
    expect(first[0]!.fields).to.include({ transport: 'tcp', reason: 'max-connections', limit: 1 });
    expect(first[0]!.fields.remote).to.match(/^127\.0\.0\.1:\d+$/);
    const summary = (): typeof lines => lines.filter((l) => l.msg === 'connections refused: limit reached');
    await until(() => summary().length === 1, 3000, 'the summary line');
    expect(summary()[0]!.fields).to.deep.include({ refused: 4, byLimit: { 'tcp/max-connections': 4 } });
    // Nothing more refused: no further line.
    await sleep(1000);
    expect(summary()).to.have.length(1);
  });

  it('defaults --max-connections to the open-file limit minus the reserve, and per IP to none', () => {
    const relay = createRelay({ listen: [{ host: '127.0.0.1', port: 0 }] });
    const limits = relay.connectionLimits;
    expect(limits.maxConnectionsPerIp).to.equal(0);
    expect(limits.maxConnections).to.equal(defaultMaxConnections());
    if (process.platform === 'linux') {
      const soft = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
      if (soft !== null) expect(limits.maxConnections).to.equal(Number(soft[1]) - FD_RESERVE);
    }
  });

  it('counts IPv4 addresses (mapped and NAT64 too) as they are and other IPv6 addresses by their /64', () => {
    expect(addressKey('192.0.2.7')).to.equal('192.0.2.7');
    expect(addressKey('::ffff:192.0.2.7')).to.equal('192.0.2.7');
    expect(addressKey('2001:db8::1')).to.equal('2001:db8:0:0');
    expect(addressKey('2001:0DB8:0000:0000:ffff::2')).to.equal('2001:db8:0:0');
    expect(addressKey('2001:db8:1:2:3:4:5:6')).to.equal('2001:db8:1:2');
    expect(addressKey('2001:db8:1::')).to.equal('2001:db8:1:0');
    expect(addressKey('::1')).to.equal('0:0:0:0');
    expect(addressKey('fe80::1%eth0')).to.equal('fe80:0:0:0');
    expect(addressKey('64:ff9b::192.0.2.7')).to.equal('192.0.2.7');
    expect(addressKey('64:ff9b::c000:207')).to.equal('192.0.2.7');
    expect(addressKey('::')).to.equal('0:0:0:0');
    expect(addressKey('not:an:address')).to.equal('not:an:address');
    expect(addressKey('1:2:3:4:5:6:7:8:9')).to.equal('1:2:3:4:5:6:7:8:9');
    expect(addressKey(undefined)).to.equal('');
  });
});
