/**
 * The dead-peer rule (--dead-peer-timeout) against the peers it must not take for dead, and one it must:
 * each case failed against the rule's first version (a review with real sockets, slow readers behind a
 * throttling proxy, a WebSocket upload, backpressure, relay links).
 */
import { expect } from 'chai';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';
import { captureLogger, Harness, nextMessage, sleep, until, USERS, type LogLine } from '../helpers/relay.js';
import { wsClient, wsRelayOptions } from '../helpers/ws.js';
import { testCertificate } from '../helpers/tls.js';
import type { RelayOptions } from '../../lib/relay/options.js';

describe('--dead-peer-timeout: live peers kept, dead ones closed', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  /** The Status of each failure REPORT `alice` gets, by Message-ID. */
  function statusesAt(alice: MsrpEndpoint): Map<string, string> {
    const got = new Map<string, string>();
    alice.on('report', (f: Frame) =>
      got.set(getHeader(f.headers, 'message-id')!, getHeader(f.headers, 'status')!),
    );
    return got;
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
    expect({ closed: relay.counters.closed.tcp, reports: Object.fromEntries(reports) }).to.deep.equal({
      closed: {},
      reports: {},
    });
  });

  it('closes a client that answered an earlier request after the last one went out, then went silent', async function () {
    this.timeout(10_000);
    // Pipelining: m2 goes out, then bob's (late) answer to m1 arrives, then bob vanishes. m2 times out
    // (408) before bob has been silent for the limit: what he owes must outlive m2's transaction.
    const relay = await h.relay({ transactionTimeoutMs: 1000, deadPeerMs: 1000 });
    const alice = await h.client(relay, 'alice');
    const held: Frame[] = [];
    const bob = await h.client(relay, 'bob', {
      respond: (f) => {
        held.push(f);
        return null;
      },
    });
    const reports = statusesAt(alice);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'one', messageId: 'pipe0001' });
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'two', messageId: 'pipe0002' });
    await until(() => held.length === 2, 3000, 'both at bob');
    const first = held[0]!;
    bob.write(
      serializeResponse({
        transactionId: first.transactionId,
        statusCode: 200,
        toPath: first.headers[1]![1].trim().split(/\s+/)[0]!,
        fromPath: bob.uri,
      }),
    );
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
    if (f !== undefined)
      bob.write(
        serializeResponse({
          transactionId: f.transactionId,
          statusCode: 200,
          toPath: f.headers[1]![1].trim().split(/\s+/)[0]!,
          fromPath: bob.uri,
        }),
      );
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
    const held: Frame[] = [];
    const bob = await h.client(relay, 'bob', {
      respond: (f) => {
        held.push(f);
        return null;
      },
    });
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
    const f = held[0]!;
    bob.write(
      serializeResponse({
        transactionId: f.transactionId,
        statusCode: 200,
        toPath: f.headers[1]![1].trim().split(/\s+/)[0]!,
        fromPath: bob.uri,
      }),
    );
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
});

/**
 * A TCP proxy in front of the relay that passes relay→client octets at `rate` octets per second (the
 * client→relay direction unthrottled): a client on a slow downlink.
 */
async function throttlingProxy(relayPort: number, rate: number): Promise<{ port: number; close(): void }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const up = connect(relayPort, '127.0.0.1');
    sockets.push(client, up);
    client.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      up.pause();
      client.write(d);
      setTimeout(() => up.resume(), (d.length / rate) * 1000);
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end);
    up.on('close', end);
    client.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
