/**
 * Chunks the relay is still writing when something happens to them: refused early by the next hop, cut by
 * the next hop closing after the sender finished, refused for overrunning the total, or held for dedupe
 * and routed nowhere. Each ends in exactly one answer to the sender, with a valid Byte-Range (found by a
 * review of the fourth session's change; the backed-up socket is simulated by overriding writableLength).
 */
import { expect } from 'chai';
import type { ContinuationFlag } from '../../lib/constants.js';
import { parseByteRange } from '../../lib/msrp/headers.js';
import { getHeader, type Frame, type FrameHead } from '../../lib/msrp/message.js';
import { MsrpParser } from '../../lib/msrp/parser.js';
import type { MsrpEndpoint, ReceivedMessage } from '../../lib/client/endpoint.js';
import { imFromAlice } from '../helpers/cpim-fixtures.js';
import { refusedRequest, responseTo, sendHead, tap } from '../helpers/wire.js';
import { Harness, next, sleep, until } from '../helpers/relay.js';

/** The relay's open sub-chunk entry, as far as these tests look at it. */
interface OpenTx {
  tid: string;
  dest: { conn: object };
}

/** One SEND sub-chunk as an endpoint received it. */
interface SubChunk {
  byteRange: string | null;
  body: string;
  flag: ContinuationFlag;
}

/** The SEND sub-chunks of message `messageId` in what an endpoint's socket received (see `tap`). */
function subChunksOf(wire: string, messageId: string): SubChunk[] {
  const out: SubChunk[] = [];
  let cur: { head: FrameHead; parts: Buffer[] } | null = null;
  const parser = new MsrpParser({
    onHead: (head) => (cur = { head, parts: [] }),
    onBody: (piece) => cur!.parts.push(Buffer.from(piece)),
    onEnd: (flag) => {
      const { head, parts } = cur!;
      if (
        head.kind === 'request' &&
        head.method === 'SEND' &&
        getHeader(head.headers, 'message-id') === messageId
      )
        out.push({
          byteRange: getHeader(head.headers, 'byte-range') ?? null,
          body: Buffer.concat(parts).toString('latin1'),
          flag,
        });
      cur = null;
    },
    onError: (err) => {
      throw err;
    },
  });
  parser.write(Buffer.from(wire, 'latin1'));
  return out;
}

/**
 * A whole chunk from `from` to `to` that leaves the relay's corked socket toward `to` `below` octets under
 * 16 KiB (the writer's high-water mark with --max-queued-bytes 32 KiB) when it is forwarded in the same
 * read as what follows it. Calibrated on one chunk that `to` receives first.
 */
async function fillerChunk(from: MsrpEndpoint, to: MsrpEndpoint, below: number): Promise<string> {
  const wire = tap(to);
  from.write(
    Buffer.from(
      sendHead(from, to, 'cal00001', [
        ['Message-ID', 'calmsg01'],
        ['Byte-Range', '1-100/100'],
      ]) +
        'c'.repeat(100) +
        '\r\n-------cal00001$\r\n',
      'latin1',
    ),
  );
  await until(() => wire.text().includes('$\r\n'), 3000, 'the calibration chunk');
  await sleep(50);
  const size = 16 * 1024 - below - (wire.text().length - 100); // less the forwarded head and end-line
  return (
    sendHead(from, to, 'fil00001', [
      ['Message-ID', 'filmsg01'],
      ['Byte-Range', `1-${size}/${size}`],
    ]) +
    'f'.repeat(size) +
    '\r\n-------fil00001$\r\n'
  );
}

