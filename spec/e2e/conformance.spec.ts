/**
 * Conformance checks of the spec digest (§1.17, §2.15, §3.9, §7.6) that the relay passed on the wire but
 * that had no test: each one drives the relay over real sockets the way the conformance harness did.
 */
import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { parseDigestChallenge } from '../../lib/msrp/digest.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { parseUri } from '../../lib/msrp/uri.js';
import { Harness, next, nextMessage, sleep, until, USERS } from '../helpers/relay.js';
import { responseTo, sendHead, tap } from '../helpers/wire.js';
import { wsClient, wsRelayOptions } from '../helpers/ws.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/** Every REPORT `ep` receives from now on. */
function reportsTo(ep: MsrpEndpoint): Frame[] {
  const out: Frame[] = [];
  ep.on('report', (f: Frame) => out.push(f));
  return out;
}

/** `[Message-ID, Status]` of each REPORT. */
const idAndStatus = (reports: Frame[]): Array<[string | undefined, string | undefined]> =>
  reports.map((f) => [getHeader(f.headers, 'message-id'), getHeader(f.headers, 'status')]);

/** A whole one-chunk SEND from `from` to `to` through the relay, as raw octets. */
function rawSend(
  from: MsrpEndpoint,
  to: MsrpEndpoint,
  tid: string,
  headers: Array<[string, string]>,
): Buffer {
  return Buffer.from(sendHead(from, to, tid, headers) + `hello\r\n-------${tid}$\r\n`, 'latin1');
}

/** Transaction ids of the SENDs in `text` whose Message-ID is `messageId`. */
function forwardedTids(text: string, messageId: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/MSRP (\S+) SEND\r\n((?:[^\r\n]+\r\n)*)/g))
    if (m[2]!.includes(`Message-ID: ${messageId}\r\n`)) out.push(m[1]!);
  return out;
}

