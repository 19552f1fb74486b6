import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { get as httpGet } from 'node:http';
import { connect, type Socket } from 'node:net';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { parseUri } from '../../lib/msrp/uri.js';
import { captureLogger, Harness, nextMessage, sleep, until, USERS, type LogLine } from '../helpers/relay.js';
import { sendFlagLate, sendHead } from '../helpers/wire.js';
import { testCertificate } from '../helpers/tls.js';
import {
  closeCode,
  connectWs,
  handshake,
  portOf,
  wsClient,
  wsRelayOptions,
  wsRelayUri,
  wssRelayOptions,
  wsUrl,
} from '../helpers/ws.js';

describe('relay over WebSocket (RFC 7977)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('lists its WebSocket listeners among its addresses', async () => {
    const relay = await h.relay(wsRelayOptions());
    expect(relay.addresses().map((a) => [a.kind, a.host])).to.deep.equal([
      ['tcp', '127.0.0.1'],
      ['ws', '127.0.0.1'],
    ]);
  });

  it('authenticates with the ;ws To-Path URI as digest-uri and hands out a ;tcp Use-Path on the TCP port', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await connectWs(h, relay);
    expect(carol.uri).to.match(/^msrp:\/\/[a-z0-9]+\.invalid:2855\/[A-Za-z0-9]+;ws$/);
    const res = await carol.auth({
      relayUri: wsRelayUri(relay, 'carol'),
      username: 'carol',
      password: USERS.carol,
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    // RFC 7977 §8.1.2: the 200 goes to the client's ;ws URI, from the URI the AUTH addressed.
    expect(res.headers.slice(0, 2)).to.deep.equal([
      ['To-Path', carol.uri],
      ['From-Path', wsRelayUri(relay, 'carol')],
    ]);
    const usePath = parseUri(getHeader(res.headers, 'use-path')!);
    expect([usePath.scheme, usePath.host, usePath.port, usePath.transport]).to.deep.equal([
      'msrp',
      '127.0.0.1',
      portOf(relay, 'tcp'),
      'tcp',
    ]);
    expect([relay.counters.authChallenged, relay.counters.authOk]).to.deep.equal([1, 1]);
  });

  it('carries a 5 MiB binary file byte-identical from a WebSocket client to a TCP client and back', async function () {
    this.timeout(40_000);
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const file = randomBytes(5 * 1024 * 1024);
    const toBob = nextMessage(bob, 20_000);
    const sent = await carol.send({
      toPath: carol.toPathFor(bob.path),
      body: file,
      chunkSize: 64 * 1024,
      contentType: 'application/octet-stream',
    });
    expect(sent.statuses.length).to.equal(80);
    expect(sent.statuses.every((s) => s === 200)).to.equal(true);
    const m = await toBob;
    expect(m.body.equals(file)).to.equal(true);
    // RFC 7977 §8.2.2: toward the TCP peer From-Path is <relay ;tcp> … <client ;ws>.
    expect(m.fromPath).to.equal([bob.usePath[0], carol.usePath[0], carol.uri].join(' '));
    const back = Buffer.from(file).reverse();
    const toCarol = nextMessage(carol, 20_000);
    const res = await bob.send({ toPath: bob.toPathFor(carol.path), body: back, chunkSize: 256 * 1024 });
    expect(res.statuses.every((s) => s === 200)).to.equal(true);
    expect((await toCarol).body.equals(back)).to.equal(true);
    expect([carol.errors, bob.errors]).to.deep.equal([[], []]);
  });

  it('carries messages between two WebSocket clients both ways', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const alice = await wsClient(h, relay, 'alice');
    const file = randomBytes(300_000);
    const toAlice = nextMessage(alice, 10_000);
    const res = await carol.send({ toPath: carol.toPathFor(alice.path), body: file, chunkSize: 100_000 });
    expect(res.statuses).to.deep.equal([200, 200, 200]);
    expect((await toAlice).body.equals(file)).to.equal(true);
    const toCarol = nextMessage(carol);
    await alice.send({ toPath: alice.toPathFor(carol.path), body: 'and back' });
    const m = await toCarol;
    expect(m.body.toString()).to.equal('and back');
    expect(m.fromPath).to.equal([carol.usePath[0], alice.usePath[0], alice.uri].join(' '));
  });

  it('gives a chunk received with range-end `*` an exact Byte-Range toward a WebSocket client', async () => {
    // Chaining audit: `1-*/10` went on as received, though the relay sends it whole and knows its end
    // (RFC 4976 §6.7; architecture.md: exact Byte-Ranges toward WebSocket).
    const relay = await h.relay(wsRelayOptions());
    const bob = await h.client(relay, 'bob');
    const carol = await wsClient(h, relay, 'carol');
    const got = new Promise<Frame>((resolve) => carol.once('request', resolve));
    const res = await bob.request({
      method: 'SEND',
      toPath: bob.toPathFor(carol.path),
      fromPath: bob.uri,
      headers: [
        ['Message-ID', 'star0001'],
        ['Byte-Range', '1-*/10'],
      ],
      contentType: 'text/plain',
      body: '0123456789',
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    expect(getHeader((await got).headers, 'byte-range')).to.equal('1-10/10');
  });

  it('re-chunks a 100 000-octet chunk from TCP into complete chunks of one WebSocket message each', async () => {
    const max = 16_384;
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: max }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const raw: Buffer[] = [];
    carol.ws!.on('message', (d: Buffer) => raw.push(d));
    const file = randomBytes(100_000);
    const got = nextMessage(carol, 10_000);
    const res = await bob.send({ toPath: bob.toPathFor(carol.path), body: file, messageId: 'rechunk100k' });
    expect(res.statuses).to.deep.equal([200]);
    expect((await got).body.equals(file)).to.equal(true);
    const frames: Frame[] = raw.map((msg) => {
      const { frames: one, errors } = parseFrames(msg);
      expect(errors).to.deep.equal([]);
      expect(one.length).to.equal(1);
      return one[0]!;
    });
    // Body per message: wsMaxMessageBytes minus 4 KiB kept for head and end-line.
    const piece = max - 4096;
    const expected: string[] = [];
    for (let start = 1; start <= 100_000; start += piece)
      expected.push(`${start}-${Math.min(start + piece - 1, 100_000)}/100000`);
    expect(expected.length).to.equal(9);
    expect(frames.map((f) => getHeader(f.headers, 'byte-range'))).to.deep.equal(expected);
    expect(frames.map((f) => f.flag).join('')).to.equal('++++++++$');
    expect(new Set(frames.map((f) => getHeader(f.headers, 'message-id')))).to.deep.equal(
      new Set(['rechunk100k']),
    );
    expect(new Set(frames.map((f) => f.transactionId)).size).to.equal(9);
    expect(raw.every((msg) => msg.length <= max)).to.equal(true);
    expect(Buffer.concat(frames.map((f) => f.body!)).equals(file)).to.equal(true);
  });

  it('stops the rest of a chunk toward a WebSocket client that refused one of its messages (413)', async () => {
    // RFC 4975 §7.1: a receiver answers 413 to stop a transfer. Toward WebSocket each message is a
    // sub-chunk of its own; before, the refusal became a REPORT but the rest of the chunk still went.
    const max = 16_384;
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: max }));
    const carol = await wsClient(h, relay, 'carol', { respond: () => 413 });
    const bob = await h.client(relay, 'bob');
    const raw: Buffer[] = [];
    carol.ws!.on('message', (d: Buffer) => raw.push(d));
    const responses: string[] = [];
    bob.socket.on('data', (d: Buffer) => {
      for (const m of d.toString('latin1').matchAll(/^MSRP refuse01 (\d{3})/gm)) responses.push(m[1]!);
    });
    const body = randomBytes(100_000);
    const head = sendHead(bob, carol, 'refuse01', [
      ['Message-ID', 'refusedws1'],
      ['Byte-Range', '1-100000/100000'],
    ]);
    bob.write(Buffer.concat([Buffer.from(head, 'latin1'), body.subarray(0, 30_000)]));
    await until(() => raw.length >= 2, 2000, 'the first messages at carol');
    await until(() => (relay.counters.responsesIn['413'] ?? 0) >= 1, 2000, "carol's 413 at the relay");
    bob.write(Buffer.concat([body.subarray(30_000), Buffer.from('\r\n-------refuse01$\r\n', 'latin1')]));
    await until(() => responses.length === 1, 2000, "bob's response");
    await sleep(200);
    // Bob hears the 413 on his own transaction (still sending, Failure-Report yes) and nothing else.
    expect(responses).to.deep.equal(['413']);
    // Carol got only what was out before her answer (at most the 30,000 octets sent by then).
    expect(raw.length).to.be.within(2, 3);
  });

  it('carries a chunk whose flag comes late to a WebSocket client under a small queue limit, no message empty', async () => {
    // Congested, the writer sends WebSocket messages shorter than the limit, but never the declared last
    // octet before the flag: the chunk's last message carries it, not an empty `30001-30000/30000`.
    const relay = await h.relay(wsRelayOptions({ maxQueuedBytes: 8192, wsMaxMessageBytes: 16_384 }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const raw: Buffer[] = [];
    carol.ws!.on('message', (d: Buffer) => raw.push(d));
    const got = nextMessage(carol, 5000);
    const body = await sendFlagLate(relay, bob, carol, 'late0001', 'lateflag1', 30_000);
    expect((await got).body.equals(body)).to.equal(true);
    const frames = raw.map((m) => parseFrames(m).frames[0]!);
    expect(frames.every((f) => (f.body?.length ?? 0) > 0)).to.equal(true);
    expect(frames.at(-1)!.flag).to.equal('$');
    expect(getHeader(frames.at(-1)!.headers, 'byte-range')).to.match(/-30000\/30000$/);
  });

  it('keeps its event loop turning while it forwards to a WebSocket client that sent its close frame', async () => {
    // Review finding: with a small --max-queued-bytes the writer asked a closing WebSocket connection to
    // call back once flushed; the empty write failed at once, the callback came anyway and the writer
    // asked again, in a nextTick loop that starved timers and I/O (the process hung).
    const relay = await h.relay(wsRelayOptions({ maxQueuedBytes: 8192 }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    // Carol's close frame (masked, code 1000) goes out raw and her socket stops reading: the relay answers
    // and ends its half, then waits up to 30 s for her FIN, its connection not closed meanwhile.
    const sock = (carol.ws as unknown as { _socket: Socket })._socket;
    const mask = Buffer.from([1, 2, 3, 4]);
    sock.write(Buffer.concat([Buffer.from([0x88, 0x82]), mask, Buffer.from([0x03 ^ 1, 0xe8 ^ 2])]));
    sock.pause();
    // Nothing on the relay shows the close frame was read; if it was not within this, the test proves
    // nothing but cannot fail.
    await sleep(100);
    const head = sendHead(bob, carol, 'closing1', [
      ['Message-ID', 'closing1'],
      ['Byte-Range', '1-9000/9000'],
    ]);
    bob.write(
      Buffer.concat([
        Buffer.from(head, 'latin1'),
        randomBytes(9000),
        Buffer.from('\r\n-------closing1$\r\n'),
      ]),
    );
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    await until(() => ticks >= 20, 2000, 'timers firing');
    clearInterval(timer);
    expect(ticks).to.be.at.least(20);
  });

  it('binds the Use-Path token to the WebSocket connection: another connection using it gets 403', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const mallory = await connectWs(h, relay);
    const atBob: Frame[] = [];
    bob.on('request', (f: Frame) => atBob.push(f));
    const res = await mallory.request({
      method: 'SEND',
      toPath: [carol.usePath[0], bob.uri].join(' '),
      fromPath: carol.uri,
      headers: [['Message-ID', 'spoofed1']],
      contentType: 'text/plain',
      body: 'spoofed',
    });
    expect(res.kind === 'response' && [res.statusCode, res.comment]).to.deep.equal([
      403,
      'Token used from a foreign connection',
    ]);
    const ok = await carol.send({ toPath: carol.toPathFor(bob.path), body: 'genuine' });
    expect(ok.statuses).to.deep.equal([200]);
    await until(() => atBob.length === 1, 3000, 'the genuine message');
    expect(atBob[0]!.body!.toString()).to.equal('genuine');
  });

  it('treats the client URI with ;tcp instead of ;ws as a different URI (403)', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const res = await carol.request({
      method: 'SEND',
      toPath: carol.toPathFor(bob.path),
      fromPath: carol.uri.replace(/;ws$/, ';tcp'),
      headers: [['Message-ID', 'wrongTransport']],
      contentType: 'text/plain',
      body: 'x',
    });
    expect(res.kind === 'response' && [res.statusCode, res.comment]).to.deep.equal([
      403,
      'From-Path does not match the authenticated client',
    ]);
  });

  it('accepts a port-less .invalid ;ws client URI both ways', async () => {
    const relay = await h.relay(wsRelayOptions());
    const uri = 'msrp://q8zf2kd9wl3m.invalid/Wc7eP0s1aB;ws';
    const carol = await wsClient(h, relay, 'carol', { uri });
    const bob = await h.client(relay, 'bob');
    const toBob = nextMessage(bob);
    await carol.send({ toPath: carol.toPathFor(bob.path), body: 'from a port-less URI' });
    expect((await toBob).fromPath.split(' ').at(-1)).to.equal(uri);
    const toCarol = nextMessage(carol);
    await bob.send({ toPath: bob.toPathFor(carol.path), body: 'to a port-less URI' });
    const m = await toCarol;
    expect(m.body.toString()).to.equal('to a port-less URI');
    expect(m.headers[0]).to.deep.equal(['To-Path', uri]);
  });

  it('pauses the TCP source of a slow WebSocket reader, keeping queued bytes near maxQueuedBytes', async function () {
    this.timeout(60_000);
    const maxQueuedBytes = 256 * 1024;
    const relay = await h.relay(wsRelayOptions({ maxQueuedBytes }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    carol.ws!.pause();
    const file = randomBytes(32 * 1024 * 1024);
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, relay.queuedBytes())), 2);
    try {
      const got = nextMessage(carol, 50_000);
      const sending = bob.send({ toPath: bob.toPathFor(carol.path), body: file, chunkSize: 64 * 1024 });
      let sendDone = false;
      void sending.then(() => (sendDone = true));
      await until(() => relay.queuedBytes() > maxQueuedBytes, 20_000, 'the queue toward carol to fill');
      // Held for a while: the queue stays bounded although 32 MiB wait behind it.
      const watchUntil = Date.now() + 300;
      await until(() => Date.now() > watchUntil, 1000, 'the observation window');
      expect(sendDone).to.equal(false);
      expect(peak).to.be.at.most(maxQueuedBytes + 256 * 1024);
      carol.ws!.resume();
      const m = await got;
      const res = await sending;
      expect(m.body.equals(file)).to.equal(true);
      expect(res.statuses.every((s) => s === 200)).to.equal(true);
      expect(peak).to.be.at.most(maxQueuedBytes + 256 * 1024);
    } finally {
      clearInterval(sampler);
    }
  });

  it('answers 413 when a head toward a WebSocket client leaves no room within wsMaxMessageBytes', async () => {
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: 2048 }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const res = await bob.request({
      method: 'SEND',
      toPath: bob.toPathFor(carol.path),
      fromPath: bob.uri,
      headers: [
        ['Message-ID', 'bigHead1'],
        ['X-Padding', 'p'.repeat(1000)],
      ],
      contentType: 'text/plain',
      body: 'x',
    });
    expect(res.kind === 'response' && [res.statusCode, res.comment]).to.deep.equal([
      413,
      'Head too large for WebSocket',
    ]);
    const small = nextMessage(carol);
    await bob.send({ toPath: bob.toPathFor(carol.path), body: 'small head' });
    expect((await small).body.toString()).to.equal('small head');
  });

  it('answers 413 to a whole request (not a SEND) that would not fit one WebSocket message', async () => {
    // Audit: only SEND chunks were cut to wsMaxMessageBytes; an extension method's body went out whole.
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: 4096 }));
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const frames: string[] = [];
    carol.on('request', (f: Frame) => frames.push(f.kind === 'request' ? f.method : ''));
    const nickname = (body: string): Promise<Frame> =>
      bob.request({
        method: 'NICKNAME',
        toPath: bob.toPathFor(carol.path),
        fromPath: bob.uri,
        contentType: 'text/plain',
        body,
      });
    const big = await nickname('n'.repeat(30_000));
    expect(big.kind === 'response' && [big.statusCode, big.comment]).to.deep.equal([
      413,
      'Too large for one WebSocket message',
    ]);
    // One that fits goes through, and the test client's 501 (a method it does not know) comes back.
    const small = await nickname('short');
    expect(small.kind === 'response' && small.statusCode).to.equal(501);
    expect(frames).to.deep.equal(['NICKNAME']);
  });

  it('logs and counts the upgrades it refuses, for their Origin (403) or subprotocol (400)', async () => {
    // Observability audit: a web client refused for its Origin failed with nothing in the log or metrics.
    const lines: LogLine[] = [];
    const relay = await h.relay(
      wsRelayOptions({ wsAllowedOrigins: ['https://chat.example.com'], logger: captureLogger(lines) }),
    );
    const url = wsUrl(relay);
    const origin = await handshake(url, ['msrp'], { origin: 'https://evil.example.net' });
    const proto = await handshake(url, ['chat']);
    expect([origin.status, proto.status]).to.deep.equal([403, 400]);
    const refused = lines.filter((l) => l.msg === 'WebSocket upgrade refused').map((l) => l.fields);
    expect(refused.map((f) => [f.transport, f.status, f.err])).to.deep.equal([
      ['ws', 403, 'Origin https://evil.example.net is not allowed'],
      ['ws', 400, 'Sec-WebSocket-Protocol must offer "msrp"'],
    ]);
    expect(relay.counters.refusedConnections.ws).to.deep.equal({ 'ws-origin': 1, 'ws-subprotocol': 1 });
  });

  it('counts failed TLS handshakes (TLS, WSS) and malformed HTTP requests (WS, answered 400)', async () => {
    // TLS/WS audit: 60 failed TLS handshakes and 1,000 malformed upgrades left no trace in logs or metrics.
    const relay = await h.relay({ ...wssRelayOptions(), wsListen: [{ host: '127.0.0.1', port: 0 }] });
    const garbage = async (port: number, bytes: string): Promise<string> => {
      const sock = connect(port, '127.0.0.1');
      sock.on('error', () => {});
      let got = '';
      sock.on('data', (d: Buffer) => (got += d.toString('latin1')));
      sock.write(bytes);
      await new Promise<void>((resolve) => sock.on('close', () => resolve()));
      return got;
    };
    // A connect-and-close (a health check) is no failed handshake (review).
    for (const kind of ['tls', 'wss'] as const) {
      const probe = connect(portOf(relay, kind), '127.0.0.1');
      await new Promise<void>((resolve) => probe.on('connect', () => resolve()));
      probe.end();
      await new Promise<void>((resolve) => probe.on('close', () => resolve()));
    }
    await garbage(portOf(relay, 'tls'), 'GET / HTTP/1.1\r\nHost: x\r\n\r\n'); // plain HTTP to TLS
    await garbage(portOf(relay, 'wss'), '\x16\x03\x01\x00\x05hello');
    const answer = await garbage(portOf(relay, 'ws'), 'GET / HTTP/1.1\r\nBad Header Line\r\n\r\n');
    expect(answer).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/);
    // An upgrade `ws` would refuse by itself (no Sec-WebSocket-Key): answered 400, and now counted.
    const keyless = await garbage(
      portOf(relay, 'ws'),
      'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Protocol: msrp\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    expect(keyless).to.match(/^HTTP\/1\.1 400 Bad Request\r\n/);
    await until(() => relay.counters.refusedConnections.ws['http-malformed'] === 1, 2000, 'the count');
    expect(relay.counters.refusedConnections.tls).to.deep.equal({ 'tls-handshake': 1 });
    expect(relay.counters.refusedConnections.wss).to.deep.equal({ 'tls-handshake': 1 });
    expect(relay.counters.refusedConnections.ws).to.deep.equal({ 'http-malformed': 1, 'ws-handshake': 1 });
  });

  it('passes wsAllowedOrigins and onHttpRequest through to its WebSocket listeners', async () => {
    const relay = await h.relay(
      wsRelayOptions({
        wsAllowedOrigins: ['https://chat.example.com'],
        onHttpRequest: (_req, res) => {
          res.writeHead(204);
          res.end();
        },
      }),
    );
    const url = wsUrl(relay);
    const bad = await handshake(url, ['msrp'], { origin: 'https://evil.example.net' });
    const good = await handshake(url, ['msrp'], { origin: 'https://chat.example.com' });
    good.ws!.terminate();
    expect([bad.status, good.status]).to.deep.equal([403, 101]);
    const status = await new Promise<number>((resolve, reject) =>
      httpGet(url.replace('ws:', 'http:'), (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', reject),
    );
    expect(status).to.equal(204);
  });

  it('carries messages both ways between a wss client and a TLS client', async () => {
    const relay = await h.relay(wssRelayOptions());
    const carol = await wsClient(h, relay, 'carol', { secure: true });
    expect(carol.uri).to.match(/^msrps:\/\/[a-z0-9]+\.invalid:2855\/[A-Za-z0-9]+;ws$/);
    const usePath = parseUri(carol.usePath[0]!);
    expect([usePath.scheme, usePath.port, usePath.transport]).to.deep.equal([
      'msrps',
      portOf(relay, 'tls'),
      'tcp',
    ]);
    const bob = await h.connect(relay, { tls: { ca: testCertificate().cert, servername: 'localhost' } });
    await bob.auth({
      relayUri: `msrps://bob@127.0.0.1:${portOf(relay, 'tls')};tcp`,
      username: 'bob',
      password: USERS.bob,
    });
    const file = randomBytes(1024 * 1024);
    const toBob = nextMessage(bob, 10_000);
    const res = await carol.send({ toPath: carol.toPathFor(bob.path), body: file, chunkSize: 64 * 1024 });
    expect(res.statuses.every((s) => s === 200)).to.equal(true);
    expect((await toBob).body.equals(file)).to.equal(true);
    const toCarol = nextMessage(carol, 10_000);
    await bob.send({ toPath: bob.toPathFor(carol.path), body: file });
    expect((await toCarol).body.equals(file)).to.equal(true);
  });

  it('answers a bodiless SEND keep-alive over WebSocket like any other', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const res = await carol.request({
      method: 'SEND',
      toPath: carol.toPathFor(bob.path),
      fromPath: carol.uri,
      headers: [
        ['Message-ID', 'keepalive1'],
        ['Byte-Range', '1-0/0'],
      ],
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    expect(carol.errors).to.deep.equal([]);
  });

  it('closes WebSocket clients with 1001 and stops listening when the relay closes', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const url = wsUrl(relay);
    const code = closeCode(carol.ws!);
    await relay.close(100);
    expect(await code).to.equal(1001);
    let refused = '';
    await handshake(url, ['msrp']).catch((err: Error & { code?: string }) => (refused = err.code ?? ''));
    expect(refused).to.equal('ECONNREFUSED');
  });
});