describe('chunks cut while the relay writes them', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('reports a chunk refused early (413) once, even when the next hop then closes', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'erc00001', [
          ['Message-ID', 'ercmsg1'],
          ['Byte-Range', '1-*/*'],
          ['Failure-Report', 'partial'],
        ]) + 'a'.repeat(10_000),
        'latin1',
      ),
    );
    const table = relay.transactions as unknown as { openChunks(): OpenTx[] };
    await until(() => table.openChunks().length === 1, 3000, 'the open sub-chunk');
    const tx = table.openChunks()[0]!;
    // Bob's socket backs up: the relay cannot write toward him for now.
    Object.defineProperty(tx.dest.conn, 'writableLength', { get: () => 1 << 30 });
    bob.write(responseTo(bob, alice.usePath[0], tx.tid, '413 Stop'));
    await until(() => reports.length === 1, 3000, 'the 413 REPORT');
    bob.socket.destroy(); // the receiver goes away
    await sleep(200);
    alice.write(Buffer.from('\r\n-------erc00001$\r\n', 'latin1'));
    await sleep(400);
    expect(reports.map((r) => getHeader(r.headers, 'status'))).to.deep.equal(['000 413 Stop']);
  });

  it('sends a failure REPORT for the chunk whose open sub-chunk was cut by the next hop closing', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const reports: Frame[] = [];
    alice.on('report', (f: Frame) => reports.push(f));
    const head = sendHead(alice, bob, 'osd00001', [
      ['Message-ID', 'osdmsg1'],
      ['Byte-Range', '1-20000/20000'],
    ]);
    alice.write(Buffer.from(head + 'a'.repeat(10_000), 'latin1'));
    const table = relay.transactions as unknown as { openChunks(): OpenTx[] };
    await until(() => table.openChunks().length === 1, 3000, 'the open sub-chunk');
    const tx = table.openChunks()[0]!;
    Object.defineProperty(tx.dest.conn, 'writableLength', { get: () => 1 << 30 }); // bob's socket backs up
    const responses: string[] = [];
    alice.socket.on('data', (d: Buffer) => {
      const m = /MSRP osd00001 (\d{3})/.exec(d.toString('latin1'));
      if (m) responses.push(m[1]!);
    });
    alice.write(Buffer.from('b'.repeat(10_000) + '\r\n-------osd00001$\r\n', 'latin1'));
    await until(() => responses.length === 1, 3000, 'the relay answers the chunk');
    bob.socket.destroy();
    await sleep(400);
    expect(responses).to.deep.equal(['200']);
    expect(reports.map((r) => getHeader(r.headers, 'status'))).to.deep.equal([
      '000 481 Next hop connection lost',
    ]);
  });

  it('keeps the REPORT Byte-Range within the total when a `1-*/20` partial chunk carries 200 octets', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    void bob;
    const report = next<Frame>(alice, 'report', 2000);
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'ovr00001', [
          ['Message-ID', 'ovrmsg1'],
          ['Byte-Range', '1-*/20'],
          ['Failure-Report', 'partial'],
        ]) +
          'c'.repeat(200) +
          '\r\n-------ovr00001$\r\n',
        'latin1',
      ),
    );
    const f = await report;
    const br = getHeader(f.headers, 'byte-range')!;
    expect(getHeader(f.headers, 'status')).to.match(/^000 400/);
    expect(() => parseByteRange(br), `REPORT Byte-Range ${br}`).to.not.throw();
  });

  it('gives the failure REPORT a Byte-Range counting the octets held', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('hold-ovf-1', 'positive-delivery'),
      contentType: 'message/cpim',
    });
    const aliceWire: Buffer[] = [];
    alice.socket.on('data', (d: Buffer) => aliceWire.push(d));
    await until(
      () => /<delivered\/>/.test(Buffer.concat(aliceWire).toString()),
      3000,
      'the delivered report',
    );
    const toAlice = bob.toPathFor(alice.path);
    const big = imFromAlice('hold-ovf-2', 'negative-delivery', 'q'.repeat(20_000));
    bob.write(
      Buffer.concat([
        Buffer.from(
          `MSRP hov00001 SEND\r\nTo-Path: ${toAlice}\r\nFrom-Path: ${bob.uri}\r\n` +
            `Message-ID: hovm2\r\nFailure-Report: partial\r\nContent-Type: message/cpim\r\n\r\n`,
        ),
        big.subarray(0, 4000),
      ]),
    );
    await sleep(100);
    expect(Buffer.concat(aliceWire).toString()).not.to.include('hov'); // held, nothing forwarded yet
    expect(relay.transactions.size).to.equal(0);
    await alice.close(); // alice's token goes with her connection
    await sleep(200);
    const report = next<Frame>(bob, 'report', 2000);
    bob.write(Buffer.concat([big.subarray(4000), Buffer.from(`\r\n-------hov00001$\r\n`)]));
    const f = await report;
    const br = getHeader(f.headers, 'byte-range')!;
    expect(getHeader(f.headers, 'status')).to.match(/^000 481/);
    expect(() => parseByteRange(br), `REPORT Byte-Range ${br}`).to.not.throw();
    expect(br).to.equal(`1-${big.length}/*`);
  });
  it('stops the rest of a chunk when the next hop refuses a piece it already ended with `+`', async () => {
    const relay = await h.relay();
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob', { respond: () => null });
    const bobWire = tap(bob);
    const aliceWire = tap(alice);
    const at = relay.addresses()[0]!;
    alice.write(
      Buffer.from(
        sendHead(alice, bob, 'cut00413', [
          ['Message-ID', 'cutmsg413'],
          ['Byte-Range', '1-20000/20000'],
        ]) + 'a'.repeat(8000),
        'latin1',
      ),
    );
    // (The parser holds back the last octets until it knows they are not the start of an end-line.)
    await until(() => bobWire.text().includes('a'.repeat(7000)), 2000, 'the first octets at bob');
    // A response for bob (481 to a request of his) interrupts the chunk: its piece ends with `+`.
    bob.write(refusedRequest(bob, at, 'ctl00002'));
    await until(() => / 481 /.test(bobWire.text()), 2000, 'the 481 at bob');
    const tid = /^MSRP (\S+) SEND/.exec(bobWire.text())![1]!;
    expect(bobWire.text()).to.include(`-------${tid}+`);
    bob.write(responseTo(bob, alice.usePath[0], tid, '413 Too large'));
    await until(() => aliceWire.text().includes('MSRP cut00413 413'), 2000, 'the 413 at alice');
    alice.write(Buffer.from('b'.repeat(12_000) + '\r\n-------cut00413$\r\n', 'latin1'));
    await sleep(200);
    expect([bobWire.text().includes('bbbb'), /MSRP cut00413 200/.test(aliceWire.text())]).to.deep.equal([
      false,
      false,
    ]);
  });
  it('never interrupts a sub-chunk whose head went out as received (a whole message)', async () => {
    // Audit finding: a SEND without Byte-Range whose head went out just below the writer's high-water
    // mark was cut by a REPORT from the same read: bob got `+` on a head that says "whole message" (RFC
    // 4975 §7.1: a chunk that may be interrupted says range-end `*`), then `1-1/*`.
    const relay = await h.relay({ maxQueuedBytes: 32 * 1024 }); // the writer's high water: 16 KiB
    const alice = await h.client(relay, 'alice', { respond: () => null });
    const bob = await h.client(relay, 'bob');
    const burst =
      (await fillerChunk(alice, bob, 40)) +
      sendHead(alice, bob, 'wsc0000B', [['Message-ID', 'wscmsgB1']]) +
      'b\r\n-------wsc0000B$\r\n' +
      `MSRP wsc0000C REPORT\r\nTo-Path: ${alice.toPathFor(bob.path)}\r\nFrom-Path: ${alice.uri}\r\n` +
      'Message-ID: wscmsgZ1\r\nByte-Range: 1-1/1\r\nStatus: 000 200 OK\r\n-------wsc0000C$\r\n';
    const bobWire = tap(bob);
    alice.write(Buffer.from(burst, 'latin1'));
    await until(() => bobWire.text().includes('wscmsgZ1'), 3000, 'the REPORT at bob');
    expect(subChunksOf(bobWire.text(), 'wscmsgB1')).to.deep.equal([
      { byteRange: null, body: 'b', flag: '$' },
    ]);
  });

  it('puts one octet at least in a sub-chunk before an interruption can end it', async () => {
    // Audit finding: a head that took the socket past its high-water mark left the sub-chunk empty; a
    // response toward bob then ended it with `+` (an empty chunk; a 413 for it became a failure REPORT
    // with `Byte-Range: 1-0/*`).
    const relay = await h.relay({ maxQueuedBytes: 32 * 1024 });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const at = relay.addresses()[0]!;
    const filler = await fillerChunk(alice, bob, 100);
    const bobWire = tap(bob);
    const got: string[] = [];
    bob.on('message', (m: ReceivedMessage) => got.push(`${m.messageId}:${m.body.toString('latin1')}`));
    const body = 'x'.repeat(60) + 'y'.repeat(40);
    const head = sendHead(alice, bob, 'emp00001', [
      ['Message-ID', 'empmsg01'],
      ['Byte-Range', '1-100/100'],
    ]);
    // Written in one turn, the two reach the relay in one turn: alice's read opens the sub-chunk (its head
    // takes bob's corked socket past the high-water mark), then bob's read queues a 481 toward him.
    alice.write(Buffer.from(filler + head + body.slice(0, 60), 'latin1'));
    bob.write(refusedRequest(bob, at, 'ctl00003'));
    await until(() => / 481 /.test(bobWire.text()), 2000, 'the 481 at bob');
    alice.write(Buffer.from(body.slice(60) + '\r\n-------emp00001$\r\n', 'latin1'));
    await until(() => got.some((m) => m.startsWith('empmsg01:')), 3000, 'the message at bob');
    expect(got).to.deep.equal([`filmsg01:${'f'.repeat(got[0]!.length - 9)}`, `empmsg01:${body}`]);
    const subs = subChunksOf(bobWire.text(), 'empmsg01');
    // RFC 4975 §7.1: a chunk that may be interrupted says range-end `*`; the continuation starts at the
    // next octet, its end exact or `*`.
    const shape = (c: SubChunk, i: number): unknown[] => [
      i === 0 ? c.byteRange : c.byteRange!.replace(/-(\d+|\*)\//, '-N/'),
      c.flag,
      c.body.length > 0,
    ];
    expect(subs.map(shape)).to.deep.equal([
      ['1-*/100', '+', true],
      [`${subs[0]!.body.length + 1}-N/100`, '$', true],
    ]);
  });
});
