/**
 * Connection-level behaviour of the relay no other spec pinned (mutation testing of lib/relay's listeners,
 * peer, next hops, tokens and options, and of lib/transport): each test fails on one mutant of that code.
 */
import { expect } from 'chai';
import { connect as netConnect, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { getHeader } from '../../lib/msrp/message.js';
import { serializeResponse } from '../../lib/msrp/serializer.js';
import { fakeMsrpServer } from '../helpers/fake-server.js';
import { captureLogger, Harness, sleep, until, type LogLine } from '../helpers/relay.js';
import { testCertificate } from '../helpers/tls.js';
import { handshake, portOf, wsClient, wsRelayOptions, wsUrl } from '../helpers/ws.js';

describe('connection behaviour pinned by mutation testing', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('hands a wss client a TLS Use-Path and a ws client a TCP one when the relay listens on both', async () => {
    const { cert, key } = testCertificate();
    const relay = await h.relay({
      listen: [{ host: '127.0.0.1', port: 0 }],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      wsListen: [{ host: '127.0.0.1', port: 0 }],
      wssListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key, ca: cert },
    });
    // RFC 7977 §5.2.2: the Use-Path URI is the stream listener of the same security.
    const secure = await wsClient(h, relay, 'alice', { secure: true });
    const plain = await wsClient(h, relay, 'bob');
    expect(secure.usePath[0]).to.match(
      new RegExp(`^msrps://127\\.0\\.0\\.1:${portOf(relay, 'tls')}/[^;]+;tcp$`),
    );
    expect(plain.usePath[0]).to.match(
      new RegExp(`^msrp://127\\.0\\.0\\.1:${portOf(relay, 'tcp')}/[^;]+;tcp$`),
    );
  });

  it('listens on WebSocket alone when only wsListen is given (no default TCP listener)', async () => {
    const relay = await h.relay({ listen: undefined, wsListen: [{ host: '127.0.0.1', port: 0 }] });
    expect(relay.addresses().map((a) => a.kind)).to.deep.equal(['ws']);
  });

  it('answers 503 to an upgrade whose X-Forwarded-For client is at --max-connections-per-ip', async () => {
    const relay = await h.relay(wsRelayOptions({ trustedProxies: ['127.0.0.0/8'], maxConnectionsPerIp: 1 }));
    const headers = { 'X-Forwarded-For': '198.51.100.9' };
    const first = await handshake(wsUrl(relay), ['msrp'], { headers });
    const second = await handshake(wsUrl(relay), ['msrp'], { headers });
    first.ws?.terminate();
    second.ws?.terminate();
    expect([first.status, second.status]).to.deep.equal([101, 503]);
    expect(relay.stats().counters.refusedConnections.ws).to.deep.equal({ 'max-connections-per-ip': 1 });
  });

  it('closes a connection from a --proxy-protocol-from address that sends nothing, after the probation time', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({
      proxyProtocolFrom: ['127.0.0.1'],
      probationMs: 300,
      logger: captureLogger(lines),
    });
    const a = relay.addresses()[0]!;
    const sock = netConnect({ host: a.host, port: a.port });
    sock.on('error', () => {});
    const start = Date.now();
    const closed = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 3000);
      sock.once('close', () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    sock.destroy();
    expect(closed, 'closed by the relay').to.equal(true);
    expect(Date.now() - start).to.be.within(250, 2000);
    const refused = lines.filter((l) => l.msg === 'PROXY header refused: closed');
    expect(refused.map((l) => l.fields.err)).to.deep.equal(['no PROXY header decision in time']);
    expect(relay.stats().counters.refusedConnections.tcp).to.deep.equal({ 'proxy-header': 1 });
  });

  /** A TLS next hop that fails the handshake of every dial (closes it at accept) while `refusing` is set. */
  async function tlsNextHop(): Promise<{
    port: number;
    dials: () => number;
    secured: Socket[];
    refusing: { on: boolean };
    close: () => void;
  }> {
    const { cert, key } = testCertificate();
    const refusing = { on: true };
    let dials = 0;
    const secured: Socket[] = [];
    const hop = createTlsServer({ cert, key }, (s) => {
      s.on('error', () => {});
      secured.push(s);
    });
    hop.on('connection', (s: Socket) => {
      dials++;
      if (refusing.on) s.destroy();
    });
    await new Promise<void>((r) => hop.listen(0, '127.0.0.1', () => r()));
    const port = (hop.address() as { port: number }).port;
    return { port, dials: () => dials, secured, refusing, close: () => hop.close() };
  }

  /** An authenticated client of a relay that trusts the test certificate, and its SENDs toward `port`. */
  async function senderToward(
    port: number,
  ): Promise<{ send: () => Promise<number>; dialGone: () => Promise<void> }> {
    const relay = await h.relay({ tls: { ca: testCertificate().cert } });
    const alice = await h.client(relay, 'alice');
    const farEnd = `msrps://127.0.0.1:${port}/farSession;tcp`;
    let n = 0;
    return {
      send: async () =>
        (await alice.send({ toPath: alice.toPathFor([farEnd]), body: 'x', messageId: `m${n++}` }))
          .statuses[0]!,
      dialGone: () => until(() => relay.connectionCount === 1, 3000, 'the dial to end'),
    };
  }

  it('puts a next hop on hold for failed dials only, and starts the back-off over after a good one', async function () {
    this.timeout(15_000);
    const hop = await tlsNextHop();
    try {
      const { send, dialGone } = await senderToward(hop.port);
      // A failed dial: on hold for 1 s.
      expect(await send()).to.equal(200);
      await dialGone();
      await sleep(1100);
      // A good dial, which the next hop then closes: no hold after a connection that was up.
      hop.refusing.on = false;
      expect(await send()).to.equal(200);
      await until(() => hop.secured.length === 1, 3000, 'the handshake');
      hop.secured[0]!.destroy();
      await dialGone();
      hop.refusing.on = true;
      expect(await send(), 'dialed again at once').to.equal(200);
      // The 200 is the relay's own (hop by hop): the dial's connection may reach the hop just after it.
      await until(() => hop.dials() === 3, 3000, 'the third dial').catch(() => undefined);
      expect(hop.dials()).to.equal(3);
      await dialGone();
      // That failure follows a good dial: its hold starts over at 1 s, not doubled.
      await sleep(1200);
      expect(await send(), 'dialed again after 1 s').to.equal(200);
      await until(() => hop.dials() === 4, 3000, 'the fourth dial').catch(() => undefined);
      expect(hop.dials()).to.equal(4);
    } finally {
      hop.close();
    }
  });

  it('doubles the hold of a next hop whose dials fail in a row', async function () {
    this.timeout(15_000);
    const hop = await tlsNextHop();
    try {
      const { send, dialGone } = await senderToward(hop.port);
      expect(await send()).to.equal(200); // fails: 1 s
      await dialGone();
      await sleep(1100);
      expect(await send()).to.equal(200); // fails again: 2 s
      await dialGone();
      await sleep(1200);
      expect(await send(), 'still on hold 1.2 s after the second failure').to.equal(408);
      expect(hop.dials()).to.equal(2);
      await sleep(900);
      expect(await send(), 'dialed again after 2 s').to.equal(200);
      expect(hop.dials()).to.equal(3);
    } finally {
      hop.close();
    }
  });

  it('dials a next hop again instead of writing on a connection to it that sent its FIN', async () => {
    // Chaining audit: a next hop that half-closed may never read again; within the 5 s before the relay
    // tears that connection down, a new request toward the hop goes on a new connection.
    const seen: Array<{ conn: number; messageId: string }> = [];
    let conns = 0;
    const hop = await fakeMsrpServer((socket) => {
      const conn = ++conns;
      return (f) => {
        if (f.kind !== 'request') return;
        seen.push({ conn, messageId: getHeader(f.headers, 'message-id') ?? '' });
        socket.write(
          serializeResponse({
            transactionId: f.transactionId,
            statusCode: 200,
            toPath: f.headers[1]![1].split(' ')[0]!,
            fromPath: f.headers[0]![1].split(' ')[0]!,
          }),
        );
        if (conn === 1) socket.end(); // answers, then its FIN: it still reads, but writes no more
      };
    });
    try {
      const relay = await h.relay();
      const alice = await h.client(relay, 'alice');
      const toPath = alice.toPathFor([`msrp://127.0.0.1:${hop.port}/farSession;tcp`]);
      await alice.send({ toPath, body: 'one', messageId: 'first' });
      await until(() => seen.length === 1, 3000, 'the first SEND at the hop');
      await sleep(200); // the FIN reaches the relay
      await alice.send({ toPath, body: 'two', messageId: 'second' });
      await until(() => seen.length === 2, 3000, 'the second SEND at the hop');
      expect(seen).to.deep.equal([
        { conn: 1, messageId: 'first' },
        { conn: 2, messageId: 'second' },
      ]);
    } finally {
      await hop.close();
    }
  });

  it('dials a next hop again instead of queueing behind a connection that sent its FIN with octets unread', async function () {
    this.timeout(20_000);
    // The hop stops reading, so octets stay queued in the relay; then its FIN. Until the relay tears
    // that connection down (5 s later) it must not take new traffic toward the hop: it would never be read.
    const seen: Array<{ conn: number; messageId: string }> = [];
    const sockets: Socket[] = [];
    const hop = await fakeMsrpServer((socket) => {
      sockets.push(socket);
      const conn = sockets.length;
      if (conn === 1) socket.pause();
      return (f) => {
        if (f.kind === 'request') seen.push({ conn, messageId: getHeader(f.headers, 'message-id') ?? '' });
      };
    });
    try {
      const relay = await h.relay({ transactionTimeoutMs: 60_000 });
      const alice = await h.client(relay, 'alice');
      const carol = await h.client(relay, 'carol');
      const far = `msrp://127.0.0.1:${hop.port}/farSession;tcp`;
      const N = 32 * 1024 * 1024;
      alice.write(
        Buffer.from(
          `MSRP tidFin1 SEND\r\nTo-Path: ${alice.toPathFor([far])}\r\nFrom-Path: ${alice.uri}\r\n` +
            `Message-ID: big\r\nByte-Range: 1-${N}/${N}\r\nContent-Type: text/plain\r\n\r\n` +
            'b'.repeat(N) +
            '\r\n-------tidFin1$\r\n',
          'latin1',
        ),
      );
      await until(() => relay.queuedBytes() > 0, 5000, 'octets queued toward the hop');
      await sleep(1000);
      expect(relay.queuedBytes()).to.be.above(0); // the kernel took what it could: the rest waits here
      sockets[0]!.end(); // its FIN; it stays, reading nothing
      await sleep(200);
      void carol.send({ toPath: carol.toPathFor([far]), body: 'two', messageId: 'second' });
      await until(() => seen.some((x) => x.messageId === 'second'), 4000, 'the second SEND at the hop');
      expect(seen.find((x) => x.messageId === 'second')!.conn).to.equal(2);
    } finally {
      await hop.close();
    }
  });
});
