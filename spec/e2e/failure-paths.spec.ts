/**
 * Failure paths found by the fourth session's conformance audit, each with real traffic through the relay:
 * a next hop that answers a chunk before its end-line (RFC 4975 §7.1), the Byte-Range of a refused
 * `Failure-Report: partial` chunk (digest §1.10), and the `failed` IMDN for `partial` non-200s and for
 * 413s (issue 5, DESIGN.md "Report policy").
 */
import { expect } from 'chai';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { parseByteRange } from '../../lib/msrp/headers.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { serializeRequest } from '../../lib/msrp/serializer.js';
import { imFromAlice } from '../helpers/cpim-fixtures.js';
import { refusedRequest, responseTo, sendFlagLate, sendHead, tap, writeRead } from '../helpers/wire.js';
import { Harness, next, nextMessage, sleep, until } from '../helpers/relay.js';
import { wsClient, wsRelayOptions } from '../helpers/ws.js';

/** Every complete SEND frame (raw text) written to `ep`'s socket whose body is a delivery notification. */
function rawReports(ep: MsrpEndpoint): () => string[] {
  const chunks: Buffer[] = [];
  ep.socket.on('data', (d: Buffer) => chunks.push(d));
  return () => {
    const s = Buffer.concat(chunks).toString('utf8');
    const out: string[] = [];
    const re = /MSRP (\S+) SEND\r\n/g;
    for (let m = re.exec(s); m !== null; m = re.exec(s)) {
      const end = s.indexOf(`\r\n-------${m[1]}$`, m.index);
      if (end === -1) continue;
      const frame = s.slice(m.index, end);
      if (/<delivery-notification>|<type>delivery<\/type>/.test(frame)) out.push(frame);
    }
    return out;
  };
}

const statusOf = (frame: string): string => /<status><(\w+)\/><\/status>/.exec(frame)?.[1] ?? '?';

