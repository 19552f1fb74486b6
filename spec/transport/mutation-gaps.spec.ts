/**
 * Transport behaviour no other spec pinned (mutation testing of lib/transport): the bounds of a PROXY
 * v1 line, the IPv6 text a v2 header gives, the octets a WebSocket connection on probation may hold, and
 * the plain HTTP requests one socket of a WebSocket listener may make.
 */
import { expect } from 'chai';
import { connect as netConnect, type Socket } from 'node:net';
import { WebSocket } from 'ws';
import {
  forwardedClient,
  parseProxyHeader,
  ProxyHeaderError,
  TrustedProxies,
} from '../../lib/transport/proxy.js';
import { listenWs, PROBATION_MAX_BUFFERED, type WsListener } from '../../lib/transport/ws.js';
import { sleep, until } from '../helpers/relay.js';
import { handshake } from '../helpers/ws.js';

/** A PROXY v2 PROXY-command header with an IPv6 (TCP6) address block. */
function v2Tcp6(src: number[], sport: number): Buffer {
  const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const rest = Buffer.alloc(4 + 36);
  rest[0] = 0x21; // version 2, PROXY
  rest[1] = 0x21; // AF_INET6, STREAM
  rest.writeUInt16BE(36, 2);
  src.forEach((g, i) => rest.writeUInt16BE(g, 4 + i * 2));
  rest.writeUInt16BE(sport, 4 + 32);
  rest.writeUInt16BE(2855, 4 + 34);
  return Buffer.concat([head, rest]);
}

