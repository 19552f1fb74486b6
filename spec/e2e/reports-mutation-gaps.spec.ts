/**
 * Delivery-report behaviour over real sockets (127.0.0.1, port 0) that mutation testing of lib/reports/
 * and lib/relay/relay-reports.ts found no spec pinning down; each test names the mutant it kills.
 */
import { expect } from 'chai';
import type { MsrpEndpoint, ReceivedMessage } from '../../lib/client/endpoint.js';
import { getHeader } from '../../lib/msrp/message.js';
import { parseCpimHead } from '../../lib/reports/cpim.js';
import { parseImdn, type ImdnDocument } from '../../lib/reports/imdn.js';
import { imFromAlice } from '../helpers/cpim-fixtures.js';
import { Harness, sleep, until } from '../helpers/relay.js';

const CRLF = '\r\n';

/** A draft-khartabil-simple-im-report-00 IM from alice to bob with `Receipt-Request: notify` (digest §6.5). */
function legacyIm(id: string, notify: string, text = 'Ping'): Buffer {
  return Buffer.from(
    ['From: Alice <im:alice@example.org>', 'To: Bob <im:bob@example.net>', `Message-ID: ${id}`]
      .concat(`Receipt-Request: ${notify}`)
      .join(CRLF) +
      CRLF +
      CRLF +
      'Content-Type: text/plain' +
      CRLF +
      CRLF +
      text,
  );
}

/** Collects every SEND `ep` receives whose CPIM body is a report. */
function reportsTo(ep: MsrpEndpoint): Array<{ frame: ReceivedMessage; doc: ImdnDocument }> {
  const out: Array<{ frame: ReceivedMessage; doc: ImdnDocument }> = [];
  ep.on('message', (m: ReceivedMessage) => {
    const head = parseCpimHead(m.body, { lenient: true });
    if (head === 'incomplete') return;
    if (!/imdn\+xml|status-report/.test(head.contentHeader('content-type') ?? '')) return;
    out.push({ frame: m, doc: parseImdn(m.body.subarray(head.bodyOffset)) });
  });
  return out;
}

