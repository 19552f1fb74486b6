/**
 * Which silent connections the relay closes (RFC 4976 §6.3 probation, digest §2.5: relays keep
 * connections and may close them after an idle hour), and which it keeps: a chained relay's connection
 * holds no token of ours, and one whose reading the relay paused is silent by the relay's own doing.
 * Which busy ones it closes: a peer that stopped reading (--write-stall-timeout), and one that answers
 * nothing and says nothing with requests in flight to it (--dead-peer-timeout).
 */
import { expect } from 'chai';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createRelay } from '../../lib/relay/relay.js';
import { captureLogger, Harness, nextMessage, sleep, until, type LogLine } from '../helpers/relay.js';
import { portOf, wsClient, wsRelayOptions, wssRelayOptions } from '../helpers/ws.js';

describe('connection timers', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('sends the 408 failure REPORT back through a chained relay whose connection went quiet', async () => {
    // RFC 4976 §6.5 (digest §2.7): no answer from the next hop within the transaction timeout ⇒ a
    // `000 408` failure REPORT toward the sender. Before, R2 closed R1's connection (no token, silent
    // for the probation period), and the REPORT toward alice had no way back.
    const r1 = await h.relay();
    const r2 = await h.relay({ probationMs: 400, transactionTimeoutMs: 1500 });
    const alice = await h.client(r1, 'alice');
    const bob = await h.client(r2, 'bob', { respond: () => null }); // bob never answers
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const res = await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: 'hello bob',
      messageId: 'chn408a1',
    });
    expect(res.statuses).to.deep.equal([200]);
    await until(() => reports.length > 0, 4000, 'the 408 failure REPORT at alice').catch(() => undefined);
    expect({
      reports: reports.map((r) => getHeader(r.headers, 'status')),
      r2Closed: r2.counters.closed.tcp,
    }).to.deep.equal({ reports: ['000 408 Request Timeout'], r2Closed: {} });
  });

  it('keeps a chained relay connection whose reading it paused for backpressure', async () => {
    // R2 stops reading from R1 while bob's queue is full; before, it then closed R1's connection as
    // silent, and every chunk in flight became a 481 failure REPORT.
    const r1 = await h.relay();
    const r2 = await h.relay({ probationMs: 1000, maxQueuedBytes: 64 * 1024 });
    const alice = await h.client(r1, 'alice');
    const bob = await h.client(r2, 'bob');
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const got = nextMessage(bob, 10_000);
    bob.socket.pause(); // bob reads nothing for a while
    const file = Buffer.alloc(8 * 1024 * 1024, 0x61);
    const sent = alice.send({
      toPath: alice.toPathFor(bob.path),
      body: file,
      chunkSize: 64 * 1024,
      messageId: 'bpchain1',
    });
    await sleep(2500);
    bob.socket.resume();
    const m = await got.catch((e: Error) => e);
    await sent.catch(() => undefined);
    expect({
      received: m instanceof Error ? m.message : m.body.length,
      failureReports: reports.length,
      r2Closed: r2.counters.closed.tcp,
    }).to.deep.equal({ received: file.length, failureReports: 0, r2Closed: {} });
  });

  it('does not shelter a connection paused for its own unread answers from the probation period', async function () {
    this.timeout(20_000);
    // 0f2d195: only a pause for another connection's queue is the relay's doing. A stranger that sends
    // refused requests and never reads the answers is paused for them, and must still leave when its
    // probation period (no accepted request) ends; sheltered, it would hold its socket and queue for good.
    const relay = await h.relay({ probationMs: 4000, maxQueuedBytes: 64 * 1024 });
    const port = relay.addresses()[0]!.port;
    const stranger = await h.connect(relay);
    stranger.socket.pause(); // reads none of its answers
    const frames: string[] = [];
    // 100,000 refused SENDs: their 481s (15 MB) are more than the kernel's buffers absorb.
    for (let i = 0; i < 100_000; i++) {
      const tid = `pb${String(i).padStart(6, '0')}`;
      frames.push(
        `MSRP ${tid} SEND\r\nTo-Path: msrp://127.0.0.1:${port}/noSuchToken0;tcp msrp://x.invalid:1/s;tcp\r\n` +
          `From-Path: ${stranger.uri}\r\nMessage-ID: pbm${i}\r\nByte-Range: 1-1/1\r\n` +
          `Content-Type: text/plain\r\n\r\nx\r\n-------${tid}$\r\n`,
      );
    }
    stranger.write(Buffer.from(frames.join(''), 'latin1'));
    await until(() => relay.stats().pausedReaders === 1, 10_000, 'the stranger paused for its 481s');
    const peers = (relay as unknown as { peers: Set<{ isClosed: boolean; isPausedByOthers: boolean }> })
      .peers;
    const [peer] = [...peers];
    expect([peers.size, peer!.isPausedByOthers]).to.deep.equal([1, false]);
    // Closed while still paused (torn down, its answers unread): the timer saw past a pause that was the
    // connection's own doing.
    await until(() => peer!.isClosed, 8000, 'the probation close');
    expect([peers.size, relay.counters.refused['481']! > 0]).to.deep.equal([0, true]);
  });

  it('closes a chained relay connection silent longer than --idle-timeout', async () => {
    const r1 = await h.relay();
    const r2 = await h.relay({ probationMs: 200, idleTimeoutMs: 900 });
    const alice = await h.client(r1, 'alice');
    const bob = await h.client(r2, 'bob');
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'hello', messageId: 'idlechn1' });
    await sleep(500); // past the probation period: R1's connection stays
    const early = { ...r2.counters.closed.tcp };
    await until(() => r2.counters.closed.tcp['idle'] === 1, 3000, 'the idle close');
    expect([early, r2.counters.closed.tcp]).to.deep.equal([{}, { idle: 1 }]);
  });

  it('keeps a chained relay connection that carried an AUTH through it after that token expired', async () => {
    // Chaining audit: R2 took R1's connection for a client's once it had issued a token over it, and
    // closed it after the probation period of silence when that token expired.
    const r1 = await h.relay();
    const r2 = await h.relay({ probationMs: 300, authExpires: 1, authMinExpires: 1 });
    const alice = await h.client(r1, 'alice');
    await h.authThrough(alice, r2, 'alice');
    await sleep(1800); // the token (1 s) expired, then more than the probation period of silence
    expect(r2.counters.closed.tcp).to.deep.equal({});
  });

  it('gives a client whose tokens all expired the probation period of silence to AUTH again', async () => {
    const relay = await h.relay({ probationMs: 300, authExpires: 1, authMinExpires: 1 });
    const alice = await h.connect(relay);
    const res = await alice.auth({
      relayUri: h.relayUri(relay, 'alice'),
      username: 'alice',
      password: 'alice-pw',
      expires: 1,
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    await sleep(700); // silent, but holding a live token
    const early = { ...relay.counters.closed.tcp };
    await until(() => relay.counters.closed.tcp['idle-unauthenticated'] === 1, 3000, 'the close');
    expect([early, relay.counters.closed.tcp]).to.deep.equal([{}, { 'idle-unauthenticated': 1 }]);
  });
  it('stops on close() while sockets sit on its TLS and WebSocket ports without a handshake', async () => {
    // Operations audit: SIGTERM never finished while a socket sat on a --ws-listen or --tls-listen port
    // (a load balancer's health check, a browser preconnect): it never became a relay connection, so
    // the relay never closed it, and the server's close waited for it.
    const relay = createRelay(wssRelayOptions({ wsListen: [{ host: '127.0.0.1', port: 0 }] }));
    await relay.listen();
    const silent: Socket[] = [];
    try {
      for (const kind of ['tls', 'ws', 'wss'] as const) {
        const s = connect(portOf(relay, kind), '127.0.0.1');
        s.on('error', () => undefined);
        await new Promise((r) => s.once('connect', r));
        silent.push(s);
      }
      const closed = relay.close(100).then(() => 'closed');
      expect(await Promise.race([closed, sleep(5000).then(() => 'still open after 5 s')])).to.equal('closed');
    } finally {
      for (const s of silent) s.destroy();
    }
  });

  describe('probation counted from the accept', () => {
    // RFC 4976 §6.3. Before, a TLS handshake or PROXY header had the probation time to come, and the
    // connection it made had the probation time again: a silent client held a socket twice as long.
    const DELAY_MS = 1500;
    const PROBATION_MS = 2000;

    /** Ms from the TCP connect until the relay closes `closes`, which the client starts after DELAY_MS. */
    async function heldFor(port: number, start: (raw: Socket) => Socket): Promise<number> {
      const raw = connect(port, '127.0.0.1');
      raw.on('error', () => undefined);
      try {
        await new Promise((r) => raw.once('connect', r));
        const connectedAt = Date.now();
        await sleep(DELAY_MS);
        const s = start(raw);
        const closedAt = new Promise<number>((r) => s.once('close', () => r(Date.now())));
        const at = await Promise.race([closedAt, sleep(5000).then(() => Infinity)]);
        return at - connectedAt;
      } finally {
        raw.destroy();
      }
    }

    it('closes a silent TLS client one probation period after the accept, its slow handshake included', async () => {
      const relay = createRelay(wssRelayOptions({ probationMs: PROBATION_MS }));
      await relay.listen();
      try {
        const held = await heldFor(portOf(relay, 'tls'), (raw) => {
          const s = tlsConnect({ socket: raw, rejectUnauthorized: false });
          s.on('error', () => undefined);
          return s;
        });
        // Probation, then at most a sweep (a quarter of it) later; before: handshake delay + probation.
        expect(held).to.be.within(PROBATION_MS - 50, DELAY_MS + PROBATION_MS - 500);
        await until(() => relay.counters.closed.tls.probation === 1, 2000, 'the close counted').catch(
          () => undefined,
        );
        expect(relay.counters.closed.tls).to.deep.equal({ probation: 1 });
      } finally {
        await relay.close(100);
      }
    });

    it('closes a silent client behind a PROXY header one probation period after the accept', async () => {
      const relay = createRelay({
        listen: [{ host: '127.0.0.1', port: 0 }],
        auth: false,
        probationMs: PROBATION_MS,
        proxyProtocolFrom: ['127.0.0.1'],
      });
      await relay.listen();
      try {
        const held = await heldFor(portOf(relay, 'tcp'), (raw) => {
          raw.write('PROXY TCP4 203.0.113.7 127.0.0.1 40001 2855\r\n');
          return raw;
        });
        expect(held).to.be.within(PROBATION_MS - 50, DELAY_MS + PROBATION_MS - 500);
        await until(() => relay.counters.closed.tcp.probation === 1, 2000, 'the close counted').catch(
          () => undefined,
        );
        expect(relay.counters.closed.tcp).to.deep.equal({ probation: 1 });
      } finally {
        await relay.close(100);
      }
    });
  });

  it('resolves both of two close() calls made at once', async () => {
    const relay = await h.relay();
    await h.client(relay, 'alice');
    const both = Promise.all([relay.close(100), relay.close(100)]).then(() => 'closed');
    expect(await Promise.race([both, sleep(4000).then(() => 'hung')])).to.equal('closed');
  });

  describe('--write-stall-timeout', () => {
    /**
     * `receiver` stops reading for good and `sender` sends it `mib` MiB in 64 KiB chunks: settles, with
     * the outcome or the error, once the relay has let go of the message.
     */
    function floodStalled(sender: MsrpEndpoint, receiver: MsrpEndpoint, mib: number): Promise<unknown> {
      receiver.socket.pause();
      return sender
        .send({
          toPath: sender.toPathFor(receiver.path),
          body: Buffer.alloc(mib * 1024 * 1024, 0x62),
          chunkSize: 64 * 1024,
        })
        .catch((e: Error) => e);
    }

    it('closes a receiver that stops reading, so the sender it paused moves again', async () => {
      const lines: LogLine[] = [];
      const relay = await h.relay({
        maxQueuedBytes: 64 * 1024,
        writeStallMs: 600,
        logger: captureLogger(lines),
      });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob');
      const carol = await h.client(relay, 'carol');
      const toBob = floodStalled(alice, bob, 8);
      // Paused, bob does not see the close either: the relay's count says when it came.
      await until(() => relay.counters.closed.tcp['write-stall'] === 1, 5000, "bob's connection closed");
      // Alice was paused behind bob's full queue; once bob is gone her connection is read again.
      const got = nextMessage(carol, 5000);
      await alice.send({ toPath: alice.toPathFor(carol.path), body: 'still here', messageId: 'stall2' });
      expect((await got).body.toString()).to.equal('still here');
      await toBob;
      const stalled = lines.filter((l) => l.msg === 'peer stopped reading: closing its connection');
      expect(stalled.length).to.equal(1);
      expect(stalled[0]!.fields.stalledMs).to.be.at.least(600);
      expect(relay.counters.closed.tcp['write-stall']).to.equal(1);
    });

    it('closes a stalled client at the far relay first, keeping the connection between the relays', async () => {
      const opts = { maxQueuedBytes: 64 * 1024, writeStallMs: 400 };
      const r1 = await h.relay(opts);
      const r2 = await h.relay(opts);
      const alice = await h.client(r1, 'alice');
      const bob = await h.client(r2, 'bob');
      const carol = await h.client(r2, 'carol');
      const toBob = floodStalled(alice, bob, 8);
      await until(() => r2.counters.closed.tcp['write-stall'] === 1, 5000, "bob's connection closed at r2");
      const got = nextMessage(carol, 5000);
      await alice.send({ toPath: alice.toPathFor(carol.path), body: 'via the same chain' });
      expect((await got).body.toString()).to.equal('via the same chain');
      await toBob;
      expect([r1.counters.closed.tcp, r2.counters.closed.tcp]).to.deep.equal([{}, { 'write-stall': 1 }]);
    });

    it('gives a connection holding no token (another relay) three times as long', async () => {
      const lines: LogLine[] = [];
      const r1 = await h.relay({
        maxQueuedBytes: 64 * 1024,
        writeStallMs: 300,
        logger: captureLogger(lines),
      });
      // r2 never gives up on bob (60 s); 32 MiB fill more than the socket buffers between them all.
      const r2 = await h.relay({ maxQueuedBytes: 64 * 1024 });
      const alice = await h.client(r1, 'alice');
      const bob = await h.client(r2, 'bob');
      const toBob = floodStalled(alice, bob, 32);
      await until(() => r1.counters.closed.tcp['write-stall'] === 1, 8000, 'r1 closing its connection to r2');
      await toBob;
      const stalled = lines.filter((l) => l.msg === 'peer stopped reading: closing its connection');
      // The first close (alice's later chunks may go on a new connection, stalled in turn).
      expect(stalled[0]!.fields.stalledMs).to.be.at.least(900);
      expect(r2.counters.closed.tcp['write-stall']).to.equal(undefined);
    });

    it('closes a WebSocket peer that sends but never reads, heartbeat pings notwithstanding', async function () {
      // A ping adds its frame to what the transport holds; that rise is not the peer reading. Bob keeps
      // sending, so the heartbeat never closes him either.
      this.timeout(10_000);
      const relay = await h.relay(wsRelayOptions({ maxQueuedBytes: 64 * 1024, writeStallMs: 600 }));
      const alice = await h.client(relay, 'alice');
      const carol = await h.client(relay, 'carol');
      const bob = await wsClient(h, relay, 'bob');
      const peers = (relay as unknown as { peers: Set<{ conn: { kind: string; heartbeat(): void } }> }).peers;
      const bobConn = [...peers].map((p) => p.conn).find((c) => c.kind === 'ws')!;
      void floodStalled(alice, bob, 32);
      const timers = [
        setInterval(
          () => void bob.send({ toPath: bob.toPathFor(carol.path), body: 'typing' }).catch(() => undefined),
          200,
        ),
        setInterval(() => bobConn.heartbeat(), 300),
      ];
      try {
        await until(() => relay.counters.closed.ws['write-stall'] === 1, 6000, 'bob closed for write-stall');
      } finally {
        for (const t of timers) clearInterval(t);
      }
    });

    it('never closes for a stall with 0', async () => {
      const relay = await h.relay({ maxQueuedBytes: 64 * 1024, writeStallMs: 0 });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob');
      void floodStalled(alice, bob, 16);
      await until(() => relay.stats().pausedReaders > 0, 5000, 'alice paused');
      await sleep(1500);
      expect([relay.counters.closed.tcp, relay.stats().pausedReaders]).to.deep.equal([{}, 1]);
    });

    it('keeps a receiver that reads in bursts', async function () {
      this.timeout(10_000);
      const relay = await h.relay({ maxQueuedBytes: 64 * 1024, writeStallMs: 600 });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob');
      const file = Buffer.alloc(4 * 1024 * 1024, 0x63);
      const got = nextMessage(bob, 9000);
      // Bob reads in short bursts: 50 ms every 400 ms, less than the stall timeout apart.
      bob.socket.pause();
      const slow = setInterval(() => {
        bob.socket.resume();
        setTimeout(() => bob.socket.pause(), 50);
      }, 400);
      try {
        const sent = alice.send({ toPath: alice.toPathFor(bob.path), body: file, chunkSize: 64 * 1024 });
        await sleep(2500);
        expect(relay.counters.closed.tcp['write-stall']).to.equal(undefined);
        clearInterval(slow);
        bob.socket.resume();
        await sent;
        expect((await got).body.equals(file)).to.equal(true);
      } finally {
        clearInterval(slow);
      }
    });
  });

  describe('--dead-peer-timeout', () => {
    /** The Status of each failure REPORT `alice` gets, by Message-ID. */
    function statusesAt(alice: MsrpEndpoint): Map<string, string> {
      const got = new Map<string, string>();
      alice.on('report', (f: Frame) =>
        got.set(getHeader(f.headers, 'message-id')!, getHeader(f.headers, 'status')!),
      );
      return got;
    }

    it('closes a client that answers nothing and says nothing: 408 for the request that timed out, 481 for the rest', async () => {
      const lines: LogLine[] = [];
      const relay = await h.relay({
        transactionTimeoutMs: 1000,
        deadPeerMs: 1000,
        logger: captureLogger(lines),
      });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob', { respond: () => null }); // reads, never answers
      const reports = statusesAt(alice);
      const sentAt = Date.now();
      await alice.send({ toPath: alice.toPathFor(bob.path), body: 'one', messageId: 'dead0001' });
      // Its timer runs out 700 ms after the first's, long after bob's close.
      await sleep(700);
      await alice.send({ toPath: alice.toPathFor(bob.path), body: 'two', messageId: 'dead0002' });
      await until(() => relay.counters.closed.tcp['dead-peer'] === 1, 4000, "bob's connection closed");
      const closedAfter = Date.now() - sentAt;
      await until(() => reports.size === 2, 2000, 'a failure REPORT for each').catch(() => undefined);
      const closing = lines.filter((l) => l.msg === 'peer answers nothing: closing its connection');
      expect({
        reports: Object.fromEntries(reports),
        logged: closing.length,
        atLeast1000: closedAfter >= 1000 && (closing[0]?.fields.silentMs as number) >= 1000,
      }).to.deep.equal({
        reports: { dead0001: '000 408 Request Timeout', dead0002: '000 481 Next hop connection lost' },
        logged: 1,
        atLeast1000: true,
      });
    });

    it('keeps a peer that sends meanwhile, though it leaves requests unanswered', async () => {
      const relay = await h.relay({ transactionTimeoutMs: 300, deadPeerMs: 300 });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob', { respond: () => null });
      const reports = statusesAt(alice);
      const chatty = setInterval(
        () => void bob.send({ toPath: bob.toPathFor(alice.path), body: 'typing' }).catch(() => undefined),
        100,
      );
      try {
        await alice.send({ toPath: alice.toPathFor(bob.path), body: 'one', messageId: 'live0001' });
        await until(() => reports.size === 1, 3000, 'the 408 failure REPORT');
        await sleep(600); // twice the limit past the 408
        expect([reports.get('live0001'), relay.counters.closed.tcp]).to.deep.equal([
          '000 408 Request Timeout',
          {},
        ]);
      } finally {
        clearInterval(chatty);
      }
    });

    it('gives a connection holding no token (a next hop) ten times as long', async function () {
      this.timeout(12_000);
      // A next hop that takes the octets (the kernel does) and never says a word.
      const held: Socket[] = [];
      const hole: Server = createServer((s) => {
        s.pause();
        held.push(s);
      });
      await new Promise<void>((r) => hole.listen(0, '127.0.0.1', () => r()));
      try {
        const relay = await h.relay({ transactionTimeoutMs: 300, deadPeerMs: 200 });
        const alice = await h.client(relay, 'alice');
        const reports = statusesAt(alice);
        const farEnd = `msrp://127.0.0.1:${(hole.address() as { port: number }).port}/farSession03;tcp`;
        const sentAt = Date.now();
        await alice.send({ toPath: alice.toPathFor([farEnd]), body: 'into the void', messageId: 'hole0001' });
        await until(() => reports.size === 1, 3000, 'the 408 failure REPORT');
        const afterTimeout = { ...relay.counters.closed.tcp };
        await until(() => relay.counters.closed.tcp['dead-peer'] === 1, 4000, 'the next hop closed');
        expect({
          afterTimeout,
          report: reports.get('hole0001'),
          atLeast2000: Date.now() - sentAt >= 2000,
        }).to.deep.equal({ afterTimeout: {}, report: '000 408 Request Timeout', atLeast2000: true });
      } finally {
        for (const s of held) s.destroy();
        hole.close();
      }
    });

    it('never closes for silence with 0', async () => {
      const relay = await h.relay({ transactionTimeoutMs: 300, deadPeerMs: 0 });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob', { respond: () => null });
      const reports = statusesAt(alice);
      await alice.send({ toPath: alice.toPathFor(bob.path), body: 'one', messageId: 'zero0001' });
      await until(() => reports.size === 1, 3000, 'the 408 failure REPORT');
      await sleep(900);
      expect([reports.get('zero0001'), relay.counters.closed.tcp]).to.deep.equal([
        '000 408 Request Timeout',
        {},
      ]);
    });
  });
});