describe('relay failure paths (RFC 4975 §7.1, RFC 4976 §6.5, issue 5)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('answers the sender 413 at once when the next hop refuses a chunk mid-way, and stops the chunk', async () => {
    // RFC 4975 §7.1: a receiver cancels a transfer by answering the SEND in progress with 413; the
    // sender's own transaction is still open, so it gets the 413 itself (and no 200 follows).
    const relay = await h.relay({ transactionTimeoutMs: 5000 });
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const bobWire = tap(bob);
    const aliceWire = tap(alice);
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const N = 20000;
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'big00413', [
          ['Message-ID', 'bigmsg413'],
          ['Byte-Range', `1-*/${N}`],
        ]) + 'a'.repeat(8000),
        'latin1',
      ),
    );
    await until(() => /^MSRP \S+ SEND/.test(bobWire.text()), 2000, 'forwarded head at bob');
    const tid = /^MSRP (\S+) SEND/.exec(bobWire.text())![1]!;
    bob.write(responseTo(bob, alice.usePath[0], tid, '413 Too large'));
    // Before the fix the 413 was dropped as unknown: a 000 408 REPORT came only when the timer fired.
    await until(() => aliceWire.text().includes('MSRP big00413 413 Too large'), 2000, 'the 413 at alice');
    // The rest of the chunk does not reach bob: the sub-chunk he refused ends with `#`.
    alice.write(Buffer.from('b'.repeat(N - 8000) + '\r\n-------big00413$\r\n', 'latin1'));
    await until(() => bobWire.text().includes(`-------${tid}#`), 2000, 'the aborted end-line at bob');
    await sleep(100);
    expect([
      bobWire.text().includes('b'.repeat(100)),
      /MSRP big00413 200/.test(aliceWire.text()),
    ]).to.deep.equal([false, false]);
    expect(reports).to.deep.equal([]);
  });

  it('reports a 413 the next hop sends mid-chunk as a failure REPORT once the sender has finished', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 5000 });
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const bobWire = tap(bob);
    const table = relay.transactions as unknown as { openChunks(): { dest: { conn: object } }[] };
    // The whole chunk is read (and answered 200) while bob's socket is backed up, so its tail waits.
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'fin00413', [
          ['Message-ID', 'finmsg413'],
          ['Byte-Range', '1-20000/20000'],
        ]) + 'a'.repeat(10_000),
        'latin1',
      ),
    );
    await until(() => table.openChunks().length === 1, 3000, 'the open sub-chunk');
    const open = table.openChunks()[0]!;
    Object.defineProperty(open.dest.conn, 'writableLength', { get: () => 1 << 30 });
    const report = next<Frame>(alice, 'report', 3000);
    alice.write(Buffer.from('b'.repeat(10_000) + '\r\n-------fin00413$\r\n', 'latin1'));
    await sleep(100);
    const tid = /^MSRP (\S+) SEND/.exec(bobWire.text())![1]!;
    bob.write(responseTo(bob, alice.usePath[0], tid, '413 Too large'));
    const f = await report;
    const range = parseByteRange(getHeader(f.headers, 'byte-range')!);
    expect([getHeader(f.headers, 'status'), range.start, range.total]).to.deep.equal([
      '000 413 Too large',
      1,
      20000,
    ]);
  });

  it('counts a 200 the next hop sends mid-chunk once the chunk is out: delivered, and no 408 later', async () => {
    const relay = await h.relay({ transactionTimeoutMs: 200, reports: 'on-ack' });
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const bobWire = tap(bob);
    const reports = rawReports(alice);
    const failures: Frame[] = [];
    alice.on('report', (f: Frame) => failures.push(f));
    const body = imFromAlice('early200', 'positive-delivery', 'z'.repeat(6000));
    const head = sendHead(
      alice,
      bob,
      'early200',
      [
        ['Message-ID', 'early200m'],
        ['Byte-Range', `1-${body.length}/${body.length}`],
      ],
      'message/cpim',
    );
    alice.write(Buffer.concat([Buffer.from(head), body.subarray(0, 3000)]));
    await until(() => /^MSRP \S+ SEND/.test(bobWire.text()), 2000, 'forwarded head at bob');
    const tid = /^MSRP (\S+) SEND/.exec(bobWire.text())![1]!;
    bob.write(responseTo(bob, alice.usePath[0], tid, '200 OK'));
    await sleep(50);
    alice.write(Buffer.concat([body.subarray(3000), Buffer.from('\r\n-------early200$\r\n')]));
    await until(() => reports().length === 1, 2000, 'the delivered report');
    await sleep(600); // three transaction timeouts: the answered chunk must not time out
    expect([reports().map(statusOf), failures.length]).to.deep.equal([['delivered'], 0]);
    expect(bobWire.text()).to.include(`-------${tid}$`);
  });

  it('gives a refused Failure-Report: partial chunk of unknown end a Byte-Range naming the octets received', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const report = next<Frame>(alice, 'report', 2000);
    // 403 (spoofed From-Path), FR partial: the relay answers with a failure REPORT (docs/architecture.md).
    alice.write(
      Buffer.from(
        `MSRP part0403 SEND\r\nTo-Path: ${alice.usePath[0]} msrp://bob.example.net:7394/s8Fh2kQpZr;tcp\r\n` +
          `From-Path: msrp://spoof.example.org:1/x1x1;tcp\r\nMessage-ID: midpart01\r\nByte-Range: 1-*/100\r\n` +
          `Failure-Report: partial\r\nContent-Type: text/plain\r\n\r\nHelloWorld\r\n-------part0403+\r\n`,
        'latin1',
      ),
    );
    const f = await report;
    const br = getHeader(f.headers, 'byte-range')!;
    // Before the fix: `1-0/100`, an end before the start that the relay's own parser refuses.
    expect(() => parseByteRange(br)).to.not.throw();
    expect(br).to.equal('1-10/100');
  });

  it('injects `failed`, not `delivered`, when a Failure-Report: partial chunk gets a non-200 before the last chunk is out', async () => {
    // DESIGN.md "When": failed when a chunk gets a non-200. docs/reports.md: "with `partial` a later non-200
    // still fails the message if it comes before the last octet is written".
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => 486 });
    const reports = rawReports(alice);
    const body = imFromAlice('partial1', 'positive-delivery, negative-delivery', 'y'.repeat(300));
    const chunk = (tid: string, s: number, e: number, flag: '+' | '$'): Buffer =>
      serializeRequest({
        method: 'SEND',
        transactionId: tid,
        toPath: alice.toPathFor(bob.path),
        fromPath: alice.uri,
        headers: [
          ['Message-ID', 'partMsg1'],
          ['Failure-Report', 'partial'],
          ['Byte-Range', `${s}-${e}/${body.length}`],
        ],
        contentType: 'message/cpim',
        body: body.subarray(s - 1, e),
        flag,
      });
    let bobGot = 0;
    bob.on('request', () => bobGot++);
    alice.write(chunk('tidPart1', 1, 250, '+'));
    await until(() => bobGot === 1, 3000, 'chunk 1 at bob');
    await sleep(200); // bob's 486 for chunk 1 reaches the relay
    alice.write(chunk('tidPart2', 251, body.length, '$'));
    await until(() => bobGot === 2, 3000, 'chunk 2 at bob');
    await sleep(300);
    expect(reports().map(statusOf)).to.deep.equal(['failed']);
  });

  it('sends no failure REPORT for Failure-Report: partial chunks written whole well before the recipient goes', async () => {
    // Fuzz audit: every partial chunk of the last --transaction-timeout got "481 Next hop connection lost"
    // when the recipient left, delivered or not (RFC 4975 §7.1.1: with partial, only failures are told).
    // Those handed over within PARTIAL_READ_GRACE_MS (2 s) of an orderly close still are (may be unread).
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    let bobGot = 0;
    bob.on('request', () => bobGot++);
    for (let i = 0; i < 3; i++)
      alice.write(
        serializeRequest({
          method: 'SEND',
          transactionId: `tidWhole${i}`,
          toPath: alice.toPathFor(bob.path),
          fromPath: alice.uri,
          headers: [
            ['Message-ID', `whole${i}`],
            ['Failure-Report', 'partial'],
            ['Byte-Range', '1-5/5'],
          ],
          contentType: 'text/plain',
          body: 'hello',
        }),
      );
    await until(() => bobGot === 3, 3000, 'the three chunks at bob');
    await sleep(2100); // past PARTIAL_READ_GRACE_MS
    // A fourth chunk still open (head and part of its body out, no end-line) when bob goes does fail.
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'tidOpen01', [
          ['Message-ID', 'open01'],
          ['Failure-Report', 'partial'],
          ['Byte-Range', '1-*/100'],
        ]) + 'x'.repeat(40),
        'latin1',
      ),
    );
    await until(() => relay.transactions.openChunks().length === 1, 3000, 'the open chunk');
    const aliceWire = tap(alice);
    await bob.close();
    await until(() => relay.transactions.openChunks().length === 0, 3000, 'bob gone');
    // The open chunk's sender finishes it: its octets after the loss went nowhere, so it fails.
    alice.write(Buffer.from('y'.repeat(60) + '\r\n-------tidOpen01$\r\n', 'latin1'));
    await until(() => /Message-ID: open01/.test(aliceWire.text()), 3000, 'the REPORT for the open chunk');
    await sleep(200);
    expect(reports.map((f) => getHeader(f.headers, 'message-id'))).to.deep.equal(['open01']);
    expect(aliceWire.text()).to.not.match(/Message-ID: whole/);
  });

  it('fails a chunk queued toward a recipient that half-closes and stops reading, within the close grace', async function () {
    this.timeout(20_000);
    // Chaining audit: a peer's FIN with octets still queued toward it (its buffers full) left the socket in
    // CLOSE-WAIT for good; the chunk's sender got nothing (no answer, the transaction never expired).
    const relay = await h.relay({ transactionTimeoutMs: 60_000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const aliceWire = tap(alice);
    bob.socket.pause(); // reads nothing: once the kernel's buffers are full, the rest stays queued in the relay
    const N = 32 * 1024 * 1024;
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'tidHalf1', [
          ['Message-ID', 'half01'],
          ['Byte-Range', `1-${N}/${N}`],
        ]) +
          'h'.repeat(N) +
          '\r\n-------tidHalf1$\r\n',
        'latin1',
      ),
    );
    await until(() => relay.queuedBytes() > 0, 5000, 'octets queued toward bob');
    await sleep(1500);
    expect(relay.queuedBytes()).to.be.above(0); // the kernel took what it could: the rest waits here
    bob.socket.end(); // a FIN, and bob stays: never reads, never closes
    await until(() => /tidHalf1 481 /.test(aliceWire.text()), 9000, 'a 481 for the chunk');
    expect(relay.connectionCount).to.equal(1);
    bob.socket.destroy();
  });

  describe('Failure-Report partial, the next hop lost after the chunk went out whole', () => {
    // Silent-loss audit: a `partial` chunk handed whole to the recipient's socket got no REPORT when that
    // connection broke before the recipient read it (25-80 % of such messages in the audit's trials).
    type End = 'reset' | 'half-close unread' | 'read, then closed 2 s later';
    async function partialThenEnd(end: End): Promise<string[]> {
      const relay = await h.relay({ transactionTimeoutMs: 10_000 });
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob', { respond: () => null });
      const reports: Frame[] = [];
      alice.on('report', (f: Frame) => reports.push(f));
      let got = 0;
      bob.socket.on('data', (d: Buffer) => (got += d.length));
      if (end !== 'read, then closed 2 s later') bob.socket.pause(); // a phone that lost its coverage
      const N = 64 * 1024;
      alice.write(
        Buffer.from(
          sendHead(alice, bob, 'tidPart1', [
            ['Message-ID', 'part01'],
            ['Byte-Range', `1-${N}/${N}`],
            ['Failure-Report', 'partial'],
          ]) +
            'p'.repeat(N) +
            '\r\n-------tidPart1$\r\n',
          'latin1',
        ),
      );
      // Out whole: its transaction waits (no answer comes for `partial`), none being written.
      await until(
        () => relay.transactions.size === 1 && relay.transactions.openChunks().length === 0,
        3000,
        'the chunk written whole',
      );
      if (end === 'reset') bob.socket.resetAndDestroy();
      else if (end === 'half-close unread')
        bob.socket.end(); // a FIN, the chunk still unread (review)
      else {
        await until(() => got > N, 3000, 'the chunk read by bob');
        await sleep(2100); // past PARTIAL_READ_GRACE_MS
        await bob.close();
      }
      await until(() => relay.transactions.size === 0, 3000, 'the transaction gone with the connection');
      await until(() => reports.length > 0, 500, 'a REPORT').catch(() => undefined);
      bob.socket.destroy();
      return reports.map((f) => getHeader(f.headers, 'status') ?? '?');
    }

    for (const end of ['reset', 'half-close unread'] as const)
      it(`sends a failure REPORT when the recipient's connection ends (${end}): delivery unknown`, async () => {
        expect(await partialThenEnd(end)).to.deep.equal(['000 481 Next hop connection lost']);
      });

    it('sends none when the recipient read it and closed in order well after', async () => {
      expect(await partialThenEnd('read, then closed 2 s later')).to.deep.equal([]);
    });

    it('reports, of a WebSocket recipient that closed in order, only what came in its last 2 s', async () => {
      // Second review: one message given while `ws` was closing made every chunk of the last 30 s fail.
      const relay = await h.relay(wsRelayOptions({ transactionTimeoutMs: 10_000 }));
      const alice = await h.client(relay, 'alice');
      const bob = await wsClient(h, relay, 'bob', { respond: () => null });
      const reports: Frame[] = [];
      alice.on('report', (f: Frame) => reports.push(f));
      let got = 0;
      bob.on('request', () => got++);
      const partial = (id: string): Buffer =>
        Buffer.from(
          sendHead(alice, bob, `tid${id}x`, [
            ['Message-ID', id],
            ['Byte-Range', '1-5/5'],
            ['Failure-Report', 'partial'],
          ]) + `hello\r\n-------tid${id}x$\r\n`,
          'latin1',
        );
      alice.write(partial('old1'));
      await until(() => got === 1, 2000, 'old1 at bob');
      await sleep(2100); // past PARTIAL_READ_GRACE_MS
      bob.ws!.close(1000, 'bye');
      bob.socket.pause(); // the handshake waits: the relay's `ws` is closing
      await sleep(100);
      alice.write(partial('new1'));
      await until(() => relay.counters.forwarded >= 2, 2000, 'new1 forwarded');
      bob.socket.resume();
      await until(() => relay.counters.connectionsClosed >= 1, 3000, 'bob gone');
      await until(() => reports.length > 1, 500, 'a second REPORT').catch(() => undefined);
      expect(reports.map((f) => getHeader(f.headers, 'message-id'))).to.deep.equal(['new1']);
    });

    it('reports a chunk a WebSocket recipient dropped after sending its close frame', async () => {
      // Review: `ws` drops what is sent once it is closing, and the close then completes with 1000.
      const relay = await h.relay(wsRelayOptions({ transactionTimeoutMs: 10_000 }));
      const alice = await h.client(relay, 'alice');
      const bob = await wsClient(h, relay, 'bob', { respond: () => null });
      const reports: Frame[] = [];
      alice.on('report', (f: Frame) => reports.push(f));
      bob.ws!.close(1000, 'bye');
      bob.socket.pause(); // the relay's answer to the close frame waits: the handshake is not over
      await sleep(100); // the relay reads bob's close frame: its `ws` is closing, the connection not closed
      alice.write(
        Buffer.from(
          sendHead(alice, bob, 'tidPartW', [
            ['Message-ID', 'partw1'],
            ['Byte-Range', '1-5/5'],
            ['Failure-Report', 'partial'],
          ]) + 'hello\r\n-------tidPartW$\r\n',
          'latin1',
        ),
      );
      await until(() => relay.counters.forwarded >= 1, 2000, 'forwarded');
      bob.socket.resume();
      await until(() => reports.length === 1, 3000, 'the failure REPORT');
      expect(getHeader(reports[0]!.headers, 'status')).to.equal('000 481 Next hop connection lost');
    });
  });

  for (const [what, range, size, status, bobOver] of [
    ['passes --max-message-size mid-body', '1-*/*', 1500, '413', 'tcp'],
    ['runs past its Byte-Range', '1-600/900', 800, '400', 'tcp'],
    // Review: toward a WebSocket next hop the `#` piece was still awaited.
    ['passes --max-message-size mid-body toward a WebSocket recipient', '1-*/*', 1500, '413', 'ws'],
  ] as const) {
    it(`tells the sender once of a chunk that ${what}: no 408 failure REPORT after the ${status}`, async () => {
      // Observability audit: the relay cut the forwarded part with `#` and answered the sender, then
      // waited for the next hop's answer to that part; bob giving none, the timer sent a `000 408`
      // REPORT for the same chunk (and counted a transaction timeout).
      const relay = await h.relay(wsRelayOptions({ maxMessageBytes: 1000, transactionTimeoutMs: 800 }));
      const alice = await h.client(relay, 'alice');
      const silent = { respond: () => null };
      const bob =
        bobOver === 'ws' ? await wsClient(h, relay, 'bob', silent) : await h.client(relay, 'bob', silent);
      const aliceWire = tap(alice);
      const bobWire = tap(bob);
      alice.write(
        Buffer.from(
          sendHead(alice, bob, 'tidCut01', [
            ['Message-ID', 'cut01'],
            ['Byte-Range', range],
          ]) +
            'x'.repeat(size) +
            '\r\n-------tidCut01$\r\n',
          'latin1',
        ),
      );
      await until(() => aliceWire.text().includes(`MSRP tidCut01 ${status}`), 2000, `the ${status} at alice`);
      await until(() => /\r\n-------\w+#\r\n/.test(bobWire.text()), 2000, 'the `#` end-line at bob');
      await sleep(1500); // past the transaction timeout
      expect({
        reports: (aliceWire.text().match(/ REPORT\r\n/g) ?? []).length,
        timeouts: relay.counters.transactionTimeouts,
        pending: relay.transactions.size,
      }).to.deep.equal({ reports: 0, timeouts: 0, pending: 0 });
    });
  }

  it('tells the sender once of a chunk cut after an interruption, its next hop then lost: no 481 after the 413', async () => {
    // Review: the connection loss reported the interrupted `+` piece of a chunk already refused.
    const relay = await h.relay({ maxMessageBytes: 1000, transactionTimeoutMs: 10_000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const aliceWire = tap(alice);
    const bobWire = tap(bob);
    const head = sendHead(alice, bob, 'tidCut05', [
      ['Message-ID', 'cut05'],
      ['Byte-Range', '1-*/*'],
    ]);
    alice.write(Buffer.from(head + 'x'.repeat(600), 'latin1'));
    await until(() => bobWire.text().includes('x'.repeat(500)), 2000, 'the first octets at bob');
    // A message toward alice interrupts nothing; one toward bob (from bob's own session) does: bob
    // sends, and the relay's answer to bob goes on bob's connection, cutting the chunk with `+`.
    void bob.send({ toPath: bob.toPathFor(alice.path), body: 'hi' }).catch(() => undefined);
    await until(() => /-------\w+\+\r\n/.test(bobWire.text()), 2000, 'the interruption at bob');
    alice.write(Buffer.from('y'.repeat(900) + '\r\n-------tidCut05$\r\n', 'latin1'));
    await until(() => aliceWire.text().includes('MSRP tidCut05 413'), 2000, 'the 413 at alice');
    bob.socket.resetAndDestroy();
    await until(() => relay.counters.connectionsClosed >= 1, 3000, 'bob gone');
    await until(() => / REPORT\r\n/.test(aliceWire.text()), 500, 'a REPORT').catch(() => undefined);
    expect(aliceWire.text()).to.not.match(/ REPORT\r\n/);
  });

  it('injects a `failed` IMDN when a chunk passes --max-message-size mid-body (413, negative-delivery asked)', async () => {
    // DESIGN.md Limits: one message over the max → 413 to the chunk; docs/reports.md: failed on "a 413".
    const relay = await h.relay({ maxMessageBytes: 1000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    const body = imFromAlice('big413a', 'negative-delivery', 'x'.repeat(2000));
    const head = (tid: string, range: string): string =>
      `MSRP ${tid} SEND\r\nTo-Path: ${alice.toPathFor(bob.path)}\r\nFrom-Path: ${alice.uri}\r\n` +
      `Message-ID: big413a\r\nByte-Range: ${range}\r\nContent-Type: message/cpim\r\n\r\n`;
    alice.write(
      Buffer.concat([
        Buffer.from(head('tidBigA', '1-500/*')),
        body.subarray(0, 500),
        Buffer.from('\r\n-------tidBigA+\r\n'),
        Buffer.from(head('tidBigB', '501-*/*')),
        body.subarray(500, 1300),
        Buffer.from('\r\n-------tidBigB$\r\n'),
      ]),
    );
    await until(() => relay.reports.counters.requests.imdn['negative-delivery'] === 1, 3000, 'the head read');
    await sleep(400);
    expect(reports().map(statusOf)).to.deep.equal(['failed']);
  });

  it('injects a `failed` IMDN when a chunk of unknown size passes the body limit (413, negative-delivery asked)', async () => {
    const relay = await h.relay({ maxMessageBytes: 1000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    const body = imFromAlice('big413b', 'negative-delivery', 'x'.repeat(2000));
    const head = sendHead(
      alice,
      bob,
      'tidBigC',
      [
        ['Message-ID', 'big413b'],
        ['Byte-Range', '1-*/*'],
      ],
      'message/cpim',
    );
    alice.write(Buffer.concat([Buffer.from(head), body.subarray(0, 400)]));
    await until(() => relay.reports.counters.requests.imdn['negative-delivery'] === 1, 3000, 'the head read');
    alice.write(Buffer.concat([body.subarray(400), Buffer.from('\r\n-------tidBigC$\r\n')]));
    await sleep(400);
    expect(reports().map(statusOf)).to.deep.equal(['failed']);
  });

  it('injects a `failed` IMDN when a first chunk is refused on its head for its size (413)', async () => {
    // The Byte-Range total is over --max-message-size, so nothing is forwarded; the body is still read
    // for its CPIM head. Before the fix the sender got the 413 and no IMDN.
    const relay = await h.relay({ maxMessageBytes: 1000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    const wire = tap(alice);
    const bobWire = tap(bob);
    const body = imFromAlice('head413a', 'negative-delivery', 'x'.repeat(2000));
    const head = sendHead(
      alice,
      bob,
      'tidHead1',
      [
        ['Message-ID', 'head413a'],
        ['Byte-Range', `1-${body.length}/${body.length}`],
      ],
      'message/cpim',
    );
    alice.write(Buffer.concat([Buffer.from(head), body, Buffer.from('\r\n-------tidHead1$\r\n')]));
    await until(() => reports().length === 1, 3000, 'the failed IMDN');
    expect([reports().map(statusOf), /MSRP tidHead1 413/.test(wire.text())]).to.deep.equal([
      ['failed'],
      true,
    ]);
    expect(bobWire.text()).to.not.include('head413a');
  });

  it('injects a `failed` IMDN when a SEND held for dedupe passes a --max-message-size below the hold (413)', async () => {
    // A SEND without Byte-Range from a session the relay reported to is held whole (up to 8 KiB) in case
    // it is the recipient's own delivery IMDN. Before the fix, a 413 while it was held got no IMDN.
    const relay = await h.relay({ maxMessageBytes: 1000 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('first413', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    await until(() => relay.reports.counters.injected.imdn.delivered === 1, 3000, "the report of alice's IM");
    const reports = rawReports(bob);
    const body = imFromAlice('held413a', 'negative-delivery', 'x'.repeat(2000));
    const wire = tap(bob);
    bob.write(
      Buffer.concat([
        Buffer.from(sendHead(bob, alice, 'tidHeld1', [['Message-ID', 'held413a']], 'message/cpim')),
        body,
        Buffer.from('\r\n-------tidHeld1$\r\n'),
      ]),
    );
    await until(() => wire.text().includes('MSRP tidHeld1 413'), 3000, 'the 413 at bob');
    await until(() => reports().length === 1, 3000, 'the failed IMDN');
    expect(reports().map(statusOf)).to.deep.equal(['failed']);
  });

  it('drops a response whose To-Path does not name the relay instead of acting on it', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const forwarded = next<Frame>(bob, 'request');
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'Hello', messageId: 'misaddr01' });
    const tid = (await forwarded).transactionId;
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    bob.write(responseTo(bob, 'msrp://elsewhere.example.com:9/zzzz;tcp', tid, '415 Nope'));
    await sleep(300);
    // Before the fix the relay turned it into `Status: 000 415 Nope` toward alice.
    expect(reports.map((r) => getHeader(r.headers, 'status'))).to.deep.equal([]);
  });
  it('holds a chunk whose every declared octet came until its end-line, and sends it whole', async () => {
    // Fuzz finding: the end-line split from the body while a control frame waited became `+`, then an
    // empty continuation `1001-1000/1000 $` that receivers refuse. The piece carrying the last declared
    // octet now waits for the end-line, so the response toward bob goes first and the chunk stays whole.
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const bobWire = tap(bob);
    const at = relay.addresses()[0]!;
    const head = sendHead(alice, bob, 'split001', [
      ['Message-ID', 'splitend1'],
      ['Byte-Range', '1-1000/1000'],
    ]);
    alice.write(Buffer.from(head + 'a'.repeat(1000) + '\r\n-------split001', 'latin1'));
    await until(() => relay.counters.forwarded === 1, 2000, 'the chunk routed');
    // Bob sends something the relay answers itself (481): it is not stuck behind alice's chunk.
    bob.write(refusedRequest(bob, at, 'ctl00001'));
    await until(() => / 481 /.test(bobWire.text()), 2000, 'the 481 at bob');
    expect(bobWire.text()).to.not.include('a'.repeat(1000));
    alice.write(Buffer.from('$\r\n', 'latin1'));
    await until(() => /a{1000}\r\n-------\S+\$\r\n/.test(bobWire.text()), 2000, 'the chunk at bob');
    const ranges = [...bobWire.text().matchAll(/Byte-Range: (\S+)/g)].map((m) => m[1]);
    expect(ranges).to.deep.equal(['1-1000/1000']);
  });
  it('interrupts an open chunk whose sender withholds its end-line for a response, and continues it after', async () => {
    // Before, a sender that sent every declared octet but not the end-line held the receiver's responses
    // and REPORTs (and, through a chained relay, every session's) until its idle timeout.
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const bobWire = tap(bob);
    const got: Buffer[] = [];
    bob.on('message', (m: { body: Buffer }) => got.push(m.body));
    const at = relay.addresses()[0]!;
    const body = Buffer.from('b'.repeat(500) + 'c'.repeat(500), 'latin1');
    const head = sendHead(alice, bob, 'split002', [
      ['Message-ID', 'splitend2'],
      ['Byte-Range', '1-*/1000'],
    ]);
    alice.write(Buffer.concat([Buffer.from(head, 'latin1'), body.subarray(0, 500)]));
    // The parser keeps the last few octets of a read until it knows they do not start the end-line.
    await until(() => bobWire.text().includes('b'.repeat(400)), 2000, 'the first half at bob');
    // Every declared octet, and the end-line but for its flag: the relay cannot know whether `+` or `$`.
    await writeRead(
      relay,
      alice,
      Buffer.concat([body.subarray(500), Buffer.from('\r\n-------split002', 'latin1')]),
    );
    bob.write(refusedRequest(bob, at, 'ctl00002'));
    await until(() => / 481 /.test(bobWire.text()), 2000, 'the 481 at bob');
    alice.write(Buffer.from('$\r\n', 'latin1'));
    await until(() => got.length === 1, 2000, 'the message at bob');
    const ranges = [...bobWire.text().matchAll(/Byte-Range: (\S+)/g)].map((m) => m[1]);
    // The piece with the last declared octet waited for the flag: the continuation carries it, and, sent
    // whole after its end-line came, says exactly where it ends.
    expect(ranges.length).to.equal(2);
    expect(ranges[0]).to.equal('1-*/1000');
    expect(ranges[1]).to.match(/^(\d+)-1000\/1000$/);
    expect(Number(ranges[1]!.split('-')[0])).to.be.within(501, 1000);
    expect(got[0]!.equals(body)).to.equal(true);
  });
  for (const [what, range, flag] of [
    ['declares no last octet (no Byte-Range)', null, '$'],
    ['its sender ends early with `+`', '1-*/2000', '+'],
  ] as const) {
    it(`continues an interrupted chunk that ${what} with at least one octet`, async () => {
      // Before, only a declared last octet was held: these chunks, interrupted just before their end-line,
      // were continued with no octet (`1001-*`); the first went out with no Byte-Range though it ended `+`.
      const relay = await h.relay();
      const alice = await h.client(relay, 'alice');
      const bob = await h.client(relay, 'bob');
      const bobWire = tap(bob);
      const got: Buffer[] = [];
      bob.on('message', (m: { body: Buffer }) => got.push(m.body));
      const body = Buffer.from('d'.repeat(1000) + 'e'.repeat(1000), 'latin1');
      const headers: Array<[string, string]> = [['Message-ID', 'splitend5']];
      if (range !== null) headers.push(['Byte-Range', range]);
      const whole = flag === '$' ? body : body.subarray(0, 1000);
      await writeRead(
        relay,
        alice,
        Buffer.concat([Buffer.from(sendHead(alice, bob, 'split005', headers)), whole]),
      );
      await until(() => bobWire.text().includes('d'.repeat(900)), 2000, 'the first octets at bob');
      await writeRead(relay, alice, Buffer.from('\r\n-------split005', 'latin1'));
      bob.write(refusedRequest(bob, relay.addresses()[0]!, 'ctl00005'));
      await until(() => / 481 /.test(bobWire.text()), 2000, 'the 481 at bob');
      alice.write(Buffer.from(`${flag}\r\n`, 'latin1'));
      if (flag === '+') {
        const rest = sendHead(alice, bob, 'split006', [
          ['Message-ID', 'splitend5'],
          ['Byte-Range', '1001-2000/2000'],
        ]);
        alice.write(
          Buffer.concat([Buffer.from(rest), body.subarray(1000), Buffer.from('\r\n-------split006$\r\n')]),
        );
      }
      await until(() => got.length === 1, 2000, 'the message at bob');
      expect(got[0]!.equals(body)).to.equal(true);
      const ranges = [...bobWire.text().matchAll(/Byte-Range: (\S+)/g)].map((m) => m[1]!);
      const total = range === null ? '*' : 2000;
      expect(ranges[0]).to.equal(`1-*/${total}`);
      // Sent whole after the end-line: exact, and not empty.
      const cont = parseByteRange(ranges[1]!);
      const end = flag === '$' ? 2000 : 1000;
      expect([cont.end, cont.total]).to.deep.equal([end, total]);
      expect(cont.start).to.be.within(2, end);
    });
  }
  it("lets another sender's message through while a chunk toward the same receiver waits for its flag", async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const carol = await h.client(relay, 'carol');
    const bob = await h.client(relay, 'bob');
    const bobWire = tap(bob);
    const got: string[] = [];
    bob.on('message', (m: { messageId: string }) => got.push(m.messageId));
    const body = Buffer.from('d'.repeat(600) + 'e'.repeat(600), 'latin1');
    const head = sendHead(alice, bob, 'split004', [
      ['Message-ID', 'splitend4'],
      ['Byte-Range', '1-1200/1200'],
    ]);
    alice.write(Buffer.concat([Buffer.from(head, 'latin1'), body.subarray(0, 600)]));
    await until(() => bobWire.text().includes('d'.repeat(500)), 2000, 'the first part at bob');
    await writeRead(
      relay,
      alice,
      Buffer.concat([body.subarray(600), Buffer.from('\r\n-------split004', 'latin1')]),
    );
    await carol.send({ toPath: carol.toPathFor(bob.path), body: 'meanwhile', messageId: 'carol0001' });
    await until(() => got.includes('carol0001'), 2000, "carol's message at bob");
    expect(got).to.deep.equal(['carol0001']);
    alice.write(Buffer.from('$\r\n', 'latin1'));
    await until(() => got.includes('splitend4'), 2000, "alice's message at bob");
  });
  it('lets a held last piece go but its final octet when the queue is over its limit, so its sender is read again', async () => {
    // A piece held for its end-line counts toward --max-queued-bytes; past the limit the sender is paused,
    // so holding it all would leave the end-line unread for good.
    const relay = await h.relay({ maxQueuedBytes: 8192 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const bobWire = tap(bob);
    const got: Buffer[] = [];
    bob.on('message', (m: { body: Buffer }) => got.push(m.body));
    // Read whole before the flag comes: the piece with the last octet is held, the queue over its limit.
    const body = await sendFlagLate(relay, alice, bob, 'split003', 'splitend3', 20_000);
    await until(() => got.length === 1, 3000, 'the message at bob');
    expect(got[0]!.equals(body)).to.equal(true);
    const ranges = [...bobWire.text().matchAll(/Byte-Range: (\S+)/g)].map((m) => m[1]);
    // Opened before its end-line came, the chunk says `*` for its range-end (RFC 4975 §7.1: it may be
    // interrupted); a continuation sent whole after the end-line is exact.
    expect(ranges.length).to.be.within(1, 2);
    expect(ranges[0]).to.equal('1-*/20000');
    if (ranges.length === 2) expect(ranges[1]).to.equal('20000-20000/20000');
  });
  it('reads a paused sender again once a small queue has flushed, with no drain event to wake it', async () => {
    // Review finding (older than the held piece): under a small --max-queued-bytes the queue stayed over
    // half its limit in the socket's buffer, below the 16 KiB at which the socket would emit 'drain', so
    // the sender, paused at the limit, was never read again: here the 12,000-octet chunk's flag.
    const relay = await h.relay({ maxQueuedBytes: 8192 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const got: Buffer[] = [];
    bob.on('message', (m: { body: Buffer }) => got.push(m.body));
    // Read whole before the flag comes: the piece with the last octet is held, the queue over its limit.
    const body = await sendFlagLate(relay, alice, bob, 'lowwat01', 'lowwater1', 12_000);
    await until(() => got.length === 1, 3000, 'the message at bob');
    expect(got[0]!.equals(body)).to.equal(true);
    // And a whole chunk over the limit in one write does not leave the sender paused either.
    const head2 = sendHead(alice, bob, 'lowwat02', [
      ['Message-ID', 'lowwater2'],
      ['Byte-Range', '1-5/5'],
    ]);
    alice.write(Buffer.from(head2 + 'hello\r\n-------lowwat02$\r\n', 'latin1'));
    await until(() => got.length === 2, 3000, 'the second message at bob');
  });
  it('refuses a SEND held for dedupe whose body outgrows its Byte-Range, keeping none of it', async () => {
    // Fuzz finding: the held body was collected without bound (up to the 64 MiB chunk limit, outside
    // --max-queued-bytes) and forwarded whole under `Byte-Range: 1-10/10`.
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    const aliceWire = tap(alice);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('heldcap1', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    await until(() => reports().length === 1, 3000, 'the delivered report'); // bob's session may now be held
    const res = await bob.request({
      method: 'SEND',
      toPath: bob.toPathFor(alice.path),
      fromPath: bob.uri,
      headers: [
        ['Message-ID', 'heldcap2'],
        ['Byte-Range', '1-10/10'],
      ],
      contentType: 'message/cpim',
      body: Buffer.alloc(200_000, 0x62),
    });
    await sleep(100);
    expect([
      res.kind === 'response' && res.statusCode,
      aliceWire.text().includes('bbbbbbbbbb'),
    ]).to.deep.equal([400, false]);
  });
  it('refuses a chunk longer than the total its Byte-Range names when the end is `*`', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const bobWire = tap(bob);
    const res = await alice.request({
      method: 'SEND',
      toPath: alice.toPathFor(bob.path),
      fromPath: alice.uri,
      headers: [
        ['Message-ID', 'startotal'],
        ['Byte-Range', '1-*/20'],
      ],
      contentType: 'text/plain',
      body: Buffer.alloc(200_000, 0x63),
    });
    await sleep(100);
    expect([
      res.kind === 'response' && res.statusCode,
      bobWire.text().includes('c'.repeat(21)),
    ]).to.deep.equal([400, false]);
  });

  it('refuses a bodiless SEND whose Byte-Range does not parse instead of forwarding it', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const toBob: Frame[] = [];
    bob.on('request', (f: Frame) => toBob.push(f));
    const codes: Array<number | false> = [];
    for (const range of ['2-1/1', '-1-5/5']) {
      const res = await alice.request({
        method: 'SEND',
        toPath: alice.toPathFor(bob.path),
        fromPath: alice.uri,
        headers: [
          ['Message-ID', 'badrange1'],
          ['Byte-Range', range],
        ],
      });
      codes.push(res.kind === 'response' && res.statusCode);
    }
    await sleep(100);
    expect([codes, toBob.length]).to.deep.equal([[400, 400], 0]);
  });

  it('closes a connection whose request cannot be answered because a path line is malformed', async () => {
    // Fuzz finding: a From-Path line ending in a bare LF left the SEND without answer on an open connection.
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const closed = next(alice, 'close', 3000);
    alice.write(
      Buffer.from(
        `MSRP silent01 SEND\r\nTo-Path: ${alice.toPathFor(bob.path)}\r\nFrom-Path: ${alice.uri}\n` +
          `Message-ID: s1\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------silent01$\r\n`,
        'latin1',
      ),
    );
    await closed;
    expect(alice.isClosed).to.equal(true);
  });
  it('keeps the connection when a malformed path line is in a request that takes no answer (Failure-Report: no)', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    alice.write(
      Buffer.from(
        `MSRP silent02 SEND\r\nTo-Path: ${alice.toPathFor(bob.path)}\r\nFrom-Path: ${alice.uri}\n` +
          `Message-ID: s2\r\nFailure-Report: no\r\nByte-Range: 1-2/2\r\nContent-Type: text/plain\r\n\r\nhi\r\n-------silent02$\r\n`,
        'latin1',
      ),
    );
    const got = nextMessage(bob, 3000);
    await alice.send({ toPath: alice.toPathFor(bob.path), body: 'after' });
    expect([(await got).body.toString(), alice.isClosed]).to.deep.equal(['after', false]);
  });

  it("drops the recipient's own delivery IMDN sent as one whole SEND without Byte-Range (dedupe)", async () => {
    // DESIGN.md "Exactly one"; digest §1.5: Byte-Range absent ⇒ the whole message is in this request.
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('dedupeNoBR', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    await until(() => reports().length === 1, 3000, 'the relay report');
    const first = reports()[0]!;
    const own = Buffer.from(first.slice(first.indexOf('\r\n\r\n') + 4), 'utf8'); // the same document, from bob
    bob.write(
      serializeRequest({
        method: 'SEND',
        toPath: bob.toPathFor(alice.path),
        fromPath: bob.uri,
        headers: [
          ['Message-ID', 'bobOwnImdn1'],
          ['Failure-Report', 'no'],
        ],
        contentType: 'message/cpim',
        body: own,
      }),
    );
    await sleep(300);
    expect(reports().length).to.equal(1);
    expect(relay.reports.counters.duplicatesDropped).to.equal(1);
  });
  it('forwards a CPIM SEND without Byte-Range byte-identical when it outgrows the dedupe hold', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = rawReports(alice);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('holdover1', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    await until(() => reports().length === 1, 3000, 'the delivered report'); // bob's SENDs may now be held
    const big = imFromAlice('holdover2', 'negative-delivery', 'q'.repeat(20_000) + 'end');
    const got = nextMessage(alice, 3000);
    bob.write(
      serializeRequest({
        method: 'SEND',
        toPath: bob.toPathFor(alice.path),
        fromPath: bob.uri,
        headers: [['Message-ID', 'holdover2m']],
        contentType: 'message/cpim',
        body: big,
      }),
    );
    const m = await got;
    expect(Buffer.compare(m.body, big)).to.equal(0);
  });

  it('owes nothing when a drain ends with chunks answered 200 still queued toward a recipient that does not read', async function () {
    // Chaining audit: the drain failed only transactions on the timer list, then closed the senders'
    // connections; chunks queued toward a stalled destination died 2 s later with no one to tell.
    this.timeout(20_000);
    const relay = await h.relay({ writeStallMs: 0, maxQueuedBytes: 2 * 1024 * 1024 });
    const bob = await h.client(relay, 'bob');
    const delivered = new Set<string>();
    bob.on('message', (m: { messageId: string }) => delivered.add(m.messageId));
    bob.socket.pause(); // reads nothing from now on
    const reported = new Map<string, string>();
    // Octet ranges each message's REPORTs covered: one per sub-chunk, none twice.
    const ranges = new Map<string, Array<[number, number]>>();
    const twice: string[] = [];
    const answered = new Set<string>();
    // Several senders, so the relay's queue toward bob holds many whole chunks, not one sender's next.
    const senders = await Promise.all(
      (['alice', 'alice', 'carol', 'carol'] as const).map((u) => h.client(relay, u)),
    );
    senders.forEach((ep, k) => {
      ep.on('report', (f: Frame) => {
        const id = getHeader(f.headers, 'message-id') ?? '';
        const br = parseByteRange(String(getHeader(f.headers, 'byte-range')));
        const end = typeof br.end === 'number' ? br.end : br.start;
        const seen = ranges.get(id) ?? [];
        if (seen.some(([a, b]) => br.start <= b && end >= a)) twice.push(`${id} ${br.start}-${end}`);
        ranges.set(id, [...seen, [br.start, end]]);
        reported.set(id, String(getHeader(f.headers, 'status')));
      });
      for (let i = 0; i < 200; i++) {
        const id = `drainq${k}x${i}`;
        // request(), not send(): send() also waits for the sender's own socket to drain.
        void ep
          .request(
            {
              method: 'SEND',
              toPath: ep.toPathFor(bob.path),
              fromPath: ep.uri,
              headers: [
                ['Message-ID', id],
                ['Byte-Range', '1-16384/16384'],
              ],
              contentType: 'application/octet-stream',
              body: Buffer.alloc(16 * 1024, 0x61 + (i % 26)),
            },
            30_000,
          )
          .then((r) => r.kind === 'response' && r.statusCode === 200 && answered.add(id))
          .catch(() => undefined);
      }
    });
    // The relay reads what its queue toward bob allows, answers it, and then waits.
    for (let seen = -1, tries = 0; answered.size === 0 || answered.size !== seen; tries++) {
      if (tries > 50) throw new Error(`the answers did not settle (${answered.size})`);
      seen = answered.size;
      await sleep(200);
    }
    expect(relay.queuedBytes()).to.be.above(1024 * 1024);
    // Closing connections are not read any more: what they send is not queued toward bob.
    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, relay.queuedBytes())), 5);
    await relay.close(200).finally(() => clearInterval(sampler));
    expect(peak).to.be.at.most(2 * 1024 * 1024 + 64 * 1024);
    bob.socket.resume(); // what reached bob's socket before the close is his
    await until(() => bob.isClosed && senders.every((ep) => ep.isClosed), 5000, 'every connection to end');
    const silent = [...answered].filter((id) => !delivered.has(id) && !reported.has(id));
    expect(silent, `of ${answered.size} answered 200`).to.deep.equal([]);
    expect(twice, 'octets reported twice').to.deep.equal([]);
    expect([...reported.values()]).to.include('000 408 Not forwarded before shutdown');
  });
});
