/**
 * Relay behaviour on the wire that mutation testing found unpinned: the 403 for a request not addressed
 * to this relay (no open relaying), the silence owed to a REPORT the relay refuses, the inclusive bounds
 * of the AUTH Expires policy, no 200 and no timeout REPORT for Failure-Report `partial`, and the To-Path
 * of an error answered upstream for a SEND (the first From-Path URI only).
 */
import { expect } from 'chai';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { Harness, nextMessage, sleep, until, USERS } from '../helpers/relay.js';
import { responseTo, sendHead, tap } from '../helpers/wire.js';

/** The relay's open sub-chunk entry, as far as these tests look at it. */
interface OpenTx {
  tid: string;
}

describe('relay behaviour found unpinned by mutation testing', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('refuses with 403 a SEND whose first To-Path URI is not this relay, or is its device URI, and dials nothing (RFC 4976 §6.4)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const a = relay.addresses()[0]!;
    const opened = relay.counters.connectionsOpened;
    const statuses: Array<[number | false, string]> = [];
    for (const [tid, first] of [
      ['notours01', 'msrp://127.0.0.1:9/someSession1;tcp'],
      ['notours02', `msrp://${a.host}:${a.port};tcp`],
    ] as const) {
      const res = await alice.request({
        transactionId: tid,
        method: 'SEND',
        toPath: `${first} ${bob.uri}`,
        fromPath: alice.uri,
        headers: [
          ['Message-ID', `${tid}m`],
          ['Byte-Range', '1-5/5'],
        ],
        contentType: 'text/plain',
        body: 'hello',
      });
      statuses.push([res.kind === 'response' && res.statusCode, res.headers[1]![1]]);
    }
    expect(statuses).to.deep.equal([
      [403, 'msrp://127.0.0.1:9/someSession1;tcp'],
      [403, `msrp://${a.host}:${a.port};tcp`],
    ]);
    expect(relay.counters.refused).to.deep.equal({ '403': 2 });
    expect(relay.counters.connectionsOpened).to.equal(opened); // no next hop dialed
  });

  it('sends no response to a REPORT it refuses (unknown token) and keeps the connection (RFC 4975 §7.1.2)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const aliceWire = tap(alice);
    const a = relay.addresses()[0]!;
    alice.write(
      Buffer.from(
        `MSRP rprt0001 REPORT\r\nTo-Path: msrp://${a.host}:${a.port}/NoSuchTok12345;tcp ${bob.uri}\r\n` +
          `From-Path: ${alice.uri}\r\nMessage-ID: rprtmsg1\r\nByte-Range: 1-5/5\r\nStatus: 000 200 OK\r\n` +
          `-------rprt0001$\r\n`,
        'latin1',
      ),
    );
    await until(() => (relay.counters.refused['481'] ?? 0) === 1, 3000, 'the REPORT refused');
    const got = nextMessage(bob, 3000);
    expect((await alice.send({ toPath: alice.toPathFor(bob.path), body: 'after' })).statuses).to.deep.equal([
      200,
    ]);
    expect((await got).body.toString()).to.equal('after');
    await sleep(100);
    expect(aliceWire.text()).to.not.include('rprt0001');
    expect(alice.isClosed).to.equal(false);
  });

  it('grants AUTH with Expires exactly at the minimum and exactly at the maximum (RFC 4976 §6.3)', async () => {
    const relay = await h.relay({ authMinExpires: 100, authMaxExpires: 1000 });
    const ep = await h.connect(relay);
    const got: Array<[number | false, string | undefined]> = [];
    for (const expires of [100, 1000]) {
      const res = await ep.auth({
        relayUri: h.relayUri(relay),
        username: 'alice',
        password: USERS.alice,
        expires,
      });
      got.push([res.kind === 'response' && res.statusCode, getHeader(res.headers, 'expires')]);
    }
    expect(got).to.deep.equal([
      [200, '100'],
      [200, '1000'],
    ]);
  });

  it('sends no 200 for a SEND with Failure-Report: partial that it forwards (RFC 4975 §7.1.1)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const aliceWire = tap(alice);
    const got = nextMessage(bob, 3000);
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'part0001', [
          ['Message-ID', 'partmsg1'],
          ['Byte-Range', '1-5/5'],
          ['Failure-Report', 'partial'],
        ]) + 'hello\r\n-------part0001$\r\n',
        'latin1',
      ),
    );
    expect((await got).body.toString()).to.equal('hello');
    // A request behind it on the same connection: once its 200 is in, the relay has answered the first.
    expect((await alice.send({ toPath: alice.toPathFor(bob.path), body: 'after' })).statuses).to.deep.equal([
      200,
    ]);
    await sleep(100);
    expect(aliceWire.text()).to.not.include('part0001');
  });

  it('answers an upstream relay’s open chunk refused by the next hop to the first From-Path URI only (RFC 4975 §7.2)', async () => {
    const relay = await h.relay();
    const bob = await h.client(relay, 'bob', { respond: () => null });
    // A peer relay's connection (not authenticated here) delivering to bob's token.
    const remote = await h.connect(relay);
    const remoteWire = tap(remote);
    const upstream = 'msrp://relay2.example.test:2855/r2tok1234;tcp';
    remote.write(
      Buffer.from(
        `MSRP up000001 SEND\r\nTo-Path: ${bob.usePath[0]} ${bob.uri}\r\n` +
          `From-Path: ${upstream} ${remote.uri}\r\nMessage-ID: upmsg001\r\nByte-Range: 1-*/*\r\n` +
          `Content-Type: text/plain\r\n\r\n${'u'.repeat(5000)}`,
        'latin1',
      ),
    );
    const table = relay.transactions as unknown as { openChunks(): OpenTx[] };
    await until(() => table.openChunks().length === 1, 3000, 'the open sub-chunk');
    bob.write(responseTo(bob, bob.usePath[0]!, table.openChunks()[0]!.tid, '413 Stop'));
    await until(() => remoteWire.text().includes('MSRP up000001 413'), 3000, 'the 413 upstream');
    const res = parseFrames(Buffer.from(remoteWire.text(), 'latin1')).frames.find(
      (f) => f.transactionId === 'up000001',
    );
    expect([res?.kind === 'response' && res.statusCode, res?.headers[0]]).to.deep.equal([
      413,
      ['To-Path', upstream],
    ]);
  });

  it('sends no timeout REPORT for a Failure-Report: partial SEND the next hop never answers (RFC 4976 §6.5)', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 200 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const got = nextMessage(bob, 3000);
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'ptmo0001', [
          ['Message-ID', 'ptmomsg1'],
          ['Byte-Range', '1-5/5'],
          ['Failure-Report', 'partial'],
        ]) + 'hello\r\n-------ptmo0001$\r\n',
        'latin1',
      ),
    );
    expect((await got).body.toString()).to.equal('hello');
    // A Failure-Report yes SEND sent after it, also unanswered, does time out: the timer ran past both.
    const yes = await alice.send({ toPath: alice.toPathFor(bob.path), body: 'yes', messageId: 'ptmoyes1' });
    expect(yes.statuses).to.deep.equal([200]);
    await until(() => reports.length >= 1, 3000, 'the 408 REPORT of the FR yes SEND');
    await sleep(300);
    expect(
      reports.map((r) => [getHeader(r.headers, 'message-id'), getHeader(r.headers, 'status')]),
    ).to.deep.equal([['ptmoyes1', '000 408 Request Timeout']]);
    expect(relay.counters.transactionTimeouts).to.equal(1);
  });
});
