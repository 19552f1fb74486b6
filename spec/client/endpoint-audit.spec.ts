import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { WebSocketServer, type RawData } from 'ws';
import { MsrpEndpoint, type EndpointOptions, type ReceivedMessage } from '../../lib/client/endpoint.js';
import { FrameCollector, parseFrames } from '../../lib/msrp/frame-collector.js';
import type { Frame } from '../../lib/msrp/message.js';
import { MsrpParser } from '../../lib/msrp/parser.js';
import { serializeRequest, serializeResponse } from '../../lib/msrp/serializer.js';

const PEER = 'msrp://peer.example.com:2855/p1;tcp';
const RELAY = 'msrp://relay.example.com:2855/r1;tcp';

/** What the specs read of an endpoint's private state. */
interface Internals {
  pending: { size: number };
  assemblies: Map<string, { parts: unknown[]; held: number }>;
}

/** A TCP server for one endpoint: `onSocket` sets up the accepted socket. */
async function listen(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => {});
    onSocket(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { server, port: (server.address() as { port: number }).port };
}

/** An endpoint and the far side of its connection, which collects the frames the endpoint writes. */
async function rawPeer(
  options: Partial<EndpointOptions> = {},
  onFrame?: (f: Frame, s: Socket) => void,
): Promise<{
  endpoint: MsrpEndpoint;
  socket: Socket;
  frames: Frame[];
  close(): Promise<void>;
}> {
  const frames: Frame[] = [];
  let accept: (s: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const { server, port } = await listen((s) => {
    const parser = new MsrpParser(
      new FrameCollector(
        (f) => {
          frames.push(f);
          onFrame?.(f, s);
        },
        () => {},
      ),
    );
    s.on('data', (d: Buffer) => parser.write(d));
    accept(s);
  });
  const endpoint = await MsrpEndpoint.connect({ host: '127.0.0.1', port, ...options });
  const socket = await accepted;
  return {
    endpoint,
    socket,
    frames,
    close: async () => {
      await endpoint.close();
      socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function chunk(to: string, messageId: string, range: string, body: Buffer, flag: '+' | '$' | '#'): Buffer {
  return serializeRequest({
    method: 'SEND',
    toPath: to,
    fromPath: `${RELAY} ${PEER}`,
    headers: [
      ['Message-ID', messageId],
      ['Byte-Range', range],
    ],
    contentType: 'text/plain',
    body,
    flag,
  });
}

async function until(cond: () => boolean, what: string): Promise<void> {
  for (let waited = 0; !cond(); waited += 10) {
    if (waited > 3000) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const codes = (frames: Frame[]): Array<number | false> =>
  frames.map((f) => f.kind === 'response' && f.statusCode);

describe('MsrpEndpoint limits and failure paths (client audit)', function () {
  this.timeout(10_000);

  it('answers 413 to the chunks of a message larger than maxMessageBytes and emits nothing (RFC 4975 §7.3.1)', async () => {
    const p = await rawPeer({ maxMessageBytes: 64 * 1024 });
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      const piece = Buffer.alloc(40 * 1024, 0x61);
      // Total unknown (`*`): the second chunk's last octet, 81920, is the first past the limit.
      p.socket.write(chunk(p.endpoint.uri, 'big1', '1-*/*', piece, '+'));
      p.socket.write(chunk(p.endpoint.uri, 'big1', `${piece.length + 1}-*/*`, piece, '+'));
      p.socket.write(chunk(p.endpoint.uri, 'big1', `${2 * piece.length + 1}-*/*`, piece, '$'));
      await until(() => p.frames.length === 3, 'three responses');
      expect(p.frames.map((f) => f.kind === 'response' && f.statusCode)).to.deep.equal([200, 413, 413]);
      expect(got.length).to.equal(0);
      expect((p.endpoint as unknown as Internals).assemblies.size).to.equal(0);
    } finally {
      await p.close();
    }
  });

  it('still counts a message past maxMessageBytes that is only counted (keepBodiesUpTo)', async () => {
    const p = await rawPeer({ maxMessageBytes: 64 * 1024, keepBodiesUpTo: 1024 });
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      const piece = Buffer.alloc(40 * 1024, 0x62);
      p.socket.write(chunk(p.endpoint.uri, 'count1', `1-${piece.length}/${3 * piece.length}`, piece, '+'));
      p.socket.write(chunk(p.endpoint.uri, 'count1', `${piece.length + 1}-*/*`, piece, '+'));
      p.socket.write(chunk(p.endpoint.uri, 'count1', `${2 * piece.length + 1}-*/*`, piece, '$'));
      await until(() => got.length === 1, 'the message');
      expect([got[0]!.size, got[0]!.body.length]).to.deep.equal([3 * piece.length, 0]);
      expect(p.frames.map((f) => f.kind === 'response' && f.statusCode)).to.deep.equal([200, 200, 200]);
    } finally {
      await p.close();
    }
  });

  it('holds at most twice maxMessageBytes for a peer re-sending the same octets, and keeps the last ones', async () => {
    const p = await rawPeer({ maxMessageBytes: 64 * 1024 });
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      const internals = p.endpoint as unknown as Internals;
      for (let i = 0; i < 100; i++)
        p.socket.write(
          chunk(p.endpoint.uri, 'again', '1-*/*', Buffer.alloc(40 * 1024, 0x30 + (i % 10)), '+'),
        );
      await until(() => p.frames.length === 100, '100 responses');
      const a = internals.assemblies.get('again')!;
      expect(a.held).to.be.at.most(2 * 64 * 1024);
      p.socket.write(
        chunk(
          p.endpoint.uri,
          'again',
          `${40 * 1024 + 1}-${40 * 1024 + 2}/${40 * 1024 + 2}`,
          Buffer.from('!!'),
          '$',
        ),
      );
      await until(() => got.length === 1, 'the message');
      const body = got[0]!.body;
      // The 100th copy (i = 99) wrote '9' over every earlier one.
      expect([
        body.length,
        body.subarray(0, 40 * 1024).every((b) => b === 0x39),
        body.subarray(-2).toString(),
      ]).to.deep.equal([40 * 1024 + 2, true, '!!']);
    } finally {
      await p.close();
    }
  });

  it('reassembles at most maxOpenMessages messages at once, dropping the oldest unfinished one', async () => {
    const p = await rawPeer({ maxOpenMessages: 3 });
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      const head = Buffer.from('abc');
      for (const id of ['m1', 'm2', 'm3', 'm4'])
        p.socket.write(chunk(p.endpoint.uri, id, '1-3/6', head, '+'));
      await until(() => p.frames.length === 4, 'four responses');
      expect([...(p.endpoint as unknown as Internals).assemblies.keys()]).to.deep.equal(['m2', 'm3', 'm4']);
      // m1's first half was dropped: its second half alone is not the whole message; m4's completes.
      p.socket.write(chunk(p.endpoint.uri, 'm1', '4-6/6', Buffer.from('def'), '$'));
      p.socket.write(chunk(p.endpoint.uri, 'm4', '4-6/6', Buffer.from('def'), '$'));
      await until(() => got.length === 1, 'm4');
      expect([got[0]!.messageId, got[0]!.body.toString()]).to.deep.equal(['m4', 'abcdef']);
    } finally {
      await p.close();
    }
  });

  it('forgets an unfinished message when told to, and nothing else', async () => {
    const p = await rawPeer();
    try {
      const internals = p.endpoint as unknown as Internals;
      for (const id of ['k1', 'k2'])
        p.socket.write(chunk(p.endpoint.uri, id, '1-3/6', Buffer.from('abc'), '+'));
      await until(() => p.frames.length === 2, 'two responses');
      p.endpoint.forget('k1');
      p.endpoint.forget('never-seen');
      expect([...internals.assemblies.keys()]).to.deep.equal(['k2']);
    } finally {
      await p.close();
    }
  });

  it('rejects a request on a closed connection at once, without a timer', async () => {
    const { server, port } = await listen((s) => s.destroy());
    try {
      const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
      if (!ep.isClosed) await once(ep, 'close');
      const started = Date.now();
      const err = await ep
        .request({ method: 'AUTH', toPath: 'msrp://relay.example.com:2855;tcp', fromPath: ep.uri }, 5000)
        .then(
          () => null,
          (e: Error) => e,
        );
      expect([err?.message, Date.now() - started < 1000]).to.deep.equal([
        'connection closed before AUTH',
        true,
      ]);
      expect((ep as unknown as Internals).pending.size).to.equal(0);
    } finally {
      server.close();
    }
  });

  it('rejects send() once a chunk times out while it waits for drain, with no unhandled rejection', async () => {
    // A peer that stops reading: the endpoint's socket fills and send() waits for 'drain' that never comes.
    const sockets: Socket[] = [];
    const { server, port } = await listen((s) => {
      s.pause();
      sockets.push(s);
    });
    const unhandled: unknown[] = [];
    const onUnhandled = (reason: unknown): void => {
      unhandled.push(reason);
    };
    process.on('unhandledRejection', onUnhandled);
    try {
      const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
      const err = await ep
        .send({
          toPath: PEER,
          body: Buffer.alloc(64 * 1024 * 1024),
          chunkSize: 1024 * 1024,
          timeoutMs: 300,
        })
        .then(
          () => null,
          (e: Error) => e,
        );
      expect(err?.message).to.match(/^no response to SEND /);
      expect(unhandled).to.deep.equal([]);
      ep.socket.destroy();
    } finally {
      process.off('unhandledRejection', onUnhandled);
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  // With Failure-Report yes the chunks waiting for responses fail with the connection; with no, send()
  // itself says its last chunks were never written.
  for (const [failureReport, message] of [
    ['yes', 'connection closed'],
    ['no', 'connection closed during SEND'],
  ] as const) {
    it(`stops sending chunks once the connection closes, and rejects (Failure-Report ${failureReport})`, async () => {
      const { server, port } = await listen((s) => {
        s.pause();
        setTimeout(() => s.destroy(), 200);
      });
      try {
        const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
        const body = Buffer.alloc(32 * 1024 * 1024);
        const err = await ep.send({ toPath: PEER, body, chunkSize: 1024 * 1024, failureReport }).then(
          () => null,
          (e: Error) => e,
        );
        expect([err?.message, (ep as unknown as Internals).pending.size]).to.deep.equal([message, 0]);
      } finally {
        server.close();
      }
    });
  }

  it('closes a TCP connection whose stream it cannot frame, failing waiting requests at once', async () => {
    const { server, port } = await listen((s) => {
      s.once('data', () => s.write('HTTP/1.1 400 Bad Request\r\n\r\n'));
    });
    try {
      const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port });
      const started = Date.now();
      const err = await ep.request({ method: 'SEND', toPath: PEER, fromPath: ep.uri }, 5000).then(
        () => null,
        (e: Error) => e,
      );
      expect([err?.message, ep.isClosed, ep.errors.length > 0, Date.now() - started < 4000]).to.deep.equal([
        'connection closed',
        true,
        true,
        true,
      ]);
    } finally {
      server.close();
    }
  });

  it('reads the next WebSocket message after one that is not an MSRP frame (RFC 7977 §5.1)', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, handleProtocols: () => 'msrp' });
    await once(wss, 'listening');
    wss.on('connection', (ws) => {
      ws.on('message', (d: RawData) => {
        const f = parseFrames(d as Buffer).frames[0]!;
        ws.send(Buffer.from('this is not MSRP\r\n'));
        ws.send(
          serializeResponse({
            transactionId: f.transactionId,
            statusCode: 200,
            toPath: 'msrp://x.invalid:2855/a;ws',
            fromPath: RELAY,
          }),
        );
      });
    });
    const port = (wss.address() as { port: number }).port;
    const ep = await MsrpEndpoint.connect({ host: '', port: 0, ws: { url: `ws://127.0.0.1:${port}/` } });
    try {
      const res = await ep.request(
        { method: 'AUTH', toPath: 'msrp://relay.example.com:2855;ws', fromPath: ep.uri },
        3000,
      );
      expect([res.kind === 'response' && res.statusCode, ep.errors.map((e) => e.error.code)]).to.deep.equal([
        200,
        ['MSRP_ERR_BAD_START_LINE'],
      ]);
    } finally {
      await ep.close();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    }
  });

  // Review of the above (sixteenth session): parse-level refusals answered, send() stops at a 413, ...
  it('answers 413 to a single chunk larger than maxMessageBytes (RFC 4975 §7.1.1, §7.3.1)', async () => {
    const p = await rawPeer({ maxMessageBytes: 64 * 1024 });
    try {
      const big = Buffer.alloc(100 * 1024, 0x61);
      p.socket.write(chunk(p.endpoint.uri, 'one1', `1-${big.length}/${big.length}`, big, '$'));
      // A small message after it shows the endpoint read on.
      p.socket.write(chunk(p.endpoint.uri, 'two2', '1-2/2', Buffer.from('ok'), '$'));
      await until(() => p.frames.length >= 2, 'two responses');
      expect(codes(p.frames)).to.deep.equal([413, 200]);
    } finally {
      await p.close();
    }
  });

  it('answers a SEND it cannot parse 400, and a REPORT it cannot parse nothing (RFC 4975 §7.1.2)', async () => {
    const p = await rawPeer();
    try {
      const bad = (method: string, tid: string): Buffer =>
        Buffer.from(
          `MSRP ${tid} ${method}\r\nTo-Path: ${p.endpoint.uri}\r\nFrom-Path: ${RELAY} ${PEER}\r\n` +
            `Message-ID: ${tid}m\r\nnot a header line\r\n-------${tid}$\r\n`,
          'latin1',
        );
      p.socket.write(bad('REPORT', 'badReport1'));
      p.socket.write(bad('SEND', 'badSend01'));
      p.socket.write(chunk(p.endpoint.uri, 'after1', '1-2/2', Buffer.from('ok'), '$'));
      await until(() => p.frames.length >= 2, 'two responses');
      await new Promise((r) => setTimeout(r, 100));
      expect(p.frames.map((f) => [f.transactionId, f.kind === 'response' && f.statusCode])).to.deep.equal([
        ['badSend01', 400],
        [p.frames[1]!.transactionId, 200],
      ]);
    } finally {
      await p.close();
    }
  });

  it('answers 413 to an over-limit chunk of a count-only message, as documented', async () => {
    const p = await rawPeer({ maxMessageBytes: 64 * 1024, keepBodiesUpTo: 1024 });
    try {
      const big = Buffer.alloc(100 * 1024, 0x62);
      p.socket.write(chunk(p.endpoint.uri, 'cnt1', `1-${big.length}/${2 * big.length}`, big, '+'));
      p.socket.write(chunk(p.endpoint.uri, 'two2', '1-2/2', Buffer.from('ok'), '$'));
      await until(() => p.frames.length >= 2, 'two responses');
      expect(codes(p.frames)).to.deep.equal([413, 200]);
    } finally {
      await p.close();
    }
  });

  it('an abort (#) of a message it never saw does not evict an unfinished one', async () => {
    const p = await rawPeer({ maxOpenMessages: 2 });
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      p.socket.write(chunk(p.endpoint.uri, 'm1', '1-3/6', Buffer.from('abc'), '+'));
      p.socket.write(chunk(p.endpoint.uri, 'm2', '1-3/6', Buffer.from('abc'), '+'));
      p.socket.write(chunk(p.endpoint.uri, 'gone', '1-3/6', Buffer.from('xyz'), '#'));
      p.socket.write(chunk(p.endpoint.uri, 'm1', '4-6/6', Buffer.from('def'), '$'));
      p.socket.write(chunk(p.endpoint.uri, 'm2', '4-6/6', Buffer.from('def'), '$'));
      await until(() => p.frames.length === 5, 'five responses');
      await until(() => got.length === 2, 'both messages');
      expect(got.map((m) => m.messageId)).to.deep.equal(['m1', 'm2']);
    } finally {
      await p.close();
    }
  });

  it('send() stops writing chunks of a message once a chunk is answered 413 (RFC 4975 §7.3.1)', async () => {
    // The peer refuses the first chunk at once; the sender is held on drain by a slow reader.
    let seen = 0;
    const p = await rawPeer({}, (f, s) => {
      if (f.kind !== 'request') return;
      seen++;
      s.write(
        serializeResponse({
          transactionId: f.transactionId,
          statusCode: seen === 1 ? 413 : 200,
          toPath: f.headers[2]![1].split(' ')[0]!,
          fromPath: RELAY,
        }),
      );
    });
    try {
      const res = await p.endpoint.send({
        toPath: PEER,
        body: Buffer.alloc(32 * 1024 * 1024),
        chunkSize: 256 * 1024,
      });
      // 128 chunks in all: after the 413 at most those already written may follow.
      expect(res.statuses[0]).to.equal(413);
      expect(seen).to.be.below(128);
    } finally {
      await p.close();
    }
  });

  it('answers a good SEND that shares a TCP read with bytes it cannot frame', async () => {
    const p = await rawPeer();
    try {
      p.socket.write(
        Buffer.concat([
          chunk(p.endpoint.uri, 'good1', '1-2/2', Buffer.from('ok'), '$'),
          Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'),
        ]),
      );
      await new Promise((r) => setTimeout(r, 300));
      expect([p.endpoint.isClosed, codes(p.frames)]).to.deep.equal([true, [200]]);
    } finally {
      await p.close();
    }
  });
});
