import { expect } from 'chai';
import { connect as netConnect } from 'node:net';
import type { Frame } from '../../lib/msrp/message.js';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import type { Relay, RelayOptions } from '../../lib/relay/relay.js';
import { captureLogger, Harness, next, sleep, until, USERS, type LogLine } from '../helpers/relay.js';
import { testCertificate } from '../helpers/tls.js';
import { connectWs, wsRelayOptions } from '../helpers/ws.js';

const status = (f: Frame): number => (f.kind === 'response' ? f.statusCode : 0);
const v1 = (address: string, port: number): Buffer =>
  Buffer.from(`PROXY TCP4 ${address} 192.0.2.1 ${port} 2855\r\n`, 'latin1');

/** A PROXY v2 header for an IPv6 client. */
function v2six(groups: number[], port: number): Buffer {
  const head = Buffer.from([
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x21, 0, 36,
  ]);
  const block = Buffer.alloc(36);
  groups.forEach((g, i) => block.writeUInt16BE(g, i * 2));
  block.writeUInt16BE(port, 32);
  block.writeUInt16BE(2855, 34);
  return Buffer.concat([head, block]);
}

describe('clients behind a proxy (--proxy-protocol-from, --trusted-proxies)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  async function proxiedRelay(extra: RelayOptions = {}): Promise<{ relay: Relay; lines: LogLine[] }> {
    const lines: LogLine[] = [];
    const relay = await h.relay({ proxyProtocolFrom: ['127.0.0.1'], logger: captureLogger(lines), ...extra });
    return { relay, lines };
  }

  const opened = (lines: LogLine[]): Array<Record<string, unknown>> =>
    lines.filter((l) => l.msg === 'connection opened').map((l) => l.fields);

  async function auth(
    relay: Relay,
    ep: MsrpEndpoint,
    user: keyof typeof USERS,
    password: string,
  ): Promise<number> {
    return status(await ep.auth({ relayUri: h.relayUri(relay, user), username: user, password }));
  }

  it('takes the client from a PROXY v1 header on TCP, and relays for it', async () => {
    const { relay, lines } = await proxiedRelay();
    const alice = await h.connect(relay, { proxyHeader: v1('203.0.113.7', 40001) });
    expect(await auth(relay, alice, 'alice', USERS.alice)).to.equal(200);
    const bob = await h.client(relay, 'bob', { proxyHeader: Buffer.from('PROXY UNKNOWN\r\n') }); // names none
    const got = next(bob, 'message');
    const res = await alice.send({ toPath: alice.toPathFor(bob.path), body: 'through the balancer' });
    expect(res.statuses).to.deep.equal([200]);
    expect(((await got) as { body: Buffer }).body.toString()).to.equal('through the balancer');
    const seen = opened(lines);
    expect(seen[0]).to.include({ remote: '203.0.113.7:40001', transport: 'tcp' });
    expect(seen[0]!.via).to.match(/^127\.0\.0\.1:\d+$/);
    expect(seen[1]!.remote).to.match(/^127\.0\.0\.1:\d+$/);
    expect(seen[1]).to.not.have.property('via');
  });

  it('takes the client from a PROXY v2 header before the TLS handshake', async () => {
    const { cert, key } = testCertificate();
    const { relay, lines } = await proxiedRelay({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key },
    });
    const ep = await h.connect(relay, {
      proxyHeader: v2six([0x2001, 0xdb8, 0, 0, 0, 0, 0, 5], 443),
      tls: { ca: cert, servername: 'localhost' },
    });
    const a = relay.addresses()[0]!;
    const res = await ep.auth({
      relayUri: `msrps://alice@127.0.0.1:${a.port};tcp`,
      username: 'alice',
      password: USERS.alice,
    });
    expect(status(res)).to.equal(200);
    expect(opened(lines)[0]).to.include({ remote: '[2001:db8::5]:443', transport: 'tls' });
    expect(relay.stats().handshakesPending).to.equal(0);
  });

  it('bounds a TLS connection from a proxy by its handshake time alone, counted once', async () => {
    // Review: the header timer and the handshake timer fired together (a refusal and a timeout each).
    const { cert, key } = testCertificate();
    const { relay } = await proxiedRelay({
      listen: [],
      tlsListen: [{ host: '127.0.0.1', port: 0 }],
      tls: { cert, key },
      probationMs: 200,
    });
    const a = relay.addresses()[0]!;
    const sock = netConnect({ host: a.host, port: a.port });
    sock.on('error', () => {});
    await new Promise((r) => sock.once('close', r));
    await sleep(50);
    expect(relay.stats().counters.handshakeTimeouts.tls).to.equal(1);
    expect(relay.stats().counters.refusedConnections.tls).to.deep.equal({});
  });

  it('counts AUTH lockouts per client behind the proxy, not per proxy', async () => {
    const { relay } = await proxiedRelay({ authLockoutFailures: 2 });
    const mallory = await h.connect(relay, { proxyHeader: v1('203.0.113.66', 1000) });
    expect([
      await auth(relay, mallory, 'alice', 'guess1'),
      await auth(relay, mallory, 'alice', 'guess2'),
    ]).to.deep.equal([401, 401]);
    expect(await auth(relay, mallory, 'alice', USERS.alice)).to.equal(403);
    // The real alice, another client of the same balancer, still gets in.
    const alice = await h.connect(relay, { proxyHeader: v1('198.51.100.20', 2000) });
    expect(await auth(relay, alice, 'alice', USERS.alice)).to.equal(200);
  });

  it('closes a connection whose PROXY header is malformed, with a log line', async () => {
    const { relay, lines } = await proxiedRelay();
    const a = relay.addresses()[0]!;
    const sock = netConnect({ host: a.host, port: a.port });
    sock.on('error', () => {});
    sock.write('PROXY TCP4 999.0.0.1 192.0.2.1 1 2\r\nMSRP a1 AUTH\r\n');
    await new Promise((r) => sock.once('close', r));
    expect(lines.map((l) => l.msg)).to.include('PROXY header refused: closed');
    expect(opened(lines)).to.deep.equal([]);
  });

  it("logs a proxy's connect-and-close health check at debug only", async () => {
    const { relay, lines } = await proxiedRelay();
    const a = relay.addresses()[0]!;
    const sock = netConnect({ host: a.host, port: a.port });
    await new Promise((r) => sock.once('connect', r));
    sock.end();
    await until(() => lines.some((l) => l.msg === 'PROXY header refused: closed'), 5000, 'the log line');
    const refused = lines.filter((l) => l.msg === 'PROXY header refused: closed');
    expect(refused.map((l) => [l.level, l.fields.err])).to.deep.equal([
      ['debug', 'closed before the PROXY header ended'],
    ]);
  });

  it('closes a connection from a listed proxy that does not start with a PROXY header', async () => {
    // Optional headers would let a client behind a proxy that forwards TCP as it is name any address.
    const { relay, lines } = await proxiedRelay();
    const ep = await h.connect(relay);
    void ep.auth({ relayUri: h.relayUri(relay, 'alice') }).catch(() => undefined);
    await until(() => ep.isClosed, 5000, 'the relay to close the connection');
    const refused = lines.filter((l) => l.msg === 'PROXY header refused: closed');
    expect(refused.map((l) => [l.level, l.fields.err])).to.deep.equal([['info', 'no PROXY header']]);
    expect(relay.stats().counters.refusedConnections.tcp).to.deep.equal({ 'proxy-header': 1 });
    expect(opened(lines)).to.deep.equal([]);
  });

  it('survives a proxy that resets its connection before the header ends', async () => {
    const { relay, lines } = await proxiedRelay();
    const a = relay.addresses()[0]!;
    for (const first of ['', 'PROXY TCP4 203.0']) {
      const sock = netConnect({ host: a.host, port: a.port });
      sock.on('error', () => {});
      await new Promise((r) => sock.once('connect', r));
      if (first !== '') sock.write(first);
      await sleep(20);
      sock.resetAndDestroy();
    }
    await until(
      () => lines.filter((l) => l.msg === 'PROXY header refused: closed').length === 2,
      5000,
      'both refusals',
    );
    const alice = await h.connect(relay, { proxyHeader: v1('203.0.113.7', 40001) });
    expect(await auth(relay, alice, 'alice', USERS.alice)).to.equal(200);
  });

  it('reads no PROXY header from an address it does not list', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({ proxyProtocolFrom: ['10.0.0.0/8'], logger: captureLogger(lines) });
    const ep = await h.connect(relay, { proxyHeader: v1('203.0.113.7', 40001) });
    // The header is taken for MSRP: not a frame, so the connection is closed for it.
    await until(() => ep.isClosed, 5000, 'the relay to close the connection');
    expect(opened(lines).map((f) => f.remote)).to.satisfy((r: string[]) =>
      r.every((x) => x.startsWith('127.0.0.1:')),
    );
  });

  it('applies --max-connections-per-ip to the clients a proxy names, not to the proxy', async () => {
    const { relay } = await proxiedRelay({ maxConnectionsPerIp: 1 });
    const eps = [];
    for (let i = 0; i < 3; i++)
      eps.push(await h.connect(relay, { proxyHeader: v1(`203.0.113.${i + 1}`, 1000) }));
    const codes = [];
    for (const ep of eps) codes.push(await auth(relay, ep, 'alice', USERS.alice));
    expect(codes).to.deep.equal([200, 200, 200]);
    // A second connection naming a client already connected is over its limit.
    const again = await h.connect(relay, { proxyHeader: v1('203.0.113.1', 1001) });
    await until(() => again.isClosed, 5000, 'the refused connection to close');
    expect(relay.stats().counters.refusedConnections.tcp).to.deep.equal({ 'max-connections-per-ip': 1 });
    // Once that client's first connection is gone, it may connect again.
    await eps[0]!.close();
    await until(() => relay.connectionCount === 2, 5000, 'the close to be seen');
    const back = await h.connect(relay, { proxyHeader: v1('203.0.113.1', 1002) });
    expect(await auth(relay, back, 'alice', USERS.alice)).to.equal(200);
  });

  it('takes a WebSocket client from X-Forwarded-For only when the proxy is trusted', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay(
      wsRelayOptions({ trustedProxies: ['127.0.0.0/8'], logger: captureLogger(lines) }),
    );
    const headers = { 'X-Forwarded-For': '192.0.2.200, 198.51.100.9' };
    await connectWs(h, relay, { wsOptions: { headers } });
    await until(() => opened(lines).length === 1, 5000, 'the connection log line');
    expect(opened(lines)[0]).to.include({ remote: '198.51.100.9:0', transport: 'ws' });
    expect(opened(lines)[0]!.via).to.match(/^127\.0\.0\.1:\d+$/);

    // A relay that reads PROXY headers from that address takes no X-Forwarded-For from it.
    const other = await h.relay(
      wsRelayOptions({ proxyProtocolFrom: ['127.0.0.0/8'], logger: captureLogger(lines) }),
    );
    lines.length = 0;
    await connectWs(h, other, { wsOptions: { headers } });
    await until(() => opened(lines).length === 1, 5000, 'the connection log line');
    expect(opened(lines)[0]!.remote).to.match(/^127\.0\.0\.1:\d+$/);
    expect(opened(lines)[0]).to.not.have.property('via');
  });
});