describe('transport behaviour pinned by mutation testing', () => {
  describe('PROXY v1 line length (the specification: 107 octets at most, CRLF included)', () => {
    // An IPv6 address with a dotted IPv4 tail is 45 characters: long enough to build lines of any length.
    const src = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255';
    const dst = 'ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.25';
    const line = (dport: string): string => `PROXY TCP6 ${src} ${dst} 1 ${dport}\r\n`;

    it('reads a line of exactly 107 octets and refuses one of 108', () => {
      const longest = line('2');
      expect(longest.length).to.equal(107);
      expect(parseProxyHeader(Buffer.from(longest + 'MSRP a AUTH\r\n'))).to.deep.equal({
        length: 107,
        source: { address: src, port: 1 },
      });
      const over = line('22');
      expect(over.length).to.equal(108);
      expect(() => parseProxyHeader(Buffer.from(over))).to.throw(ProxyHeaderError);
    });

    it('waits for a line end up to 106 octets, and refuses 107 octets without one at once', () => {
      const start = Buffer.from(line('2')).subarray(0, 106); // no LF yet
      expect(parseProxyHeader(start)).to.equal(null);
      const noEnd = Buffer.concat([start, Buffer.from('x')]);
      expect(() => parseProxyHeader(noEnd)).to.throw(ProxyHeaderError, /longer than 107/);
    });
  });

  describe('PROXY v2 IPv6 source as text (RFC 5952 §4.2)', () => {
    it('writes no :: for a single zero group, and :: for the first of two equal runs', () => {
      const one = parseProxyHeader(v2Tcp6([0x2001, 0xdb8, 0, 1, 1, 1, 1, 1], 7));
      expect(one?.source).to.deep.equal({ address: '2001:db8:0:1:1:1:1:1', port: 7 });
      const tie = parseProxyHeader(v2Tcp6([0x2001, 0xdb8, 0, 0, 1, 0, 0, 1], 7));
      expect(tie?.source).to.deep.equal({ address: '2001:db8::1:0:0:1', port: 7 });
    });
  });

  describe('X-Forwarded-For', () => {
    it('takes no client when the walk from the right meets an entry that is not an address', () => {
      // The entries left of it were written by whoever sent the request: none of them is proof.
      const trusted = new TrustedProxies(['10.0.0.0/8']);
      expect(forwardedClient('203.0.113.9, unknown', trusted)).to.equal(undefined);
      expect(forwardedClient('203.0.113.9, garbage, 10.0.0.2', trusted)).to.equal(undefined);
    });
  });

  describe('a WebSocket connection on probation', () => {
    const listeners: WsListener[] = [];
    const clients: WebSocket[] = [];

    afterEach(async () => {
      for (const c of clients) c.terminate();
      clients.length = 0;
      await Promise.all(listeners.map((l) => l.close()));
      listeners.length = 0;
    });

    /** A listener whose connections stay on probation; `closed[i]` is the close reason of the i-th. */
    async function probationListener(): Promise<{ url: string; data: Buffer[]; closed: (string | null)[] }> {
      const data: Buffer[] = [];
      const closed: (string | null)[] = [];
      const l = await listenWs({
        host: '127.0.0.1',
        port: 0,
        allowedOrigins: [],
        maxPayload: 1024 * 1024,
        onConnection: (conn) => {
          const i = closed.push(null) - 1;
          conn.attach({
            onData: (d) => data.push(Buffer.from(d)),
            onDrain: () => {},
            onClose: (reason) => (closed[i] = reason),
          });
        },
      });
      listeners.push(l);
      return { url: `ws://127.0.0.1:${l.port}/`, data, closed };
    }

    async function client(url: string): Promise<WebSocket> {
      const hs = await handshake(url, ['msrp']);
      if (hs.ws === null) throw new Error(`handshake refused with ${hs.status}`);
      clients.push(hs.ws);
      return hs.ws;
    }

    const rawSocket = (ws: WebSocket): Socket => (ws as unknown as { _socket: Socket })._socket;

    it('keeps a connection holding exactly 80 KiB of an unfinished message, and tears it down one octet past', async () => {
      const { url, closed } = await probationListener();
      const ws = await client(url);
      // A masked binary frame header (14 octets, zero mask) announcing 1 MiB, then payload up to the limit.
      const head = Buffer.alloc(14);
      head[0] = 0x82;
      head[1] = 0x80 | 127;
      head.writeBigUInt64BE(BigInt(1024 * 1024), 2);
      const payload = Buffer.alloc(PROBATION_MAX_BUFFERED - head.length, 0x61);
      rawSocket(ws).write(Buffer.concat([head, payload]));
      await sleep(300);
      expect(closed).to.deep.equal([null]);
      rawSocket(ws).write(Buffer.from('a'));
      await until(() => closed[0] !== null, 3000, 'the teardown');
      expect(closed[0]).to.equal('ws-message-too-large-on-probation');
    });

    it('does not count the pings a client sends on probation as octets of a message', async () => {
      const { url, data, closed } = await probationListener();
      const ws = await client(url);
      // 700 pings of 125 octets: 91,700 octets on the wire, more than the probation limit, none a message.
      // In rounds of 20, each answered before the next (`ws` drops a peer that bursts many at once).
      let pongs = 0;
      ws.on('pong', () => pongs++);
      for (let round = 1; round <= 35 && closed[0] === null; round++) {
        for (let i = 0; i < 20; i++) ws.ping(Buffer.alloc(125, 0x70));
        await until(() => pongs === round * 20 || closed[0] !== null, 3000, 'the pongs');
      }
      ws.send(Buffer.from('MSRP a1 AUTH\r\n-------a1$\r\n'));
      await until(() => data.length === 1 || closed[0] !== null, 3000, 'the message');
      expect([pongs, data.length, closed[0]]).to.deep.equal([700, 1, null]);
    });
  });

  describe('the Origin allow-list', () => {
    let listener: WsListener | null = null;
    afterEach(async () => {
      await listener?.close();
      listener = null;
    });

    it('accepts a handshake without Origin (not a browser) even with allowedOrigins set', async () => {
      listener = await listenWs({
        host: '127.0.0.1',
        port: 0,
        allowedOrigins: ['https://chat.example.com'],
        onConnection: () => {},
      });
      const hs = await handshake(`ws://127.0.0.1:${listener.port}/`, ['msrp']);
      hs.ws?.terminate();
      expect(hs.status).to.equal(101);
    });
  });

  describe('plain HTTP on a WebSocket listener', () => {
    let listener: WsListener | null = null;
    afterEach(async () => {
      await listener?.close();
      listener = null;
    });

    it('serves at most 16 page requests on one connection: the 17th pipelined one gets 503', async () => {
      listener = await listenWs({
        host: '127.0.0.1',
        port: 0,
        allowedOrigins: [],
        onConnection: () => {},
        onHttpRequest: (_req, res) => {
          res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '4' });
          res.end('page');
        },
      });
      const s = netConnect({ host: '127.0.0.1', port: listener.port });
      let text = '';
      s.setEncoding('latin1');
      s.on('data', (d: string) => (text += d));
      s.on('error', () => {});
      s.write('GET / HTTP/1.1\r\nHost: relay\r\n\r\n'.repeat(17));
      await until(() => / 503 [^]*\r\n0\r\n\r\n$/.test(text), 3000, 'the 503');
      s.destroy();
      const statuses = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1]));
      expect(statuses).to.deep.equal([...Array<number>(16).fill(200), 503]);
    });
  });
});
