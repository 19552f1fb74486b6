/**
 * Relays that know each other (RFC 4976 §6.2-§6.4, digest §2.5, §2.6): tokens granted through another
 * relay, the number one relay link may hold, and mutually authenticated TLS between relays.
 */
import { expect } from 'chai';
import type { RelayOptions } from '../../lib/relay/options.js';
import type { Relay } from '../../lib/relay/relay.js';
import type { EndpointOptions, MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { connect } from 'node:net';
import { connect as tlsConnect, createServer as createTlsServer, type TLSSocket } from 'node:tls';
import { Harness, nextMessage, sleep, until, USERS } from '../helpers/relay.js';
import { imFromAlice } from '../helpers/cpim-fixtures.js';
import { otherCertificate, testCertificate } from '../helpers/tls.js';

describe('tokens granted through another relay', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('keeps the sessions of more than 64 clients behind one relay link', async function () {
    this.timeout(20_000);
    const r1 = await h.relay({ auth: false });
    const r2 = await h.relay({ auth: false });
    const first = await h.client(r1, 'alice');
    await h.authThrough(first, r2, 'alice');
    for (let i = 0; i < 70; i++) {
      const c = await h.client(r1, 'carol');
      await h.authThrough(c, r2, 'carol');
    }
    const bob = await h.client(r2, 'bob');
    const got = nextMessage(first, 5000);
    const res = await bob.send({ toPath: bob.toPathFor(first.path), body: Buffer.from('hi') });
    expect(res.statuses).to.deep.equal([200]);
    expect((await got).body.toString()).to.equal('hi');
  });

  it('revokes the oldest relayed token past --max-relayed-tokens, and a client past its own 64', async function () {
    this.timeout(20_000);
    const r1 = await h.relay({ auth: false });
    const r2 = await h.relay({ auth: false, maxRelayedTokens: 3 });
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = await h.client(r1, 'carol');
      await h.authThrough(c, r2, 'carol');
      clients.push(c);
    }
    // A client of R2 itself with 65 AUTHs on its one connection: its first token goes.
    const bob = await h.client(r2, 'bob');
    const bobFirst = bob.usePath[0]!;
    for (let i = 0; i < 64; i++) {
      const res = await bob.auth({ relayUri: h.relayUri(r2, 'bob'), username: 'bob', password: USERS.bob });
      expect(res.kind === 'response' && res.statusCode).to.equal(200);
    }
    const dave = await h.client(r2, 'alice');
    const statuses = [];
    for (const c of clients)
      statuses.push((await dave.send({ toPath: dave.toPathFor(c.path), body: 'x' })).statuses[0]);
    const toBob = await dave.send({ toPath: `${bobFirst} ${bob.uri}`, body: 'x' });
    expect({ statuses, toBob: toBob.statuses }).to.deep.equal({
      statuses: [481, 200, 200, 200],
      toBob: [481],
    });
  });
});

/** A relay with one TLS listener presenting the test certificate, trusting it for next hops and, with
 * `relayCa`, as the CA of other relays. */
function tlsRelay(relayCa: boolean, extra: RelayOptions = {}): RelayOptions {
  const { cert, key } = testCertificate();
  return {
    listen: [],
    tlsListen: [{ host: '127.0.0.1', port: 0 }],
    tls: { cert, key, ca: cert, ...(relayCa && { relayCa: cert }) },
    publicHost: '127.0.0.1',
    ...extra,
  };
}

const clientTls = () => ({ ca: testCertificate().cert, servername: 'localhost' });

/** The msrps URI a client AUTHs to on `relay`'s TLS listener. */
function tlsUri(relay: Relay): string {
  return `msrps://127.0.0.1:${relay.addresses()[0]!.port};tcp`;
}

/** The connections `relay` accepted whose client certificate proved a relay. */
function certified(relay: Relay): Set<{ conn: { destroy(reason: string): void }; isClosed: boolean }> {
  return (relay as unknown as { certified: Set<{ conn: { destroy(r: string): void }; isClosed: boolean }> })
    .certified;
}