describe('conformance checks of the spec digest (RFC 4975, RFC 4976, RFC 7977, follow-ons)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('turns a next hop’s 404, 428, 413 and 481 into a `000 <code>` failure REPORT to the sender (§2.15 #16, §7.6 #6)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    // Bob answers each SEND with the code its Message-ID names (`code404`...).
    const bob = await h.client(relay, 'bob', {
      respond: (f) => Number(/^code(\d{3})$/.exec(getHeader(f.headers, 'message-id') ?? '')?.[1] ?? 200),
    });
    for (const code of [404, 428, 413, 481]) {
      const report = next<Frame>(alice, 'report', 3000);
      // FR absent: the relay answers 200 itself before the next hop has said anything (RFC 4976 §6.5).
      const res = await alice.send({
        toPath: alice.toPathFor(bob.path),
        body: 'hello',
        messageId: `code${code}`,
      });
      expect(res.statuses, `code ${code}`).to.deep.equal([200]);
      const f = await report;
      expect(f.kind === 'request' && f.method).to.equal('REPORT');
      expect(f.headers[0]).to.deep.equal(['To-Path', alice.uri]);
      expect(f.headers[1]).to.deep.equal(['From-Path', alice.usePath[0]]);
      expect(getHeader(f.headers, 'message-id')).to.equal(`code${code}`);
      expect(getHeader(f.headers, 'byte-range')).to.equal('1-5/5');
      expect(getHeader(f.headers, 'status')).to.match(new RegExp(`^000 ${code}( |$)`));
    }
    expect(relay.counters.failureReports).to.deep.include({ '404': 1, '428': 1, '413': 1, '481': 1 });
  });

  it('sends nothing back for a Failure-Report: no SEND to an unknown token or with bad header order, and keeps the connection (§1.17 #8)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const aliceWire = tap(alice);
    const bobWire = tap(bob);
    const reports = reportsTo(alice);
    const a = relay.addresses()[0]!;
    alice.write(
      Buffer.from(
        `MSRP frno0001 SEND\r\nTo-Path: msrp://${a.host}:${a.port}/NoSuchTok12345;tcp ${bob.uri}\r\n` +
          `From-Path: ${alice.uri}\r\nMessage-ID: frnounk1\r\nFailure-Report: no\r\nByte-Range: 1-5/5\r\n` +
          `Content-Type: text/plain\r\n\r\nhello\r\n-------frno0001$\r\n`,
        'latin1',
      ),
    );
    // RFC 4975 §7.1: Content-Type must be the last header of a request with a body.
    alice.write(
      Buffer.from(
        `MSRP frno0002 SEND\r\nTo-Path: ${alice.toPathFor(bob.path)}\r\nFrom-Path: ${alice.uri}\r\n` +
          `Failure-Report: no\r\nContent-Type: text/plain\r\nMessage-ID: frnoord1\r\n\r\nhi\r\n-------frno0002$\r\n`,
        'latin1',
      ),
    );
    // A SEND behind them on the same connection: once it is through, the relay has handled both.
    const got = nextMessage(bob, 3000);
    const res = await alice.request({
      transactionId: 'frno0003',
      method: 'SEND',
      toPath: alice.toPathFor(bob.path),
      fromPath: alice.uri,
      headers: [
        ['Message-ID', 'frnoafter'],
        ['Byte-Range', '1-5/5'],
      ],
      contentType: 'text/plain',
      body: 'after',
    });
    expect([res.kind === 'response' && res.statusCode, (await got).messageId]).to.deep.equal([
      200,
      'frnoafter',
    ]);
    await sleep(200);
    // Only the last SEND's 200 came back: no response, no REPORT for the other two.
    expect([...aliceWire.text().matchAll(/^MSRP (\S+) (\S+)/gm)].map((m) => `${m[1]} ${m[2]}`)).to.deep.equal(
      ['frno0003 200'],
    );
    expect(reports).to.deep.equal([]);
    expect(bobWire.text()).to.not.match(/frnounk1|frnoord1/);
    expect([alice.isClosed, bob.isClosed]).to.deep.equal([false, false]);
    // Both were read and refused, silently: 481 (no such token) and 400 (header order).
    expect(relay.counters.refused).to.deep.equal({ '400': 1, '481': 1 });
    expect(relay.counters.parseErrors).to.deep.include({ MSRP_ERR_HEADER_ORDER: 1 });
    expect(relay.counters.refused).to.include.keys('481');
  });

  it('writes neither Success-Report nor Failure-Report in the failure REPORTs it generates (§1.17 #12)', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 300 });
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => 486 });
    const carol = await h.client(relay, 'carol', { respond: () => null });
    const aliceWire = tap(alice);
    const reports = reportsTo(alice);
    const a = relay.addresses()[0]!;
    // A next hop's error, a next hop's silence, and a refused Failure-Report: partial chunk; all ask
    // for success reports, which a REPORT must not carry over.
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: 'hello',
      messageId: 'sr12down',
      successReport: true,
    });
    alice.write(
      rawSend(alice, carol, 'sr12tout', [
        ['Message-ID', 'sr12tout'],
        ['Success-Report', 'yes'],
        ['Byte-Range', '1-5/5'],
      ]),
    );
    alice.write(
      Buffer.from(
        `MSRP sr12part SEND\r\nTo-Path: msrp://${a.host}:${a.port}/NoSuchTok12345;tcp ${bob.uri}\r\n` +
          `From-Path: ${alice.uri}\r\nMessage-ID: sr12part\r\nSuccess-Report: yes\r\nFailure-Report: partial\r\n` +
          `Byte-Range: 1-5/5\r\nContent-Type: text/plain\r\n\r\nhello\r\n-------sr12part$\r\n`,
        'latin1',
      ),
    );
    // The ones the relay wrote: From-Path is its own URI alone. (Bob and carol, asked for success reports,
    // send their own REPORTs too, which the relay forwards.)
    const own = (): Frame[] => reports.filter((f) => !/\s/.test(f.headers[1]![1].trim()));
    await until(() => own().length === 3, 3000, 'three failure REPORTs');
    expect(
      Object.fromEntries(
        idAndStatus(own()).map(([id, status]) => [id, /^000 (\d{3}) /.exec(status ?? '')?.[1]]),
      ),
    ).to.deep.equal({ sr12down: '486', sr12tout: '408', sr12part: '481' });
    for (const f of own()) {
      const names = f.headers.map(([name]) => name.toLowerCase());
      expect(names, getHeader(f.headers, 'message-id'))
        .to.not.include('success-report')
        .and.not.include('failure-report');
    }
    // And on the wire, as written.
    const wireReports = aliceWire
      .text()
      .split(/(?=MSRP \S+ )/)
      .filter((s) => /^MSRP \S+ REPORT\r\nTo-Path: \S+\r\nFrom-Path: \S+\r\n/.test(s));
    expect(wireReports).to.have.length(3);
    for (const text of wireReports) expect(text).to.not.match(/^(Success|Failure)-Report:/im);
  });

  it('sends no REPORT for Failure-Report: no when the next hop answers 481, goes away, or stays silent (§2.15 #13)', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 1000 });
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const bobWire = tap(bob);
    const reports = reportsTo(alice);
    // Each case twice: Failure-Report yes, which must be reported (so the case does fail), and no.
    const both = (msg: string): void => {
      alice.write(
        rawSend(alice, bob, `${msg}Y`, [
          ['Message-ID', `${msg}Y`],
          ['Byte-Range', '1-5/5'],
        ]),
      );
      alice.write(
        rawSend(alice, bob, `${msg}N`, [
          ['Message-ID', `${msg}N`],
          ['Failure-Report', 'no'],
          ['Byte-Range', '1-5/5'],
        ]),
      );
    };
    // 1. Bob answers both 481.
    both('resp481');
    await until(() => forwardedTids(bobWire.text(), 'resp481N').length === 1, 3000, 'both SENDs at bob');
    for (const id of ['resp481Y', 'resp481N']) {
      const tid = forwardedTids(bobWire.text(), id)[0]!;
      bob.write(responseTo(bob, bob.usePath[0]!, tid, '481 No session'));
    }
    await until(() => reports.length === 1, 3000, 'the 481 REPORT');
    // 2. Carol goes before answering: her connection is lost with both SENDs unanswered.
    const carol = await h.client(relay, 'carol', { respond: () => null });
    const carolWire = tap(carol);
    alice.write(
      rawSend(alice, carol, 'lostY', [
        ['Message-ID', 'lostY'],
        ['Byte-Range', '1-5/5'],
      ]),
    );
    alice.write(
      rawSend(alice, carol, 'lostN', [
        ['Message-ID', 'lostN'],
        ['Failure-Report', 'no'],
        ['Byte-Range', '1-5/5'],
      ]),
    );
    await until(() => forwardedTids(carolWire.text(), 'lostN').length === 1, 3000, 'both SENDs at carol');
    await carol.close();
    await until(() => reports.length === 2, 3000, 'the connection-lost REPORT');
    // 3. Bob stays silent past the transaction timeout.
    both('silent');
    await until(() => reports.length === 3, 4000, 'the timeout REPORT');
    await sleep(1200); // the Failure-Report: no SEND was forwarded at the same time: its timer too is past
    expect(idAndStatus(reports).map(([id, status]) => [id, status?.slice(0, 7)])).to.deep.equal([
      ['resp481Y', '000 481'],
      ['lostY', '000 481'],
      ['silentY', '000 408'],
    ]);
    expect(forwardedTids(bobWire.text(), 'silentN')).to.have.length(1); // still forwarded
  });

  it('drops a response with an unknown transaction id and keeps forwarding on that connection (§2.15 #23)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const aliceWire = tap(alice);
    const bobWire = tap(bob);
    const before = relay.counters.responsesIn['200'] ?? 0;
    // One addressed to the relay, one to somewhere else.
    bob.write(responseTo(bob, bob.usePath[0]!, 'unknownTid99', '200 OK'));
    bob.write(responseTo(bob, 'msrp://elsewhere.example:1/zz;tcp', 'unknownTid98', '200 OK'));
    await until(() => (relay.counters.responsesIn['200'] ?? 0) === before + 2, 3000, 'both responses read');
    const toBob = nextMessage(bob, 3000);
    expect((await alice.send({ toPath: alice.toPathFor(bob.path), body: 'after' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await toBob).body.toString()).to.equal('after');
    const toAlice = nextMessage(alice, 3000);
    expect((await bob.send({ toPath: bob.toPathFor(alice.path), body: 'back' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await toAlice).body.toString()).to.equal('back');
    expect(aliceWire.text() + bobWire.text()).to.not.include('unknownTid9');
    expect([alice.isClosed, bob.isClosed, relay.connectionCount]).to.deep.equal([false, false, 2]);
  });

  it('answers AUTH with Basic, qop=auth-int, algorithm=MD5-sess or a Digest without cnonce with 401 (§2.15 #6)', async () => {
    const relay = await h.relay();
    const relayUri = h.relayUri(relay);
    const first = await h.connect(relay);
    const challenge = await first.request({ method: 'AUTH', toPath: relayUri, fromPath: first.uri });
    const { realm, nonce } = parseDigestChallenge(getHeader(challenge.headers, 'www-authenticate')!);
    const ha1 = md5(`alice:${realm}:${USERS.alice}`);
    const ha2 = md5(`AUTH:${relayUri}`);
    const common = `username="alice", realm="${realm}", nonce="${nonce}", uri="${relayUri}"`;
    // Each response computed right for its own variant: only the variant itself is refused.
    const authInt = md5(`${ha1}:${nonce}:00000001:c1:auth-int:${md5(`AUTH:${relayUri}:${md5('')}`)}`);
    const sessHa1 = md5(`${ha1}:${nonce}:c2`);
    const sess = md5(`${sessHa1}:${nonce}:00000002:c2:auth:${ha2}`);
    const noCnonce = md5(`${ha1}:${nonce}:${ha2}`);
    const variants: Record<string, string> = {
      basic: `Basic ${Buffer.from(`alice:${USERS.alice}`).toString('base64')}`,
      authInt: `Digest ${common}, response="${authInt}", qop=auth-int, cnonce="c1", nc=00000001`,
      md5Sess: `Digest ${common}, response="${sess}", algorithm=MD5-sess, qop=auth, cnonce="c2", nc=00000002`,
      noCnonce: `Digest ${common}, response="${noCnonce}"`,
    };
    const codes: Record<string, unknown> = {};
    for (const [name, authorization] of Object.entries(variants)) {
      const ep = await h.connect(relay);
      const res = await ep.request({
        method: 'AUTH',
        toPath: relayUri,
        fromPath: ep.uri,
        headers: [['Authorization', authorization]],
      });
      const www = getHeader(res.headers, 'www-authenticate') ?? '';
      codes[name] = [
        res.kind === 'response' && res.statusCode,
        getHeader(res.headers, 'use-path'),
        parseDigestChallenge(www).qop,
      ];
    }
    expect(codes).to.deep.equal({
      basic: [401, undefined, 'auth'],
      authInt: [401, undefined, 'auth'],
      md5Sess: [401, undefined, 'auth'],
      noCnonce: [401, undefined, 'auth'],
    });
    // The same nonce answered as RFC 4976 §5.1 asks is accepted: the variants were refused for what they are.
    const good = md5(`${ha1}:${nonce}:00000003:c3:auth:${ha2}`);
    const res = await first.request({
      method: 'AUTH',
      toPath: relayUri,
      fromPath: first.uri,
      headers: [
        ['Authorization', `Digest ${common}, response="${good}", qop=auth, cnonce="c3", nc=00000003`],
      ],
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    expect(relay.counters.authOk).to.equal(1);
  });

  it('answers a WebSocket client’s Ping with a Pong and forwards its next SEND normally (§3.9 #10)', async () => {
    const relay = await h.relay(wsRelayOptions());
    const carol = await wsClient(h, relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const pong = new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('timed out waiting for the pong')), 3000);
      carol.ws!.once('pong', (data: Buffer) => {
        clearTimeout(timer);
        resolve(data.toString());
      });
    });
    carol.ws!.ping('abc');
    expect(await pong).to.equal('abc');
    const got = nextMessage(bob, 3000);
    const res = await carol.send({ toPath: carol.toPathFor(bob.path), body: 'ok', messageId: 'afterping1' });
    expect(res.statuses).to.deep.equal([200]);
    const m = await got;
    expect([m.messageId, m.body.toString()]).to.deep.equal(['afterping1', 'ok']);
    expect(m.fromPath.split(' ')).to.deep.equal([bob.usePath[0], carol.usePath[0], carol.uri]);
    expect([carol.errors, carol.isClosed]).to.deep.equal([[], false]);
  });

  it('matches sessions by To-Path when its public host differs from its listen address (§7.6 #1)', async () => {
    const relay = await h.relay({ publicHost: 'relay.example.test' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const port = relay.addresses()[0]!.port;
    for (const ep of [alice, bob]) {
      const u = parseUri(ep.usePath[0]!);
      expect([u.host, u.port]).to.deep.equal(['relay.example.test', port]);
    }
    const toBob = nextMessage(bob, 3000);
    const sent = await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: 'via cema',
      messageId: 'cemamsg1',
    });
    expect(sent.statuses).to.deep.equal([200]);
    const m = await toBob;
    expect([m.body.toString(), m.fromPath.split(' ')]).to.deep.equal([
      'via cema',
      [bob.usePath[0], alice.usePath[0], alice.uri],
    ]);
    const toAlice = nextMessage(alice, 3000);
    expect((await bob.send({ toPath: bob.toPathFor(alice.path), body: 'back' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await toAlice).body.toString()).to.equal('back');
  });

  it('re-chunks a chunk above 2^32 toward a WebSocket client with exact Byte-Ranges (§7.6 #3)', async () => {
    const max = 4096;
    const relay = await h.relay(wsRelayOptions({ wsMaxMessageBytes: max, maxMessageBytes: 8 * 2 ** 30 }));
    const carol = await wsClient(h, relay, 'carol', { keepBodiesUpTo: 0 });
    const bob = await h.client(relay, 'bob');
    const raw: Buffer[] = [];
    carol.ws!.on('message', (d: Buffer) => raw.push(d));
    const start = 2 ** 32 + 1;
    const n = 5000;
    const total = start + n - 1; // 4294972296: the last 5000 octets of a 4 GiB file
    const body = Buffer.alloc(n, 0x79);
    const res = await bob.request({
      method: 'SEND',
      toPath: bob.toPathFor(carol.path),
      fromPath: bob.uri,
      headers: [
        ['Message-ID', 'hugefile1'],
        ['Byte-Range', `${start}-${total}/${total}`],
      ],
      contentType: 'application/octet-stream',
      body,
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    // Body per WebSocket message: wsMaxMessageBytes minus the room kept for head and end-line, 4 KiB or
    // half the message when that is smaller (lib/relay/relay.ts wsHeadRoom).
    const piece = max - Math.min(4096, max >> 1);
    const expected: string[] = [];
    for (let s = start; s <= total; s += piece)
      expected.push(`${s}-${Math.min(s + piece - 1, total)}/${total}`);
    expect(expected).to.deep.equal([
      '4294967297-4294969344/4294972296',
      '4294969345-4294971392/4294972296',
      '4294971393-4294972296/4294972296',
    ]);
    await until(() => raw.length === expected.length, 3000, 'the re-chunked pieces');
    const frames = raw.map((msg) => {
      const { frames: one, errors } = parseFrames(msg);
      expect(errors).to.deep.equal([]);
      expect(one).to.have.length(1);
      return one[0]!;
    });
    expect(frames.map((f) => getHeader(f.headers, 'byte-range'))).to.deep.equal(expected);
    expect(frames.map((f) => f.flag).join('')).to.equal('++$');
    expect(Buffer.concat(frames.map((f) => f.body!)).equals(body)).to.equal(true);
    expect(raw.every((msg) => msg.length <= max)).to.equal(true);
  });

  it('sends the 200 to a SEND with a two-URI From-Path to the first URI only (§1.17 #7)', async () => {
    const relay = await h.relay();
    const bob = await h.client(relay, 'bob');
    // A peer relay's connection (not authenticated here) delivering to bob's token.
    const remote = await h.connect(relay);
    const remoteWire = tap(remote);
    const upstream = 'msrp://relay2.example.test:2855/r2tok1234;tcp';
    const got = nextMessage(bob, 3000);
    const res = await remote.request({
      transactionId: 'fp2send01',
      method: 'SEND',
      toPath: `${bob.usePath[0]} ${bob.uri}`,
      fromPath: `${upstream} ${remote.uri}`,
      headers: [
        ['Message-ID', 'fp2msg01'],
        ['Byte-Range', '1-5/5'],
      ],
      contentType: 'text/plain',
      body: 'hello',
    });
    expect([res.kind, res.transactionId, res.kind === 'response' && res.statusCode, res.flag]).to.deep.equal([
      'response',
      'fp2send01',
      200,
      '$',
    ]);
    expect(res.headers.slice(0, 2)).to.deep.equal([
      ['To-Path', upstream],
      ['From-Path', bob.usePath[0]],
    ]);
    expect(remoteWire.text()).to.match(/^MSRP fp2send01 200 [^\r]*\r\nTo-Path: \S+\r\n/);
    const m = await got;
    expect([m.body.toString(), m.fromPath.split(' ')]).to.deep.equal([
      'hello',
      [bob.usePath[0], upstream, remote.uri],
    ]);
  });
});
