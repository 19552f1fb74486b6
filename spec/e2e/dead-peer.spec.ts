/**
 * The dead-peer rule (--dead-peer-timeout) against the peers it must not take for dead, and one it must:
 * each case failed against one of the rule's first three versions (a review with real sockets, slow readers behind a
 * throttling proxy, a WebSocket upload, backpressure, relay links).
 */
import { expect } from 'chai';
import { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';
import type { Peer } from '../../lib/relay/peer.js';
import type { Relay } from '../../lib/relay/relay.js';
import { captureLogger, Harness, nextMessage, sleep, until, USERS, type LogLine } from '../helpers/relay.js';
import { throttlingProxy } from '../helpers/throttle.js';
import { wsClient, wsRelayOptions } from '../helpers/ws.js';
import { testCertificate } from '../helpers/tls.js';
import type { RelayOptions } from '../../lib/relay/options.js';

/** The Status of each failure REPORT `alice` gets, by Message-ID. */
function statusesAt(alice: MsrpEndpoint): Map<string, string> {
  const got = new Map<string, string>();
  alice.on('report', (f: Frame) =>
    got.set(getHeader(f.headers, 'message-id')!, getHeader(f.headers, 'status')!),
  );
  return got;
}

/** The relay's connection for endpoint `ep` (found by its local port). */
function peerOf(relay: Relay, ep: MsrpEndpoint): Peer {
  const peers = (relay as unknown as { peers: Set<Peer> }).peers;
  const port = ep.socket.localPort;
  const p = [...peers].find((x) => x.conn.remote.endsWith(`:${port}`));
  if (p === undefined) throw new Error('no such peer');
  return p;
}

/** No TCP connection of `relay` closed, and no failure REPORT reached the sender. */
function expectKept(relay: Relay, reports: Map<string, string>): void {
  expect({ closed: relay.counters.closed.tcp, reports: Object.fromEntries(reports) }).to.deep.equal({
    closed: {},
    reports: {},
  });
}

/** `ep`'s 200 to request `f`, as bytes to write. */
function answer(ep: MsrpEndpoint, f: Frame): Buffer {
  return serializeResponse({
    transactionId: f.transactionId,
    statusCode: 200,
    toPath: f.headers[1]![1].trim().split(/\s+/)[0]!,
    fromPath: ep.uri,
  });
}

describe('--dead-peer-timeout: live peers kept, dead ones closed', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  /** bob, a client of `relay` that answers nothing by himself: the requests he got are in `held`. */
  async function silentBob(relay: Relay): Promise<{ bob: MsrpEndpoint; held: Frame[] }> {
    const held: Frame[] = [];
    const bob = await h.client(relay, 'bob', {
      respond: (f) => {
        held.push(f);
        return null;
      },
    });
    return { bob, held };
  }

  /**
   * alice and bob on a relay with 500 ms timers; bob stops reading, and 64 KiB messages go to him until
   * some wait in the relay (under --max-queued-bytes): what is queued then, and whether past its limit.
   */
  async function stoppedReader(): Promise<{
    relay: Relay;
    alice: MsrpEndpoint;
    bob: MsrpEndpoint;
    peer: Peer;
    queued: number;
    congested: boolean;
  }> {
    const relay = await h.relay({ transactionTimeoutMs: 500, deadPeerMs: 500, writeStallMs: 500 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const peer = peerOf(relay, bob);
    bob.socket.pause();
    const body = Buffer.alloc(64 * 1024, 0x71);
    for (let sent = 0; sent < 1000; sent++) {
      await alice.send({ toPath: alice.toPathFor(bob.path), body, messageId: `q${sent}` });
      await sleep(5);
      if (peer.writer.totalQueued > 0) break;
    }
    await sleep(50);
    return { relay, alice, bob, peer, queued: peer.writer.totalQueued, congested: peer.writer.congested };
  }

  it('keeps a receiver that stays silent, as RFC 4975 says, on Failure-Report partial chunks', async () => {
    // Transaction timeout 3 s, dead-peer 0.5 s (as `--transaction-timeout 60s` with the default 30 s): a
    // `partial` chunk that succeeds gets no answer (RFC 4975 §7.1.1), so it owes none.
    const relay = await h.relay({ transactionTimeoutMs: 3000, deadPeerMs: 500 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob'); // answers 200, so stays silent on FR partial
    const reports = statusesAt(alice);
    const got = nextMessage(bob);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: 'no answer expected',
      failureReport: 'partial',
      messageId: 'part0001',
    });
    expect((await got).body.toString()).to.equal('no answer expected');
    await sleep(1500);
    expectKept(relay, reports);
  });

  it('closes a client that answered an earlier request after the last one went out, then went silent', async function () {
    this.timeout(10_000);
    // Pipelining: m2 goes out, then bob's (late) answer to m1 arrives, then bob vanishes. m2 times out
    // (408) before bob has been silent for the limit: what he owes must outlive m2's transaction.
    const relay = await h.relay({ transactionTimeoutMs: 1000, deadPeerMs: 1000 });
    const alice = await h.client(relay, 'alice');
    const { bob, held } = await silentBob(relay);
    const reports = statusesAt(alice);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'one', messageId: 'pipe0001' });
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'two', messageId: 'pipe0002' });
    await until(() => held.length === 2, 3000, 'both at bob');
    const first = held[0]!;
    bob.write(answer(bob, first));
    // Bob now says nothing more, and nothing more is sent to him.
    await until(() => reports.size === 1, 3000, "m2's 408");
    await sleep(3000); // three times the limit past the 408
    expect({
      report: reports.get('pipe0002'),
      closed: relay.counters.closed.tcp,
    }).to.deep.equal({ report: '000 408 Request Timeout', closed: { 'dead-peer': 1 } });
  });

  it('keeps a live receiver that reads a large chunk slowly (its answer waits for the end-line)', async function () {
    this.timeout(30_000);
    // Bob reads through a proxy at ~1 MB/s. The relay starts the chunk's timer when its end-line is
    // handed to the socket; MBs of the chunk are still in the kernel buffers ahead of it. Bob answers
    // once it has read them: alive, reading, never silent by choice. He gets a (false) 408, and must
    // keep his connection and get the message.
    const lines: LogLine[] = [];
    const relay = await h.relay({
      transactionTimeoutMs: 1000,
      deadPeerMs: 1000,
      logger: captureLogger(lines),
    });
    const relayPort = relay.addresses()[0]!.port;
    const proxy = await throttlingProxy(relayPort, 1024 * 1024);
    try {
      const alice = await h.client(relay, 'alice');
      const bob = await MsrpEndpoint.connect({ host: '127.0.0.1', port: proxy.port });
      h.endpoints.push(bob);
      await bob.auth({ relayUri: h.relayUri(relay, 'bob'), username: 'bob', password: USERS.bob });
      const file = Buffer.alloc(8 * 1024 * 1024, 0x64);
      const got = nextMessage(bob, 25_000).catch((e: Error) => e);
      await alice
        .send({ toPath: alice.toPathFor(bob.path), body: file, messageId: 'slow0001' })
        .catch(() => 0);
      const m = await got;
      const dead = lines.filter((l) => l.msg === 'peer answers nothing: closing its connection');
      expect({
        received: m instanceof Error ? m.message : m.size,
        deadPeer: relay.counters.closed.tcp['dead-peer'],
        logged: dead.map((l) => l.fields.silentMs),
      }).to.deep.equal({ received: file.length, deadPeer: undefined, logged: [] });
    } finally {
      proxy.close();
    }
  });

  it('keeps a WebSocket client that is uploading one large message (its answer must wait for it)', async function () {
    this.timeout(10_000);
    // RFC 7977: one MSRP frame per WebSocket message, so bob cannot answer until his own message is
    // out; the relay only sees whole messages, and pongs do not count. WebSocket peers are not judged.
    const relay = await h.relay(wsRelayOptions({ transactionTimeoutMs: 1000, deadPeerMs: 1000 }));
    const alice = await h.client(relay, 'alice');
    const held: Frame[] = [];
    const bob = await wsClient(h, relay, 'bob', {
      respond: (f) => {
        held.push(f);
        return null; // answered below, once the upload is out
      },
    });
    const toAlice = nextMessage(alice, 8000).catch((e: Error) => e);
    // Bob starts a 60 KiB message to alice, sent as fragments over 2.5 s (a slow uplink).
    const body = Buffer.alloc(60 * 1024, 0x65);
    const frame = serializeRequest({
      method: 'SEND',
      toPath: bob.toPathFor(alice.path),
      fromPath: bob.uri,
      headers: [
        ['Message-ID', 'upl00001'],
        ['Byte-Range', `1-${body.length}/${body.length}`],
      ],
      contentType: 'application/octet-stream',
      body,
    });
    const pieces = 25;
    const size = Math.ceil(frame.length / pieces);
    const upload = (async () => {
      for (let i = 0; i < pieces; i++) {
        const part = frame.subarray(i * size, Math.min(frame.length, (i + 1) * size));
        bob.ws!.send(part, { binary: true, fin: i === pieces - 1 });
        await sleep(100);
      }
    })();
    await sleep(150);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'hi bob', messageId: 'upl00002' });
    await upload;
    await until(() => held.length === 1, 2000, 'alice message at bob').catch(() => undefined);
    const f = held[0];
    if (f !== undefined) bob.write(answer(bob, f));
    const m = await toAlice;
    expect({
      upload: m instanceof Error ? m.message : m.size,
      closed: relay.counters.closed.ws,
    }).to.deep.equal({ upload: body.length, closed: {} });
  });

  it('does not judge a connection whose reading the relay paused, even for its own unread answers', async function () {
    this.timeout(30_000);
    // Bob read alice's message and answered it, but his answer sits behind his own requests, which the
    // relay stopped reading because bob reads its 200s slowly (he pauses himself, not another peer).
    const relay = await h.relay({
      transactionTimeoutMs: 10_000,
      deadPeerMs: 1000,
      maxQueuedBytes: 64 * 1024,
    });
    const port = relay.addresses()[0]!.port;
    const alice = await h.client(relay, 'alice');
    const { bob, held } = await silentBob(relay);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'answer me', messageId: 'self0001' });
    await until(() => held.length === 1, 3000, 'at bob');
    bob.socket.pause(); // bob stops reading for a while (busy writing)
    const frames: string[] = [];
    for (let i = 0; i < 100_000; i++) {
      const tid = `sp${String(i).padStart(6, '0')}`;
      frames.push(
        `MSRP ${tid} SEND\r\nTo-Path: msrp://127.0.0.1:${port}/noSuchToken0;tcp msrp://x.invalid:1/s;tcp\r\n` +
          `From-Path: ${bob.uri}\r\nMessage-ID: spm${i}\r\nByte-Range: 1-1/1\r\n` +
          `Content-Type: text/plain\r\n\r\nx\r\n-------${tid}$\r\n`,
      );
    }
    bob.write(Buffer.from(frames.join(''), 'latin1'));
    bob.write(answer(bob, held[0]!));
    await until(() => relay.stats().pausedReaders === 1, 10_000, 'bob paused for his answers');
    await sleep(2500);
    bob.socket.resume();
    await sleep(500);
    expect(relay.counters.closed.tcp).to.deep.equal({});
  });

  it('keeps the link to a far relay that paused reading it for a slow (not stalled) client of its own', async function () {
    this.timeout(40_000);
    // r2 never closes bob (his queue moves; --write-stall-timeout 60 s); it stops reading r1's link while
    // bob's queue is over its limit, i.e. in steps of the kernel's wake-ups at bob's read rate (over a
    // second each with megabytes in the socket buffers). Closing the link would end every session on it:
    // r1 judges it only with nothing queued toward it, and gives a relay 10 x 500 ms.
    const lines: LogLine[] = [];
    const r1 = await h.relay({ transactionTimeoutMs: 10_000, deadPeerMs: 500, logger: captureLogger(lines) });
    const r2 = await h.relay({ maxQueuedBytes: 64 * 1024 });
    const proxy = await throttlingProxy(r2.addresses()[0]!.port, 512 * 1024);
    try {
      const alice = await h.client(r1, 'alice');
      const bob = await MsrpEndpoint.connect({ host: '127.0.0.1', port: proxy.port });
      h.endpoints.push(bob);
      await bob.auth({ relayUri: h.relayUri(r2, 'bob'), username: 'bob', password: USERS.bob });
      const file = Buffer.alloc(4 * 1024 * 1024, 0x66);
      const got = nextMessage(bob, 35_000).catch((e: Error) => e);
      const sent = alice
        .send({ toPath: alice.toPathFor(bob.path), body: file, chunkSize: 64 * 1024, messageId: 'link0001' })
        .catch(() => 0);
      const m = await got;
      await sent;
      const dead = lines.filter((l) => l.msg === 'peer answers nothing: closing its connection');
      expect({
        received: m instanceof Error ? m.message : m.size,
        r1Closed: r1.counters.closed.tcp,
        silentMs: dead.map((l) => l.fields.silentMs),
      }).to.deep.equal({ received: file.length, r1Closed: {}, silentMs: [] });
    } finally {
      proxy.close();
    }
  });

  it("gives a proven relay's link that holds its clients' relay-bound tokens a relay's time", async function () {
    this.timeout(30_000);
    // With --relay-ca, R1's link to R2 holds the tokens R2 granted R1's clients (AUTH through R1, digest
    // §2.6) and carries R2's traffic back to them: a relay's link all the same. Alice stalls; R1 stops
    // reading the link and closes alice after its 500 ms write stall; R2 must not close the whole link
    // first (it did at 300 ms when a token made it a client's).
    const { cert, key } = testCertificate();
    const tlsRelay = (extra: RelayOptions): RelayOptions => ({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key, ca: cert, relayCa: cert },
      publicHost: '127.0.0.1',
      ...extra,
    });
    const clientTls = { ca: cert, servername: 'localhost' };
    const uri = (r: { addresses(): { port: number }[] }): string =>
      `msrps://127.0.0.1:${r.addresses()[0]!.port};tcp`;
    const lines: LogLine[] = [];
    const r1 = await h.relay(tlsRelay({ maxQueuedBytes: 64 * 1024, writeStallMs: 500 }));
    const r2 = await h.relay(
      tlsRelay({
        maxQueuedBytes: 64 * 1024,
        writeStallMs: 300, // the same holds for write stalls: 3 x 300 ms, after R1 has closed alice
        deadPeerMs: 300,
        transactionTimeoutMs: 10_000,
        logger: captureLogger(lines),
      }),
    );
    const alice = await h.connect(r1, { tls: clientTls });
    await alice.auth({ relayUri: uri(r1), username: 'alice', password: USERS.alice });
    const t1 = alice.usePath[0]!;
    await alice.auth({ relayUri: `${t1} ${uri(r2)}`, username: 'alice', password: USERS.alice });
    alice.usePath = [t1, alice.usePath[0]!];
    const bob = await h.connect(r2, { tls: clientTls });
    await bob.auth({ relayUri: uri(r2), username: 'bob', password: USERS.bob });
    const hello = nextMessage(alice);
    await bob.send({ toPath: bob.toPathFor(alice.path), body: 'hello' });
    await hello;
    alice.socket.pause(); // alice stalls for good
    void bob
      .send({
        toPath: bob.toPathFor(alice.path),
        body: Buffer.alloc(32 * 1024 * 1024, 0x67),
        chunkSize: 64 * 1024,
      })
      .catch(() => 0);
    await until(() => r1.counters.closed.tls['write-stall'] === 1, 15_000, 'r1 closing alice').catch(
      () => undefined,
    );
    await sleep(1000);
    expect({
      r1: r1.counters.closed.tls,
      r2: r2.counters.closed.tls,
      r2DeadPeer: lines.filter((l) => l.msg === 'peer answers nothing: closing its connection').length,
    }).to.deep.equal({ r1: { 'write-stall': 1 }, r2: {}, r2DeadPeer: 0 });
  });

  it('closes a receiver that stopped reading with less than --max-queued-bytes queued toward it', async function () {
    this.timeout(30_000);
    // Bob stops reading (a phone that lost coverage while a few 64 KiB messages were on their way). The
    // kernel takes what it can; the rest waits in the relay, under --max-queued-bytes (1 MiB default).
    // The write-stall timer only looks at a queue past its limit: the dead-peer rule must judge a queue
    // that has not moved for its timeout.
    const { relay, peer, queued, congested } = await stoppedReader();
    await sleep(3000); // 6 x --dead-peer-timeout, 6 x --write-stall-timeout
    expect({
      queuedUnderLimit: queued > 0 && queued < 1024 * 1024 && !congested,
      bobClosed: peer.isClosed,
      closed: relay.counters.closed.tcp,
    }).to.deep.equal({ queuedUnderLimit: true, bobClosed: true, closed: { 'dead-peer': 1 } });
  });

  it('closes a chat client that sent many messages since it last answered one, once it vanishes', async function () {
    this.timeout(30_000);
    // Bob sends 1,200 short messages (each answered 200 by the relay: ~130 octets toward him, which he
    // never "answers"), then vanishes. Alice's next message to him is > 128 KiB past the end of the last
    // request he answered (none: 0): the backlog estimate must be credited as time passes.
    const relay = await h.relay({ transactionTimeoutMs: 500, deadPeerMs: 500 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => null }); // gone: never answers again
    const peer = peerOf(relay, bob);
    const reports = statusesAt(alice);
    for (let i = 0; i < 1200; i += 50) {
      const batch: Promise<unknown>[] = [];
      for (let j = i; j < i + 50; j++)
        batch.push(bob.send({ toPath: bob.toPathFor(alice.path), body: `line ${j}` }));
      await Promise.all(batch);
    }
    const backlog = peer.conn.bytesOut;
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'still there?', messageId: 'chat0001' });
    await until(() => reports.size === 1, 3000, 'the 408 failure REPORT');
    await sleep(2000); // 4 x the limit past the 408
    expect({
      over128k: backlog > 128 * 1024,
      report: reports.get('chat0001'),
      closed: relay.counters.closed.tcp,
    }).to.deep.equal({ over128k: true, report: '000 408 Request Timeout', closed: { 'dead-peer': 1 } });
  });

  it("gives a plain (no --relay-ca) relay's link that carries its clients' AUTHs a relay's time", async function () {
    this.timeout(40_000);
    // RFC 4976 §5.1: alice, a client of R1, authenticates at R2 through R1. R2's token for her is held by
    // R1's connection, yet no client authenticated on it: a relay's link (10 x --dead-peer-timeout). Alice
    // stalls; R1 stops reading the link while her queue is full and closes her after its write stall
    // (1 s): R2 must keep the link (it closed it after 300 ms, ending every session on it).
    const lines: LogLine[] = [];
    const r1 = await h.relay({ maxQueuedBytes: 64 * 1024, writeStallMs: 1000 });
    const r2 = await h.relay({ deadPeerMs: 300, transactionTimeoutMs: 10_000, logger: captureLogger(lines) });
    const alice = await h.client(r1, 'alice');
    await h.authThrough(alice, r2, 'alice');
    const bob = await h.client(r2, 'bob');
    const hello = nextMessage(alice);
    await bob.send({ toPath: bob.toPathFor(alice.path), body: 'hello' });
    await hello;
    alice.socket.pause(); // alice stalls
    const body = Buffer.alloc(32 * 1024, 0x72);
    for (let i = 0; i < 3000 && r1.stats().pausedReaders === 0; i++)
      await bob.send({ toPath: bob.toPathFor(alice.path), body, messageId: `link${i}` }).catch(() => 0);
    const r1PausedLink = r1.stats().pausedReaders === 1;
    // One more message from another of R2's sessions on the link, which R1 now does not read.
    await bob.send({ toPath: bob.toPathFor(alice.path), body: 'one more' }).catch(() => 0);
    await until(() => r1.counters.closed.tcp['write-stall'] === 1, 10_000, 'r1 closing alice').catch(
      () => undefined,
    );
    await sleep(500);
    expect({
      r1PausedLink,
      r1: r1.counters.closed.tcp,
      r2: r2.counters.closed.tcp,
      r2DeadPeer: lines.filter((l) => l.msg === 'peer answers nothing: closing its connection').length,
    }).to.deep.equal({ r1PausedLink: true, r1: { 'write-stall': 1 }, r2: {}, r2DeadPeer: 0 });
  });

  it('keeps a live peer whose answer is in flight when the wall clock steps forward', async function () {
    this.timeout(10_000);
    // The rule measures silence with Date.now() (wall clock). An NTP step (or a VM resumed) of a few
    // seconds, more than --dead-peer-timeout, must not close every connection with a request in flight
    // before the answers already on their way are read. (Transaction deadlines use the same clock; with
    // the 10 s timeout here no 408 is due.)
    const relay = await h.relay({ transactionTimeoutMs: 10_000, deadPeerMs: 1000 });
    const alice = await h.client(relay, 'alice');
    const { bob, held } = await silentBob(relay);
    const reports = statusesAt(alice);
    const realNow = Date.now;
    try {
      await alice.send({ toPath: alice.toPathFor(bob.path), body: 'ping', messageId: 'clock001' });
      await until(() => held.length === 1, 3000, 'at bob');
      const stepped = realNow.call(Date) + 5000;
      const base = realNow.call(Date);
      Date.now = () => stepped + (realNow.call(Date) - base); // the clock steps 5 s forward
      await sleep(400); // bob's answer takes 400 ms (a phone's round trip)
      bob.write(answer(bob, held[0]!));
      await sleep(600);
    } finally {
      Date.now = realNow;
    }
    expectKept(relay, reports);
  });

  it("keeps a live peer whose answer arrived while the relay's event loop was blocked", async function () {
    this.timeout(10_000);
    // A stall of the relay process longer than the limit (SIGSTOP, a VM paused, a long GC): the
    // housekeeping timer runs before the sockets are read, so the answers that came meanwhile are not seen.
    const relay = await h.relay({ transactionTimeoutMs: 10_000, deadPeerMs: 1000 });
    const alice = await h.client(relay, 'alice');
    const { bob, held } = await silentBob(relay);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'ping', messageId: 'block001' });
    await until(() => held.length === 1, 3000, 'at bob');
    bob.socket.write(answer(bob, held[0]!)); // in the relay's socket buffer at once
    const end = Date.now() + 1500;
    while (Date.now() < end); // the process stalls 1.5 s
    await sleep(500);
    expect(relay.counters.closed.tcp).to.deep.equal({});
  });

  it('keeps a slow reader answering an empty SEND that went out ahead of a queued chunk', async function () {
    this.timeout(40_000);
    // Bob reads at 512 KB/s; alice's 8 MB file is mostly queued here (--max-queued-bytes 8 MiB). A new
    // session's empty SEND (RFC 4975 §5.4) to bob goes out as a whole frame, ahead of the queued chunk
    // octets: its end must not count those octets, or bob's answer to it moves consumedOut megabytes
    // past what he has read, the rest of the chunk then looks like no backlog, and bob is closed while
    // still reading it.
    const lines: LogLine[] = [];
    const relay = await h.relay({
      transactionTimeoutMs: 30_000,
      deadPeerMs: 1000,
      maxQueuedBytes: 8 * 1024 * 1024,
      logger: captureLogger(lines),
    });
    const proxy = await throttlingProxy(relay.addresses()[0]!.port, 512 * 1024);
    try {
      const alice = await h.client(relay, 'alice');
      const reports = statusesAt(alice);
      const bob = await MsrpEndpoint.connect({ host: '127.0.0.1', port: proxy.port });
      h.endpoints.push(bob);
      await bob.auth({ relayUri: h.relayUri(relay, 'bob'), username: 'bob', password: USERS.bob });
      const file = Buffer.alloc(8 * 1024 * 1024, 0x64);
      const got = new Promise<number | string>((resolve) => {
        const t = setTimeout(() => resolve('timeout'), 35_000);
        bob.on('message', (m: { messageId: string; size: number }) => {
          if (m.messageId !== 'file0001') return;
          clearTimeout(t);
          resolve(m.size);
        });
      });
      await alice.send({ toPath: alice.toPathFor(bob.path), body: file, messageId: 'file0001' });
      // A new session's empty SEND to bob (no body: forwarded whole, tracked).
      const empty = alice
        .request(
          {
            method: 'SEND',
            toPath: alice.toPathFor(bob.path),
            fromPath: alice.uri,
            headers: [['Message-ID', 'empty001']],
          },
          30_000,
        )
        .catch(() => undefined);
      const received = await got;
      await empty;
      await sleep(300);
      const dead = lines.filter((l) => l.msg === 'peer answers nothing: closing its connection');
      expect({
        received,
        deadPeer: dead.map((l) => l.fields.silentMs),
        closed: relay.counters.closed.tcp,
        reports: Object.fromEntries(reports),
      }).to.deep.equal({ received: file.length, deadPeer: [], closed: {}, reports: {} });
    } finally {
      proxy.close();
    }
  });

  it('closes a receiver that stopped reading while small messages keep coming for it', async function () {
    this.timeout(30_000);
    // As 'closes a receiver that stopped reading with less than --max-queued-bytes queued toward it',
    // but alice goes on chatting to bob (a message every 250 ms, half the limit). Each new message is
    // handed to the transport (under the writer's 256 KiB high-water mark): octets going into the
    // socket's buffer must not pass for bob reading.
    const { relay, alice, bob, peer, queued, congested } = await stoppedReader();
    const flushedBefore = peer.flushedOut;
    // 4 s of chat toward him: 8 x --dead-peer-timeout.
    for (let i = 0; i < 16 && !peer.isClosed; i++) {
      alice.send({ toPath: alice.toPathFor(bob.path), body: `ping ${i}` }).catch(() => 0);
      await sleep(250);
    }
    const flushedAfter = peer.flushedOut;
    expect({
      queuedUnderLimit: queued > 0 && queued < 1024 * 1024 && !congested,
      nothingFlushed: peer.isClosed || flushedAfter === flushedBefore,
      bobClosed: peer.isClosed,
      closed: relay.counters.closed.tcp,
    }).to.deep.equal({
      queuedUnderLimit: true,
      nothingFlushed: true,
      bobClosed: true,
      closed: { 'dead-peer': 1 },
    });
  });
});
