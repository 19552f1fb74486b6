/**
 * `--tcp-keepalive`: the relay turns TCP keep-alive on for its TCP and TLS connections, accepted and
 * dialed, so a quiet link keeps a firewall's or NAT's state and a vanished peer is found. Read where the
 * kernel shows it: /proc/net/tcp gives each socket's pending timer, `2` with its expiry for the
 * keep-alive timer of an established socket (a retransmission would be `1`), `0` for none.
 */
import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { RelayOptions, Relay } from '../../lib/relay/relay.js';
import { bannerPort, run, type Run } from '../helpers/cli.js';
import { Harness, nextMessage, sleep, USERS } from '../helpers/relay.js';
import { testCertificate } from '../helpers/tls.js';

/** An established socket and its pending timer: kind (0 none, 2 keep-alive) and seconds left. */
interface SocketTimer {
  local: number;
  remote: number;
  timer: number;
  seconds: number;
}

/** Every established socket on this machine, as /proc/net/tcp and tcp6 show them. */
function sockets(): SocketTimer[] {
  const out: SocketTimer[] = [];
  const lines = ['/proc/net/tcp', '/proc/net/tcp6'].flatMap((file) => {
    try {
      return readFileSync(file, 'utf8').split('\n').slice(1);
    } catch {
      return []; // no IPv6
    }
  });
  for (const line of lines) {
    // sl local_address rem_address st tx_queue:rx_queue tr:tm->when ...
    const f = line.trim().split(/\s+/);
    if (f.length < 6 || f[3] !== '01') continue; // established only
    const [tr, when] = f[5]!.split(':');
    out.push({
      local: parseInt(f[1]!.split(':')[1]!, 16),
      remote: parseInt(f[2]!.split(':')[1]!, 16),
      timer: parseInt(tr!, 16),
      seconds: parseInt(when!, 16) / 100, // tm->when is in clock ticks (USER_HZ, 100 on Linux)
    });
  }
  return out;
}

/** The sockets from `localPort` to `remotePort`. */
function timers(localPort: number, remotePort: number | undefined): SocketTimer[] {
  return sockets().filter((s) => s.local === localPort && s.remote === remotePort);
}

function haveProcNet(): boolean {
  try {
    readFileSync('/proc/net/tcp');
    return true;
  } catch {
    return false;
  }
}

function tlsRelayOptions(options: RelayOptions = {}): RelayOptions {
  const { cert, key } = testCertificate();
  return {
    listen: [],
    tlsListen: [{ host: '127.0.0.1', port: 0 }],
    tls: { cert, key, ca: cert },
    ...options,
  };
}

const portOfRelay = (r: Relay): number => r.addresses()[0]!.port;

describe('TCP keep-alive (--tcp-keepalive)', () => {
  const h = new Harness();
  before(function () {
    if (!haveProcNet()) this.skip(); // not Linux: nowhere to read the socket's timer
  });
  const running: Run[] = [];
  afterEach(async () => {
    await h.cleanup();
    for (const r of running.splice(0)) {
      r.child.kill('SIGKILL');
      await r.exit;
    }
  });

  it('takes --tcp-keepalive from the command line', async () => {
    const r = run([
      'start',
      '--listen',
      '127.0.0.1:0',
      '--no-auth',
      '--tcp-keepalive',
      '8',
      '--log-level',
      'warn',
    ]);
    running.push(r);
    const port = await bannerPort(r);
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    try {
      // The kernel completes the handshake before the child accepts and sets the option: poll (1 s).
      let seen: SocketTimer[] = [];
      for (let i = 0; i < 50 && seen[0]?.timer !== 2; i++) {
        await sleep(20);
        seen = timers(port, socket.localPort);
      }
      expect(seen.map((t) => t.timer)).to.deep.equal([2]);
      expect(seen[0]!.seconds).to.be.within(6, 8);
    } finally {
      socket.destroy();
    }
  });

  it('probes an accepted TCP connection after 120 s of silence by default; the client socket has no timer', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    await sleep(50);
    const relaySide = timers(portOfRelay(relay), alice.socket.localPort);
    const clientSide = timers(alice.socket.localPort!, portOfRelay(relay));
    expect(relaySide.map((t) => t.timer)).to.deep.equal([2]);
    expect(relaySide[0]!.seconds).to.be.within(110, 120);
    expect(clientSide.map((t) => t.timer)).to.deep.equal([0]); // the check tells sockets apart
  });

  it('takes the idle time from tcpKeepAliveMs, and 0 turns it off', async () => {
    const short = await h.relay({ tcpKeepAliveMs: 7000 });
    const off = await h.relay({ tcpKeepAliveMs: 0 });
    const a = await h.client(short, 'alice');
    const b = await h.client(off, 'bob');
    await sleep(50);
    const onShort = timers(portOfRelay(short), a.socket.localPort);
    expect(onShort.map((t) => t.timer)).to.deep.equal([2]);
    expect(onShort[0]!.seconds).to.be.within(5, 7);
    expect(timers(portOfRelay(off), b.socket.localPort).map((t) => t.timer)).to.deep.equal([0]);
  });

  it('turns it on for a connection accepted over IPv6', async function () {
    let relay: Relay;
    try {
      relay = await h.relay({ listen: [{ host: '::1', port: 0 }], tcpKeepAliveMs: 5000 });
    } catch {
      this.skip(); // no ::1 on this machine
    }
    const alice = await h.client(relay, 'alice');
    await sleep(50);
    const seen = timers(portOfRelay(relay), alice.socket.localPort);
    expect(seen.map((t) => t.timer)).to.deep.equal([2]);
    expect(seen[0]!.seconds).to.be.within(3, 5);
  });

  it('turns it on for accepted TLS connections and for a next hop dialed over msrps', async () => {
    const r1 = await h.relay(tlsRelayOptions({ tcpKeepAliveMs: 9000 }));
    const r2 = await h.relay(tlsRelayOptions({ tcpKeepAliveMs: 9000 }));
    const tls = { ca: testCertificate().cert, servername: 'localhost' };
    const alice = await h.connect(r1, { tls });
    await alice.auth({
      relayUri: `msrps://alice@127.0.0.1:${portOfRelay(r1)};tcp`,
      username: 'alice',
      password: USERS.alice,
    });
    const bob = await h.connect(r2, { tls });
    await bob.auth({
      relayUri: `msrps://bob@127.0.0.1:${portOfRelay(r2)};tcp`,
      username: 'bob',
      password: USERS.bob,
    });
    const got = nextMessage(bob, 5000);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'through two relays' });
    expect((await got).body.toString()).to.equal('through two relays');
    await sleep(50);
    const accepted = timers(portOfRelay(r1), alice.socket.localPort);
    expect(accepted.map((t) => t.timer)).to.deep.equal([2]);
    expect(accepted[0]!.seconds).to.be.within(7, 9);
    // R1's dialed socket toward R2: every socket from R2's port to a port other than bob's is R2's side
    // of it; the one to R2's port from a port not bob's is R1's side.
    const dialed = readDialed(portOfRelay(r2), bob.socket.localPort!);
    expect(dialed.map((t) => t.timer)).to.deep.equal([2, 2]);
    for (const t of dialed) expect(t.seconds).to.be.within(7, 9);
  });
});

/** Both ends of the connections to `relayPort` other than the one from `clientPort`. */
function readDialed(relayPort: number, clientPort: number): SocketTimer[] {
  return sockets().filter(
    (s) =>
      (s.remote === relayPort && s.local !== clientPort) ||
      (s.local === relayPort && s.remote !== clientPort),
  );
}