describe('delivery reports: behaviour pinned by mutation testing (e2e)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  // Mutant: report-frame.ts fits() ignoring the To-Path. Through a chain, the IMs of two clients of the
  // first relay reach the relay next to bob with the same To-Path (its token for bob, bob) and differ only
  // in their From-Path: the template of bob's session, made for alice's report, was reused for carol's,
  // which went to alice.
  it("addresses each sender's report to its own From-Path when two clients of a chain send to one recipient", async () => {
    const r1 = await h.relay({ reports: 'on-ack' });
    const r2 = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(r1, 'alice');
    const carol = await h.client(r1, 'carol');
    const bob = await h.client(r2, 'bob');
    const toAlice = reportsTo(alice);
    const toCarol = reportsTo(carol);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('twoSnd01', 'positive-delivery', 'from alice'),
      contentType: 'message/cpim',
    });
    await until(() => toAlice.length === 1, 3000, "alice's report");
    await carol.send({
      toPath: carol.toPathFor(bob.path),
      body: imFromAlice('twoSnd02', 'positive-delivery', 'from carol'),
      contentType: 'message/cpim',
    });
    await until(() => toCarol.length + toAlice.length === 2, 3000, "carol's report");
    await sleep(100);
    expect(toAlice.map((r) => r.doc.messageId)).to.deep.equal(['twoSnd01']);
    expect(toCarol.map((r) => [r.doc.messageId, r.doc.status])).to.deep.equal([['twoSnd02', 'delivered']]);
    expect(getHeader(toCarol[0]!.frame.headers, 'to-path')).to.equal(carol.uri);
    expect(r2.reports.counters.injected.imdn.delivered).to.equal(2);
  });

  // Mutant: relay-reports.ts answered() fails the message with a fixed code instead of the recipient's.
  // docs/reports.md: the legacy <status> carries the failure code (a non-200 from the recipient: that code).
  it("writes the recipient's own non-200 code in a legacy failed report's <status>", async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob', { respond: () => 403 });
    const reports = reportsTo(alice);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: legacyIm('lgcyFail1', 'positive-delivery, negative-delivery'),
      contentType: 'message/cpim',
    });
    await until(() => reports.length === 1, 3000, 'the failed report');
    const r = reports[0]!;
    expect([r.doc.format, r.doc.messageId, r.doc.status]).to.deep.equal([
      'status-report',
      'lgcyFail1',
      'failed',
    ]);
    expect(r.frame.body.toString('utf8')).to.include('<status>403</status>');
  });

  // Mutant: relay-reports.ts begin() tracks Message-IDs up to 32 characters. docs/reports.md "Limits
  // against hostile input": only Message-IDs longer than 64 characters are not tracked.
  it('reports on an IM whose MSRP Message-ID is 64 characters long, and not on one of 65', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = reportsTo(alice);
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('longId64', 'positive-delivery', 'hi'),
      contentType: 'message/cpim',
      messageId: 'M'.repeat(64),
    });
    await until(() => reports.length === 1, 3000, 'the report');
    expect(reports[0]!.doc.messageId).to.equal('longId64');
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('longId65', 'positive-delivery', 'hi'),
      contentType: 'message/cpim',
      messageId: 'N'.repeat(65),
    });
    await sleep(150);
    expect(reports.map((x) => x.doc.messageId)).to.deep.equal(['longId64']);
  });

  // Mutant: relay-reports.ts peerClosed() fails the messages toward a closed connection with 408. docs/reports.md:
  // the recipient's connection lost before the message was whole and acknowledged is a 481. (A chunk in
  // flight fails through its transaction first, with 481 too: here none is, the first chunk is acked.)
  it('writes 481 in a legacy failed report when the recipient goes between two chunks of a message', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = reportsTo(alice);
    const body = legacyIm('lgcyLost1', 'negative-delivery', 'p'.repeat(100));
    const cut = body.length - 50; // the whole CPIM head, and the request in it, in the first chunk
    const atBob = new Promise((resolve) => bob.once('request', resolve));
    const first = await alice.request({
      method: 'SEND',
      toPath: alice.toPathFor(bob.path),
      fromPath: alice.uri,
      headers: [
        ['Message-ID', 'LostHalf01'],
        ['Byte-Range', `1-${cut}/${body.length}`],
      ],
      contentType: 'message/cpim',
      body: body.subarray(0, cut),
      flag: '+',
    });
    expect(first.kind === 'response' && first.statusCode).to.equal(200);
    await atBob;
    await sleep(200); // bob's 200 reaches the relay: nothing toward bob awaits an answer
    expect(relay.reports.tracker.size).to.equal(1);
    bob.socket.destroy();
    await until(() => reports.length === 1, 3000, 'the failed report');
    expect([reports[0]!.doc.messageId, reports[0]!.doc.status]).to.deep.equal(['lgcyLost1', 'failed']);
    expect(reports[0]!.frame.body.toString('utf8')).to.include('<status>481</status>');
  });

  // Mutant: relay-reports.ts sent() counts octets as acknowledged on send for Failure-Report: no only.
  // docs/reports.md: with `partial` the recipient never answers 200 either (RFC 4975 §7.1.1), so under
  // on-ack the octets count once written; otherwise such an IM never gets its delivered report.
  it('injects delivered (on-ack) for a Failure-Report: partial IM once it is written to the recipient', async () => {
    const relay = await h.relay({ reports: 'on-ack' });
    const alice = await h.client(relay, 'alice');
    const bob = await h.client(relay, 'bob');
    const reports = reportsTo(alice);
    const got = new Promise<ReceivedMessage>((resolve) => bob.once('message', resolve));
    await alice.send({
      toPath: alice.toPathFor(bob.path),
      body: imFromAlice('partial01', 'positive-delivery, negative-delivery', 'x'.repeat(300)),
      contentType: 'message/cpim',
      failureReport: 'partial',
      chunkSize: 200,
    });
    await got;
    await until(() => reports.length === 1, 3000, 'the delivered report');
    expect([reports[0]!.doc.messageId, reports[0]!.doc.status]).to.deep.equal(['partial01', 'delivered']);
  });
});
