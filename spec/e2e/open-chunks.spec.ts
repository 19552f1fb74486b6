/**
 * Chunks the relay is still writing when something happens to them: refused early by the next hop, cut by
 * the next hop closing after the sender finished, refused for overrunning the total, or held for dedupe
 * and routed nowhere. Each ends in exactly one answer to the sender, with a valid Byte-Range (found by a
 * review of the fourth session's change; the backed-up socket is simulated by overriding writableLength).
 */
import { expect } from 'chai';
import { parseByteRange } from '../../lib/msrp/headers.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { imFromAlice } from '../helpers/cpim-fixtures.js';
import { refusedRequest, responseTo, sendHead, tap } from '../helpers/wire.js';
import { Harness, next, sleep, until } from '../helpers/relay.js';

/** The relay's open sub-chunk entry, as far as these tests look at it. */
interface OpenTx {
  tid: string;
  dest: { conn: object };
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
    const table = relay.transactions as unknown as { openByDest: Map<unknown, OpenTx> };
    await until(() => table.openByDest.size === 1, 3000, 'the open sub-chunk');
    const tx = [...table.openByDest.values()][0]!;
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
    const table = relay.transactions as unknown as { openByDest: Map<unknown, OpenTx> };
    await until(() => table.openByDest.size === 1, 3000, 'the open sub-chunk');
    const tx = [...table.openByDest.values()][0]!;
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
});
