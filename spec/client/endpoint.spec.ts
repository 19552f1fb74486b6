import { expect } from 'chai';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { MsrpEndpoint, type EndpointOptions, type ReceivedMessage } from '../../lib/client/endpoint.js';
import { FrameCollector } from '../../lib/msrp/frame-collector.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { MsrpParser } from '../../lib/msrp/parser.js';
import { serializeRequest, type RequestSpec } from '../../lib/msrp/serializer.js';

const PEER = 'msrp://peer.example.com:2855/p1;tcp';
const RELAY = 'msrp://relay.example.com:2855/r1;tcp';

/** The far side of one endpoint's connection: writes raw frames to it and collects what it answers. */
interface RawPeer {
  endpoint: MsrpEndpoint;
  frames: Frame[];
  send(spec: Omit<RequestSpec, 'toPath' | 'fromPath'>): void;
  /** Resolves once `n` frames came back (rejects after 3 s). */
  waitFor(n: number): Promise<Frame[]>;
  close(): Promise<void>;
}

async function rawPeer(options: Partial<EndpointOptions> = {}): Promise<RawPeer> {
  const frames: Frame[] = [];
  let accept: (s: Socket) => void = () => {};
  const accepted = new Promise<Socket>((resolve) => (accept = resolve));
  const server: Server = createServer((s) => {
    s.on('error', () => {});
    const parser = new MsrpParser(
      new FrameCollector(
        (f) => frames.push(f),
        () => {},
      ),
    );
    s.on('data', (d: Buffer) => parser.write(d));
    accept(s);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  const endpoint = await MsrpEndpoint.connect({ host: '127.0.0.1', port, ...options });
  const socket = await accepted;
  return {
    endpoint,
    frames,
    send: (spec) =>
      socket.write(serializeRequest({ ...spec, toPath: endpoint.uri, fromPath: `${RELAY} ${PEER}` })),
    waitFor: async (n) => {
      for (let waited = 0; frames.length < n; waited += 10) {
        if (waited > 3000) throw new Error(`expected ${n} frames, got ${frames.length}`);
        await new Promise((r) => setTimeout(r, 10));
      }
      return frames;
    },
    close: async () => {
      await endpoint.close();
      socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('MsrpEndpoint as a receiver (RFC 4975)', function () {
  this.timeout(10_000);

  it('reassembles overlapping chunks with the later octets, and emits the message once (§7.3.1)', async () => {
    const p = await rawPeer();
    try {
      const got: ReceivedMessage[] = [];
      p.endpoint.on('message', (m: ReceivedMessage) => got.push(m));
      const chunk = (range: string, body: string, flag: '+' | '$'): void =>
        p.send({
          method: 'SEND',
          headers: [
            ['Message-ID', 'ovl1'],
            ['Byte-Range', range],
          ],
          contentType: 'text/plain',
          body,
          flag,
        });
      chunk('1-10/20', 'aaaaaaaaaa', '+');
      chunk('5-14/20', 'BBBBBBBBBB', '+');
      await p.waitFor(2);
      expect(got).to.have.length(0); // 14 of 20 octets: not whole, though 20 were received
      chunk('15-20/20', 'cccccc', '$');
      await p.waitFor(3);
      await new Promise((r) => setTimeout(r, 50));
      expect(got).to.have.length(1);
      expect(got[0]!.body.toString()).to.equal('aaaaBBBBBBBBBBcccccc');
      expect(got[0]!.size).to.equal(20);
      // Out of order: the end first, then the start re-sent over part of it.
      chunk('11-20/20', 'yyyyyyyyyy', '$');
      chunk('1-12/20', 'xxxxxxxxxxxx', '+');
      await p.waitFor(5);
      await new Promise((r) => setTimeout(r, 50));
      expect(got.map((m) => m.body.toString())).to.deep.equal([
        'aaaaBBBBBBBBBBcccccc',
        'xxxxxxxxxxxxyyyyyyyy',
      ]);
    } finally {
      await p.close();
    }
  });

  it('sends a success REPORT for a whole message with Success-Report yes, and none without (§7.1.2)', async () => {
    const p = await rawPeer();
    try {
      for (const [id, sr] of [
        ['sr-yes', 'yes'],
        ['sr-no', 'no'],
      ] as const) {
        p.send({
          method: 'SEND',
          headers: [
            ['Message-ID', id],
            ['Success-Report', sr],
            ['Byte-Range', '1-5/5'],
          ],
          contentType: 'text/plain',
          body: 'hello',
        });
      }
      const frames = await p.waitFor(3);
      await new Promise((r) => setTimeout(r, 50));
      const reports = p.frames.filter((f) => f.kind === 'request' && f.method === 'REPORT');
      expect(
        frames.filter((f) => f.kind === 'response').map((f) => f.kind === 'response' && f.statusCode),
      ).to.deep.equal([200, 200]);
      expect(reports).to.have.length(1);
      const r = reports[0]!;
      expect(r.headers[0]).to.deep.equal(['To-Path', `${RELAY} ${PEER}`]); // the whole From-Path
      expect(getHeader(r.headers, 'message-id')).to.equal('sr-yes');
      expect(getHeader(r.headers, 'byte-range')).to.equal('1-5/5');
      expect(getHeader(r.headers, 'status')).to.equal('000 200 OK');
      expect(getHeader(r.headers, 'success-report')).to.equal(undefined);
      expect(getHeader(r.headers, 'failure-report')).to.equal(undefined);
    } finally {
      await p.close();
    }
  });

  it('sends no success REPORT for a message it refused or left unanswered', async () => {
    for (const code of [486, null]) {
      const p = await rawPeer({ respond: () => code });
      try {
        p.send({
          method: 'SEND',
          headers: [
            ['Message-ID', 'sr-refused'],
            ['Success-Report', 'yes'],
            ['Byte-Range', '1-5/5'],
          ],
          contentType: 'text/plain',
          body: 'hello',
        });
        // A SEND both endpoints answer, so the wait ends on something that comes.
        p.send({ method: 'FROB', transactionId: 'frob0009' });
        await p.waitFor(code === null ? 1 : 2);
        await new Promise((r) => setTimeout(r, 50));
        const got = p.frames.map((f) => (f.kind === 'response' ? f.statusCode : f.method));
        expect(got).to.deep.equal(code === null ? [501] : [486, 501]);
      } finally {
        await p.close();
      }
    }
  });

  it('answers an unknown method 501 along the whole From-Path, unless told it knows it (§10)', async () => {
    const plain = await rawPeer();
    const knowing = await rawPeer({ methods: ['NICKNAME'] });
    try {
      for (const p of [plain, knowing]) {
        p.send({ method: 'FROB', transactionId: 'frob0001' });
        p.send({ method: 'FROB', transactionId: 'frob0002', headers: [['Failure-Report', 'no']] });
        p.send({ method: 'NICKNAME', transactionId: 'nick0001', headers: [['Use-Nickname', '"x"']] });
      }
      await plain.waitFor(2);
      await knowing.waitFor(1);
      await new Promise((r) => setTimeout(r, 50));
      const answered = (p: RawPeer): Array<[string, number, string]> =>
        p.frames.map((f) => [f.transactionId, f.kind === 'response' ? f.statusCode : 0, f.headers[0]![1]]);
      expect(answered(plain)).to.deep.equal([
        ['frob0001', 501, `${RELAY} ${PEER}`],
        ['nick0001', 501, `${RELAY} ${PEER}`],
      ]);
      // NICKNAME is the application's to answer (its `request` event); FROB is still unknown.
      expect(answered(knowing)).to.deep.equal([['frob0001', 501, `${RELAY} ${PEER}`]]);
    } finally {
      await plain.close();
      await knowing.close();
    }
  });

  it('still emits every request, known or not, for the application', async () => {
    const p = await rawPeer();
    try {
      const seen = once(p.endpoint, 'request');
      p.send({ method: 'FROB', transactionId: 'frob0003' });
      const [f] = (await seen) as [Frame];
      expect(f.kind === 'request' && f.method).to.equal('FROB');
    } finally {
      await p.close();
    }
  });
});