describe('relays proven by their TLS certificates (--relay-ca)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  /** alice behind R1 then R2 (RFC 4976 §5.1), bob a client of R2; all over TLS. */
  async function chain(
    relayCa: boolean,
    extra: RelayOptions = {},
    bobOptions: Partial<EndpointOptions> = {},
    aliceOptions: Partial<EndpointOptions> = {},
  ): Promise<{ r1: Relay; r2: Relay; alice: MsrpEndpoint; bob: MsrpEndpoint }> {
    const r1 = await h.relay(tlsRelay(relayCa));
    const r2 = await h.relay(tlsRelay(relayCa, extra));
    const alice = await h.connect(r1, { tls: clientTls(), ...aliceOptions });
    const a1 = await alice.auth({ relayUri: tlsUri(r1), username: 'alice', password: USERS.alice });
    expect(a1.kind === 'response' && a1.statusCode).to.equal(200);
    const t1 = alice.usePath[0]!;
    const a2 = await alice.auth({
      relayUri: `${t1} ${tlsUri(r2)}`,
      username: 'alice',
      password: USERS.alice,
    });
    expect(a2.kind === 'response' && a2.statusCode).to.equal(200);
    alice.usePath = [t1, alice.usePath[0]!];
    const bob = await h.connect(r2, { tls: clientTls(), ...bobOptions });
    const b = await bob.auth({ relayUri: tlsUri(r2), username: 'bob', password: USERS.bob });
    expect(b.kind === 'response' && b.statusCode).to.equal(200);
    return { r1, r2, alice, bob };
  }

  /** `ep` answers `request`, a SEND it has left unanswered (its `respond` gave null), with `code`. */
  function answerLate(ep: MsrpEndpoint, request: Frame, code: number): void {
    const late = ep as unknown as { answer(method: string, tid: string, from: string, code: number): void };
    late.answer('SEND', request.transactionId, request.headers[1]![1], code);
  }

  /** Resets the connection R1 opened to R2, as R2 sees it, and waits until it is gone. */
  async function resetLink(r2: Relay): Promise<void> {
    const links = [...certified(r2)];
    expect(links).to.have.length(1);
    links[0]!.conn.destroy('test-reset');
    await until(() => links[0]!.isClosed && certified(r2).size === 0, 3000, 'link closed');
  }

  it('knows the previous relay by its client certificate and keeps its sessions across a reset of the link', async function () {
    this.timeout(15_000);
    const { r2, alice, bob } = await chain(true);
    const first = nextMessage(alice, 5000);
    expect((await bob.send({ toPath: bob.toPathFor(alice.path), body: 'before' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await first).body.toString()).to.equal('before');
    expect(r2.stats().connections.tls).to.deep.include({ relay: 1, dialed: 0 });
    await resetLink(r2);
    // Toward alice: R2 dials R1 (msrps, R1's certificate checked) for the token R1's link held.
    const toAlice = nextMessage(alice, 5000);
    expect((await bob.send({ toPath: bob.toPathFor(alice.path), body: 'after' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await toAlice).body.toString()).to.equal('after');
    // From alice: R1 dials R2 again; the new connection's certificate is R1's, so the token serves it.
    const toBob = nextMessage(bob, 5000);
    expect((await alice.send({ toPath: alice.toPathFor(bob.path), body: 'back' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await toBob).body.toString()).to.equal('back');
  });

  it("sends a failure REPORT over another connection of the sender's relay when the link it came on is gone", async function () {
    this.timeout(15_000);
    // relay-chain.spec.ts: without certificates R2 counts such a REPORT undeliverable.
    const { r2, alice, bob } = await chain(true, { transactionTimeoutMs: 1000 }, { respond: () => null });
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const received = nextMessage(bob, 3000);
    const res = await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: 'hello',
      messageId: 'viaCert01',
    });
    expect(res.statuses).to.deep.equal([200]);
    await received;
    await resetLink(r2); // while R2 waits for bob's answer
    await until(() => reports.length === 1, 5000, 'the REPORT at alice');
    expect({
      status: getHeader(reports[0]!.headers, 'status'),
      messageId: getHeader(reports[0]!.headers, 'message-id'),
      undeliverable: r2.counters.failureReportsUndeliverable,
    }).to.deep.equal({ status: '000 408 Request Timeout', messageId: 'viaCert01', undeliverable: 0 });
  });

  it("injects the delivery report over another connection of the sender's relay when the link it came on is gone", async function () {
    this.timeout(15_000);
    // reports.spec.ts: without certificates such an IM is counted sender_gone and its report lost.
    const { r2, alice, bob } = await chain(true, { reports: 'on-ack' }, { respond: () => null });
    const request = new Promise<Frame>((res) => bob.once('request', (f: Frame) => res(f)));
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('viaCertIm01', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    const f = await request;
    await until(() => r2.reports.tracker.size === 1, 3000, 'the IM tracked');
    await resetLink(r2);
    const report = nextMessage(alice, 5000);
    // bob's 200 comes after the link is gone: the report takes a new connection to R1.
    answerLate(bob, f, 200);
    const body = (await report).body.toString();
    expect({
      delivered: body.includes('<delivered/>'),
      about: body.includes('<message-id>viaCertIm01</message-id>'),
      senderGone: r2.reports.counters.senderGone,
    }).to.deep.equal({ delivered: true, about: true, senderGone: 0 });
  });

  describe('after a reset, over the connection the other relay dialed (chaos audit)', () => {
    /** The chain, then a reset of the link R1 opened, seen from R2. */
    async function resetChain(
      bobOptions: Partial<EndpointOptions> = {},
      aliceOptions: Partial<EndpointOptions> = {},
    ): Promise<{ r1: Relay; r2: Relay; alice: MsrpEndpoint; bob: MsrpEndpoint }> {
      const c = await chain(
        true,
        { reports: 'on-ack', transactionTimeoutMs: 1000 },
        bobOptions,
        aliceOptions,
      );
      await resetLink(c.r2);
      return c;
    }

    it("brings R1's delivery report for bob's IM back over the connection R2 dialed to reach alice", async function () {
      // R2 reached alice by dialing R1; R1 sent the report back on that connection, which R2 took for a
      // stranger's (403 'Token used from a foreign connection', and a report takes no answer: lost).
      this.timeout(10_000);
      const { r2, alice, bob } = await resetChain();
      const atAlice = nextMessage(alice, 3000);
      const atBob = nextMessage(bob, 3000);
      const res = await bob.send({
        toPath: bob.toPathFor(alice.path),
        body: imFromAlice('afterReset01', 'positive-delivery'),
        contentType: 'message/cpim',
      });
      await atAlice;
      const report = (await atBob).body.toString();
      expect({
        res: res.statuses,
        delivered: report.includes('<delivered/>'),
        refused: r2.counters.refused,
      }).to.deep.equal({ res: [200], delivered: true, refused: {} });
    });

    it("brings R1's failure REPORT for alice's refusal back the same way", async function () {
      this.timeout(10_000);
      const { r2, alice, bob } = await resetChain({}, { respond: () => 486 });
      const report = new Promise<Frame>((res) => bob.once('report', (f: Frame) => res(f)));
      const atAlice = new Promise((res) => alice.once('request', res));
      const sent = await bob.send({
        toPath: bob.toPathFor(alice.path),
        body: 'x',
        messageId: 'afterReset02',
      });
      await atAlice;
      expect({
        sent: sent.statuses,
        status: getHeader((await report).headers, 'status')!.slice(0, 7),
        refused: r2.counters.refused,
      }).to.deep.equal({ sent: [200], status: '000 486', refused: {} });
    });

    it("re-routes R1's failure REPORT toward bob when the link R1 dialed to R2 resets", async function () {
      // From R1's side that link is a next hop it dialed, proven by a certificate chaining to --relay-ca.
      this.timeout(10_000);
      let answer: number | null = 200;
      const { r1, alice, bob } = await resetChain({}, { respond: () => answer });
      const toBob = nextMessage(bob, 3000);
      await alice.send({ toPath: alice.toPathFor(bob.path), body: 'hi' }); // R1 dials R2 again
      await toBob;
      answer = null; // alice holds her answer to bob's next SEND
      const request = new Promise<Frame>((res) => alice.once('request', (f: Frame) => res(f)));
      const report = new Promise<Frame>((res) => bob.once('report', (f: Frame) => res(f)));
      await bob.send({ toPath: bob.toPathFor(alice.path), body: 'x', messageId: 'afterReset03' });
      const f = await request;
      const peers = (
        r1 as unknown as {
          peers: Set<{ dialed: boolean; isClosed: boolean; conn: { destroy(r: string): void } }>;
        }
      ).peers;
      const dialed = [...peers].filter((p) => p.dialed);
      for (const p of dialed) p.conn.destroy('test-reset');
      await until(() => dialed.every((p) => p.isClosed), 3000, "R1's dialed links closed");
      answerLate(alice, f, 486);
      expect({
        status: getHeader((await report).headers, 'status')!.slice(0, 7),
        undeliverable: r1.counters.failureReportsUndeliverable,
      }).to.deep.equal({ status: '000 486', undeliverable: 0 });
    });
  });

  it('without --relay-ca ends the sessions behind a relay with its link (481)', async function () {
    this.timeout(15_000);
    const { r2, alice, bob } = await chain(false);
    expect(certified(r2).size).to.equal(0);
    const peers = (
      r2 as unknown as {
        peers: Set<{
          dialed: boolean;
          conn: { kind: string; destroy(r: string): void };
          isClosed: boolean;
          authenticated: boolean;
        }>;
      }
    ).peers;
    const link = [...peers].find((p) => !p.dialed && !p.authenticated)!;
    link.conn.destroy('test-reset');
    await until(() => link.isClosed, 3000, 'link closed');
    expect((await bob.send({ toPath: bob.toPathFor(alice.path), body: 'after' })).statuses).to.deep.equal([
      481,
    ]);
  });

  it('refuses (403) a request or AUTH whose From-Path does not start with a host of the certificate', async () => {
    const r2 = await h.relay(tlsRelay(true));
    const { cert, key } = testCertificate();
    // A peer with a relay certificate but another host in its URI (a .invalid client URI).
    const impostor = await h.connect(r2, { tls: { ...clientTls(), cert, key } });
    const auth = await impostor.auth({ relayUri: tlsUri(r2), username: 'alice', password: USERS.alice });
    const bob = await h.connect(r2, { tls: clientTls() });
    await bob.auth({ relayUri: tlsUri(r2), username: 'bob', password: USERS.bob });
    const got = nextMessage(bob, 300).then(
      () => true,
      () => false,
    );
    const send = await impostor.send({ toPath: `${bob.usePath[0]!} ${bob.uri}`, body: 'x' });
    expect({
      auth: auth.kind === 'response' && `${auth.statusCode} ${auth.comment}`,
      send: send.statuses,
      delivered: await got,
    }).to.deep.equal({
      auth: '403 From-Path does not match the relay certificate',
      send: [403],
      delivered: false,
    });
  });

  it('checks client certificates against the CAs of the latest setRelayCa (SIGHUP) from the next handshake on', async () => {
    const r2 = await h.relay(tlsRelay(true));
    const { cert, key } = testCertificate();
    const present = async (): Promise<boolean> => {
      const before = new Set(certified(r2));
      const ep = await h.connect(r2, { tls: { ...clientTls(), cert, key } });
      await ep.auth({ relayUri: tlsUri(r2), username: 'alice', password: USERS.alice });
      return [...certified(r2)].some((p) => !before.has(p)); // this connection is known as a relay
    };
    const trusted = await present();
    r2.setRelayCa(otherCertificate().cert);
    const replaced = await present();
    r2.setRelayCa(cert);
    const again = await present();
    expect([trusted, replaced, again]).to.deep.equal([true, false, true]);
  });

  it('grants a client that writes a second From-Path URI the relayed cap once per address, not per connection', async () => {
    // Review: any client could claim to forward AUTHs and hold --max-relayed-tokens on each connection.
    const r = await h.relay({ auth: false, maxRelayedTokens: 5 });
    const { port } = r.addresses()[0]!;
    let granted = 0;
    for (let c = 0; c < 3; c++) {
      const s = connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
      await new Promise((res) => s.once('connect', res));
      for (let i = 0; i < 10; i++) {
        const tid = `au${c}x${i}xxxx`;
        s.write(
          `MSRP ${tid} AUTH\r\nTo-Path: msrp://127.0.0.1:${port};tcp\r\n` +
            `From-Path: msrp://me${c}.invalid:1/c${i};tcp msrp://fake.invalid:1/x;tcp\r\n-------${tid}$\r\n`,
        );
      }
      await until(() => (got.match(/ 200 OK/g) ?? []).length === 10, 5000, '200s');
      granted += 10;
    }
    expect({ granted, live: r.tokens.size }).to.deep.equal({ granted: 30, live: 5 });
  });

  it('gives no relay-bound token to a next hop it dialed, whatever certificate it shows', async function () {
    // Review: any client can make the relay dial a host it controls; a certificate the outbound trust
    // store accepts proved that host's name, and its AUTHs back over that connection got tokens that
    // outlived it.
    this.timeout(15_000);
    const { cert, key } = testCertificate();
    let sock: TLSSocket | null = null;
    let got = '';
    const server = createTlsServer({ cert, key }, (s) => {
      sock = s;
      s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    try {
      const r2 = await h.relay({ ...tlsRelay(true), listen: [{ host: '127.0.0.1', port: 0 }], auth: false });
      const mallory = await h.client(r2, 'bob');
      void mallory
        .send({ toPath: `${mallory.usePath[0]!} msrps://127.0.0.1:${port}/x;tcp`, body: 'x' })
        .catch(() => {});
      await until(() => got.includes('$\r\n'), 5000, 'the SEND dialed to the next hop');
      const r2port = r2.addresses().find((a) => a.kind === 'tcp')!.port;
      for (let i = 0; i < 3; i++) {
        const tid = `authtx${i}0000`;
        sock!.write(
          `MSRP ${tid} AUTH\r\nTo-Path: msrp://127.0.0.1:${r2port};tcp\r\n` +
            `From-Path: msrps://127.0.0.1:${port}/s${i};tcp msrp://c${i}.invalid:1/c;tcp\r\n-------${tid}$\r\n`,
        );
      }
      await until(() => (got.match(/ 200 OK/g) ?? []).length === 3, 5000, 'three 200s');
      const before = r2.tokens.size; // mallory's and the three
      sock!.destroy();
      await until(() => r2.tokens.size === 1, 3000, 'the link tokens gone with it');
      expect({ before, after: r2.tokens.size }).to.deep.equal({ before: 4, after: 1 });
    } finally {
      server.close();
    }
  });

  it('takes a certificate from another CA, or none, as a client: Digest as usual', async () => {
    const r2 = await h.relay(tlsRelay(true));
    const other = otherCertificate();
    const withOther = await h.connect(r2, { tls: { ...clientTls(), cert: other.cert, key: other.key } });
    const none = await h.connect(r2, { tls: clientTls() });
    const codes = [];
    for (const ep of [withOther, none]) {
      const res = await ep.auth({ relayUri: tlsUri(r2), username: 'alice', password: USERS.alice });
      codes.push(res.kind === 'response' && res.statusCode);
    }
    expect({ codes, certified: certified(r2).size }).to.deep.equal({ codes: [200, 200], certified: 0 });
  });

  /** One connection of a foreign relay to `relay`, for its session `id`. */
  interface ForeignLink {
    socket: TLSSocket;
    /** Everything read on it so far (latin1). */
    got: () => string;
    /** Its URI for the session: its host, and the decoy port a dial toward it would land on. */
    uri: string;
  }

  /**
   * Opens a connection of a foreign relay (one that binds a connection to one session, like AG Projects'
   * msrprelay) to `relay`, with or without its certificate, and sends `alice` one SEND from its session
   * `id` over it; resolves once the SEND's 200 is back. Its URIs name `decoyPort`: a dial would land there.
   */
  async function foreignLink(
    relay: Relay,
    alice: MsrpEndpoint,
    decoyPort: number,
    sockets: TLSSocket[],
    id: string,
    proven: boolean,
  ): Promise<ForeignLink> {
    const { cert, key } = testCertificate();
    let got = '';
    const socket = tlsConnect({
      host: '127.0.0.1',
      port: relay.addresses()[0]!.port,
      ca: cert,
      servername: 'localhost',
      ...(proven && { cert, key }),
    });
    sockets.push(socket);
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    await new Promise((r) => socket.once('secureConnect', r));
    const uri = `msrps://127.0.0.1:${decoyPort}/${id};tcp`;
    const tid = `in${id}0000`;
    socket.write(
      `MSRP ${tid} SEND\r\nTo-Path: ${alice.usePath[0]!} ${alice.uri}\r\n` +
        `From-Path: ${uri} msrp://bob.invalid:7394/${id}b;tcp\r\nMessage-ID: m${id}\r\n` +
        `Byte-Range: 1-${id.length}/${id.length}\r\nContent-Type: text/plain\r\n\r\n${id}\r\n-------${tid}$\r\n`,
    );
    await until(() => got.includes(`MSRP ${tid} 200`), 5000, `200 to ${id}`);
    return { socket, got: () => got, uri };
  }

  it('sends what goes back to a proven relay over the connection it opened for that URI, one per session', async function () {
    // Interop audit (AG Projects' msrprelay): a relay that binds each connection to one session opens a
    // connection per session and takes a session's return traffic only there; a dial to its authority
    // got 481. Its URIs here name a decoy port: a dial would land there.
    this.timeout(15_000);
    const { cert, key } = testCertificate();
    const dialed: string[] = [];
    const decoy = createTlsServer({ cert, key }, (s) => {
      dialed.push('connection');
      s.destroy();
    });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    const decoyPort = (decoy.address() as { port: number }).port;
    const sockets: TLSSocket[] = [];
    try {
      const r1 = await h.relay({ ...tlsRelay(true), auth: false });
      const alice = await h.connect(r1, { tls: clientTls() });
      await alice.auth({ relayUri: tlsUri(r1) });
      const received: string[] = [];
      alice.on('message', (m: { body: Buffer }) => received.push(m.body.toString()));
      const link = (id: string, proven: boolean): Promise<ForeignLink> =>
        foreignLink(r1, alice, decoyPort, sockets, id, proven);
      const x = await link('sessX', true);
      const y = await link('sessY', true);
      const stranger = await link('sessZ', false); // no certificate: its From-Path is its word alone
      await until(() => received.length === 3, 5000, 'the three messages at alice');
      for (const [peer, id] of [
        [x, 'sessX'],
        [y, 'sessY'],
        [stranger, 'sessZ'],
      ] as const) {
        const res = await alice.send({
          toPath: `${alice.usePath[0]!} ${peer.uri} msrp://bob.invalid:7394/${id}b;tcp`,
          body: `back to ${id}`,
        });
        expect(res.statuses, id).to.deep.equal([200]);
      }
      await until(
        () => x.got().includes('back to sessX') && y.got().includes('back to sessY'),
        5000,
        'replies',
      );
      await until(() => dialed.length === 1, 5000, 'the dial toward the stranger');
      expect({
        x: [x.got().includes('back to sessX'), x.got().includes('back to sessY')],
        y: [y.got().includes('back to sessY'), y.got().includes('back to sessX')],
        stranger: stranger.got().includes('back to sessZ'),
        dialed,
        learned: r1.stats().returnPaths,
      }).to.deep.equal({
        x: [true, false],
        y: [true, false],
        stranger: false,
        dialed: ['connection'],
        learned: 2, // sessX and sessY: the stranger taught nothing
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      decoy.close();
    }
  });

  it("sends a failure REPORT for a per-session relay's session on that session's own connection once its link is gone", async function () {
    // Interop audit: with the IM's link closed, the REPORT took any connection of that relay, which a
    // relay binding connections to sessions refuses (481): another session's. Now a --next-hop-per-session
    // host gets its own dial for the session.
    this.timeout(15_000);
    const { cert, key } = testCertificate();
    const atDecoy: string[] = [];
    const decoy = createTlsServer({ cert, key }, (s) => {
      const i = atDecoy.push('') - 1;
      s.on('data', (d: Buffer) => (atDecoy[i] += d.toString('latin1')));
    });
    await new Promise<void>((r) => decoy.listen(0, '127.0.0.1', r));
    const decoyPort = (decoy.address() as { port: number }).port;
    const sockets: TLSSocket[] = [];
    try {
      const r1 = await h.relay({
        ...tlsRelay(true),
        auth: false,
        transactionTimeoutMs: 800,
        nextHopPerSession: ['127.0.0.1'],
      });
      const alice = await h.connect(r1, { tls: clientTls(), respond: () => null }); // never answers
      await alice.auth({ relayUri: tlsUri(r1) });
      const y = await foreignLink(r1, alice, decoyPort, sockets, 'sessY', true);
      const x = await foreignLink(r1, alice, decoyPort, sockets, 'sessX', true);
      x.socket.destroy(); // sessX's link goes while alice's answer is awaited
      await until(() => atDecoy.some((t) => t.includes(' REPORT\r\n')), 5000, 'the REPORT at a new dial');
      await sleep(200);
      expect({
        atDecoy: atDecoy.map((t) => /^To-Path: (\S+)/m.exec(t)?.[1]),
        status: /^Status: (.*)\r$/m.exec(atDecoy.join(''))?.[1],
        // y has a REPORT of its own (its IM is unanswered too), none about sessX.
        onY: y.got().includes(`To-Path: ${x.uri}`),
      }).to.deep.equal({
        atDecoy: [x.uri],
        status: '000 408 Request Timeout',
        onY: false,
      });
    } finally {
      for (const socket of sockets) socket.destroy();
      decoy.close();
    }
  });
});
