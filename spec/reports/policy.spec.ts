import { expect } from 'chai';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { parseFrames } from '../../lib/msrp/frame-collector.js';
import { parseByteRange } from '../../lib/msrp/headers.js';
import { CPIM_CORE_NS, parseCpimHead, type CpimHead } from '../../lib/reports/cpim.js';
import { IMDN_HEADER_NS, parseImdn, validateImdnDocument } from '../../lib/reports/imdn.js';
import { acknowledgedOnSend, recipientSessionKey, type ReportMode } from '../../lib/reports/policy.js';
import type { TrackedMessage } from '../../lib/reports/tracker.js';
import { E5_2_HEAD } from '../helpers/cpim-fixtures.js';
import { chunksOf, feedChunk, openChunk } from '../helpers/reports.js';
import {
  FROM_PATH,
  imdnIm,
  legacyIm,
  NOW,
  outcomes,
  recipientImdn,
  send,
  SESSION,
  setup,
  TO_PATH,
  type Harness,
  type Injected,
  type Meta,
} from '../helpers/report-policy.js';

/** The recipient answers 200 to every octet. */
function ackAll(h: Harness, msg: TrackedMessage<string, Meta> | null): void {
  if (msg !== null) h.tracker.acked(msg, 1, msg.total);
}

/** The single frame of an injected report. */
function frameOf(inj: Injected): Frame {
  const { frames, errors } = parseFrames(inj.frame);
  expect(errors).to.deep.equal([]);
  expect(frames.length).to.equal(1);
  return frames[0]!;
}

/** Checks the MSRP headers of an injected report exactly (DESIGN.md "The injected SEND"). */
function expectInjectedHeaders(frame: Frame, messageId: string): void {
  const len = frame.body!.length;
  expect(frame.kind).to.equal('request');
  expect(frame.kind === 'request' && frame.method).to.equal('SEND');
  expect(frame.headers).to.deep.equal([
    ['To-Path', FROM_PATH],
    ['From-Path', TO_PATH],
    ['Message-ID', messageId],
    ['Failure-Report', 'no'],
    ['Success-Report', 'no'],
    ['Byte-Range', `1-${len}/${len}`],
    ['Content-Type', 'message/cpim'],
  ]);
  expect(frame.flag).to.equal('$');
}

/** The CPIM head (parsed strictly) and the encapsulated document of an injected report. */
function reportBody(frame: Frame): { head: CpimHead; xml: string } {
  const head = parseCpimHead(frame.body!);
  if (head === 'incomplete') expect.fail('incomplete CPIM head');
  return { head, xml: frame.body!.subarray(head.bodyOffset).toString('utf8') };
}

describe('ReportPolicy', () => {
  describe('positive-delivery, RFC 5438 dialect', () => {
    it('injects nothing under on-ack until the recipient acknowledged every octet', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'), { chunkSize: 100 });
      expect(h.sent).to.deep.equal([]);
      h.tracker.acked(msg!, 1, 200);
      expect(h.sent).to.deep.equal([]);
      h.tracker.acked(msg!, 201, msg!.total);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
      expect(h.sent[0]!.owner).to.equal('alice');
    });

    it('writes the injected SEND exactly as specified', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery, display')));
      const frame = frameOf(h.sent[0]!);
      expectInjectedHeaders(frame, 'id000003');
      expect(frame.transactionId).to.equal('id000002');
      const { head, xml } = reportBody(frame);
      expect(head.get(CPIM_CORE_NS, 'From')!.value).to.equal('<im:bob@example.net>');
      expect(head.get(CPIM_CORE_NS, 'To')!.value).to.equal('<im:alice@example.org>');
      expect(head.get(CPIM_CORE_NS, 'DateTime')!.value).to.equal('2024-05-06T10:15:31Z');
      expect(head.get(IMDN_HEADER_NS, 'Message-ID')!.value).to.equal('id000001');
      expect(head.get(IMDN_HEADER_NS, 'Disposition-Notification')).to.equal(undefined);
      expect(head.contentHeaders).to.deep.equal([
        ['Content-Type', 'message/imdn+xml'],
        ['Content-Disposition', 'notification'],
      ]);
      expect(validateImdnDocument(xml)).to.deep.equal([]);
      expect(parseImdn(Buffer.from(xml))).to.deep.equal({
        format: 'rfc5438',
        messageId: 'Qw8rT2zLk4',
        dateTime: '2024-05-06T10:15:30Z',
        recipientUri: 'im:bob@example.net',
        originalRecipientUri: 'im:bob@example.net',
        notification: 'delivery',
        status: 'delivered',
      });
    });

    it('writes these exact bytes (docs/reports.md, delivered)', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery, display')));
      expect(h.sent[0]!.frame.toString('latin1')).to.equal(
        'MSRP id000002 SEND\r\n' +
          `To-Path: ${FROM_PATH}\r\n` +
          `From-Path: ${TO_PATH}\r\n` +
          'Message-ID: id000003\r\n' +
          'Failure-Report: no\r\n' +
          'Success-Report: no\r\n' +
          'Byte-Range: 1-588/588\r\n' +
          'Content-Type: message/cpim\r\n' +
          '\r\n' +
          'From: <im:bob@example.net>\r\n' +
          'To: <im:alice@example.org>\r\n' +
          'DateTime: 2024-05-06T10:15:31Z\r\n' +
          'NS: imdn <urn:ietf:params:imdn>\r\n' +
          'imdn.Message-ID: id000001\r\n' +
          '\r\n' +
          'Content-Type: message/imdn+xml\r\n' +
          'Content-Disposition: notification\r\n' +
          '\r\n' +
          '<?xml version="1.0" encoding="UTF-8"?>\r\n' +
          '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
          '<message-id>Qw8rT2zLk4</message-id>\r\n' +
          '<datetime>2024-05-06T10:15:30Z</datetime>\r\n' +
          '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
          '<original-recipient-uri>im:bob@example.net</original-recipient-uri>\r\n' +
          '<delivery-notification><status><delivered/></status></delivery-notification>\r\n' +
          '</imdn>\r\n' +
          '-------id000002$\r\n',
      );
    });

    it('injects delivered under on-receipt once every octet is held, before any acknowledgement', () => {
      const h = setup({ mode: 'on-receipt' });
      const body = imdnIm('positive-delivery', { text: 'x'.repeat(500) });
      const [c1, c2, c3] = chunksOf(body, 300);
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      feedChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, c1!);
      feedChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, c2!);
      const last = openChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, c3!)!;
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.mustHoldEnd(last, '$')).to.equal(true);
      h.tracker.end(last, '$');
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
      const { xml } = reportBody(frameOf(h.sent[0]!));
      expect(validateImdnDocument(xml)).to.deep.equal([]);
      expect(parseImdn(Buffer.from(xml)).status).to.equal('delivered');
    });

    it('does not hold a chunk that does not complete the message', () => {
      const h = setup({ mode: 'on-receipt' });
      const [c1] = chunksOf(imdnIm('positive-delivery', { text: 'x'.repeat(500) }), 300);
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      const chunk = openChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, c1!)!;
      expect(h.policy.mustHoldEnd(chunk, '+')).to.equal(false);
      expect(h.policy.mustHoldEnd(chunk, '#')).to.equal(false);
    });

    it('holds no chunk under on-ack', () => {
      const h = setup({ mode: 'on-ack' });
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      const body = imdnIm('positive-delivery');
      const chunk = openChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, chunksOf(body, 1000)[0]!)!;
      expect(h.policy.mustHoldEnd(chunk, '$')).to.equal(false);
    });

    it('reports delivered once, however often the octets are acknowledged', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'));
      ackAll(h, msg);
      ackAll(h, msg);
      expect(h.sent.length).to.equal(1);
      expect(h.policy.counters.injected.imdn).to.deep.equal({ delivered: 1, failed: 0, processed: 0 });
    });

    it('reads a request head split over chunks and retries as bytes arrive', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'), { chunkSize: 7 });
      ackAll(h, msg);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
      expect(h.policy.counters.inspectionFailures).to.equal(0);
    });
  });

  describe('positive-delivery, legacy dialect', () => {
    it('answers under on-ack with a message/status-report confirm document', () => {
      const h = setup();
      ackAll(h, send(h, legacyIm('positive-delivery')));
      const frame = frameOf(h.sent[0]!);
      expectInjectedHeaders(frame, 'id000003');
      const { head, xml } = reportBody(frame);
      expect(head.get(CPIM_CORE_NS, 'From')!.value).to.equal('Bob <im:bob@example.net>');
      expect(head.get(CPIM_CORE_NS, 'To')!.value).to.equal('Alice <im:alice@example.org>');
      expect(head.get(CPIM_CORE_NS, 'Message-ID')).to.equal(undefined);
      expect(head.contentHeaders).to.deep.equal([
        ['Content-Type', 'message/status-report'],
        ['Content-Disposition', 'confirm'],
      ]);
      expect(parseImdn(Buffer.from(xml))).to.deep.equal({
        format: 'status-report',
        messageId: '7fGh2Kp9',
        recipientUri: 'im:bob@example.net',
        notification: 'delivery',
        status: 'delivered',
        note: 'Message was delivered',
      });
      expect(h.policy.counters.injected.legacy).to.deep.equal({ delivered: 1, failed: 0, processed: 0 });
    });

    it('answers under on-receipt when every octet is held', () => {
      const h = setup({ mode: 'on-receipt' });
      send(h, legacyIm('positive-delivery, read'));
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
      const { xml } = reportBody(frameOf(h.sent[0]!));
      expect(parseImdn(Buffer.from(xml)).status).to.equal('delivered');
    });
  });

  describe('negative-delivery', () => {
    const causes: Array<[string, number, (h: Harness, msg: TrackedMessage<string, Meta>) => void]> = [
      ['a non-200 response', 403, (h, msg) => h.tracker.fail(msg, 403)],
      ['a transaction timeout', 408, (h, msg) => h.tracker.fail(msg, 408)],
      ['the recipient connection lost', 481, (h) => h.tracker.failWhere((m) => m.meta.dest === 'bob', 481)],
      ['a 413', 413, (h, msg) => h.tracker.failByKey(msg.owner, SESSION, msg.messageId, 413)],
    ];
    for (const [cause, code, fail] of causes) {
      it(`injects failed after ${cause} (${code}), RFC 5438 dialect`, () => {
        const h = setup();
        const msg = send(h, imdnIm('positive-delivery, negative-delivery'), { chunkSize: 100 });
        h.tracker.acked(msg!, 1, 100);
        fail(h, msg!);
        expect(h.sent.map((s) => s.outcome)).to.deep.equal(['failed']);
        const { xml } = reportBody(frameOf(h.sent[0]!));
        expect(validateImdnDocument(xml)).to.deep.equal([]);
        const doc = parseImdn(Buffer.from(xml));
        expect([doc.notification, doc.status, doc.messageId]).to.deep.equal([
          'delivery',
          'failed',
          'Qw8rT2zLk4',
        ]);
      });

      it(`injects failed with status ${code} after ${cause}, legacy dialect`, () => {
        const h = setup();
        const msg = send(h, legacyIm('negative-delivery'));
        fail(h, msg!);
        const { xml } = reportBody(frameOf(h.sent[0]!));
        expect(xml).to.include(`<status>${code}</status>`);
        expect(parseImdn(Buffer.from(xml)).status).to.equal('failed');
        expect(h.policy.counters.injected.legacy.failed).to.equal(1);
      });
    }

    it('injects failed when the message was held whole but unacknowledged past the idle timeout', () => {
      const h = setup({}, { idleTimeoutMs: 120_000 });
      send(h, imdnIm('negative-delivery'));
      h.tracker.sweep(NOW + 120_000);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['failed']);
    });

    it('injects failed when the recipient is lost before the message is whole', () => {
      const h = setup();
      const body = imdnIm('negative-delivery', { text: 'x'.repeat(400) });
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      feedChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, chunksOf(body, 300)[0]!);
      h.tracker.failWhere((m) => m.meta.dest === 'bob', 481);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['failed']);
    });

    it('injects nothing on failure when negative-delivery was not requested', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'));
      h.tracker.fail(msg!, 403);
      expect(h.sent).to.deep.equal([]);
    });

    it('injects nothing on success when only negative-delivery was requested', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('negative-delivery')));
      expect(h.sent).to.deep.equal([]);
      expect(h.tracker.size).to.equal(0);
    });

    it('injects no failed after an on-receipt delivered (one notification per category)', () => {
      const h = setup({ mode: 'on-receipt' });
      const msg = send(h, imdnIm('positive-delivery, negative-delivery'));
      h.tracker.fail(msg!, 481);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
    });

    it('injects nothing when the sender abandons the message with #', () => {
      const h = setup();
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      const body = imdnIm('negative-delivery', { text: 'x'.repeat(400) });
      feedChunk(h.tracker, 'alice', SESSION, 'MsrpMsg01', meta, { ...chunksOf(body, 300)[0]!, flag: '#' });
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.aborted).to.equal(1);
    });
  });

  describe('what is never reported', () => {
    it('reports nothing for an IM that requested nothing', () => {
      const h = setup();
      const msg = send(h, imdnIm(null));
      expect(msg!.done).to.equal(true);
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.notRequested).to.equal(1);
    });

    it('reports nothing for a message that is itself an IMDN', () => {
      const h = setup();
      const msg = send(h, recipientImdn().toString('utf8'));
      ackAll(h, msg);
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.reportsSeen).to.equal(1);
    });

    it('reports nothing for a display-only request (the recipient reports display)', () => {
      const h = setup({ processing: true });
      ackAll(h, send(h, imdnIm('display')));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.notForRelay).to.equal(1);
      expect(h.policy.counters.requests.imdn.display).to.equal(1);
    });

    it('reports nothing when this relay is not the last before the recipient', () => {
      const h = setup();
      expect(h.policy.shouldTrack('message/cpim', false)).to.equal(false);
      ackAll(h, send(h, imdnIm('positive-delivery, negative-delivery'), { lastHop: false }));
      expect(h.sent).to.deep.equal([]);
    });

    it('tracks nothing when reports are off', () => {
      const h = setup({ mode: 'off' });
      expect(h.policy.shouldTrack('message/cpim', true)).to.equal(false);
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect(h.sent).to.deep.equal([]);
    });

    it('tracks only message/cpim bodies', () => {
      const h = setup();
      expect(h.policy.shouldTrack('Message/CPIM', true)).to.equal(true);
      expect(h.policy.shouldTrack('text/plain', true)).to.equal(false);
      expect(h.policy.shouldTrack(undefined, true)).to.equal(false);
    });

    it('counts an RFC 5438 request without DateTime as unanswerable', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery', { dateTime: false })));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.unanswerable).to.equal(1);
    });

    it('counts an RFC 5438 request whose DateTime is no date-time as unanswerable', () => {
      // <datetime> echoes it and must be an RFC 3339 date-time: the report could only be invalid.
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery', { dateTime: 'yesterday' })));
      ackAll(h, send(h, imdnIm('positive-delivery', { dateTime: '2024-05-06 10:15:30' })));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.unanswerable).to.equal(2);
    });

    it('counts a malformed CPIM head as an inspection failure', () => {
      const h = setup();
      ackAll(h, send(h, 'From <im:alice@example.org>\r\n\r\nContent-Type: text/plain\r\n\r\nhi'));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.inspectionFailures).to.equal(1);
    });

    it('gives up on a head not complete within the head cap', () => {
      const h = setup({}, { headBytes: 128 });
      const body = imdnIm('positive-delivery').replace('To: ', `X-Pad: ${'p'.repeat(200)}\r\nTo: `);
      ackAll(h, send(h, body, { chunkSize: 50 }));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.inspectionFailures).to.equal(1);
    });

    it('counts messages the caps left untracked', () => {
      const h = setup({}, { maxMessagesPerOwner: 1 });
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      const body = imdnIm('positive-delivery', { text: 'x'.repeat(400) });
      feedChunk(h.tracker, 'alice', SESSION, 'm1', meta, chunksOf(body, 300)[0]!);
      feedChunk(h.tracker, 'alice', SESSION, 'm2', meta, chunksOf(body, 300)[0]!);
      feedChunk(h.tracker, 'alice', SESSION, 'm2', meta, chunksOf(body, 300)[1]!);
      expect(h.policy.counters.untracked).to.equal(1);
      // Counted once, as untracked: its later chunk is not also `late` (metrics audit).
      expect(h.policy.counters.late).to.equal(0);
    });
  });

  describe('processing', () => {
    it('answers processing with processed only when the processing flag is on', () => {
      const off = setup();
      ackAll(off, send(off, imdnIm('processing')));
      expect(off.sent).to.deep.equal([]);
      expect(off.policy.counters.notForRelay).to.equal(1);
      const on = setup({ processing: true });
      send(on, imdnIm('processing'));
      expect(on.sent.map((s) => s.outcome)).to.deep.equal(['processed']);
      const { xml } = reportBody(frameOf(on.sent[0]!));
      expect(validateImdnDocument(xml)).to.deep.equal([]);
      const doc = parseImdn(Buffer.from(xml));
      expect([doc.notification, doc.status]).to.deep.equal(['processing', 'processed']);
    });

    it('sends processed when every octet is held and delivered once acknowledged', () => {
      const h = setup({ processing: true });
      const msg = send(h, imdnIm('processing, positive-delivery'));
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['processed']);
      ackAll(h, msg);
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['processed', 'delivered']);
    });

    it('suppresses processed for a legacy request, which cannot express it', () => {
      const h = setup({ processing: true });
      ackAll(h, send(h, legacyIm('processing, positive-delivery')));
      expect(h.sent.map((s) => s.outcome)).to.deep.equal(['delivered']);
      expect(h.policy.counters.suppressed).to.equal(1);
    });
  });

  describe('where the report goes', () => {
    it('answers on the paths of the latest chunk (a sender that re-authenticated mid-message)', () => {
      // Fuzz audit: the report went to the first chunk's path, whose token had expired (481, lost).
      const h = setup();
      const body = Buffer.from(imdnIm('positive-delivery'), 'utf8');
      const [first, second] = chunksOf(body, Math.ceil(body.length / 2));
      const meta = (fromPath: string): Meta => ({ toPath: TO_PATH, fromPath, lastHop: true, dest: 'bob' });
      feedChunk(
        h.tracker,
        'alice',
        SESSION,
        'MsrpMsg01',
        meta('msrp://relay.example.com:2855/oldTok01;tcp ' + FROM_PATH),
        first!,
      );
      const c = feedChunk(
        h.tracker,
        'alice',
        SESSION,
        'MsrpMsg01',
        meta('msrp://relay.example.com:2855/newTok02;tcp ' + FROM_PATH),
        second!,
      );
      ackAll(h, c!.msg);
      expect(h.sent.map((i) => getHeader(frameOf(i).headers, 'to-path'))).to.deep.equal([
        'msrp://relay.example.com:2855/newTok02;tcp ' + FROM_PATH,
      ]);
    });

    it('sends no report larger than the sender connection takes whole (a WebSocket peer)', () => {
      const h = setup({ maxFrameBytes: (owner) => (owner === 'alice' ? 300 : Infinity) });
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect(h.sent).to.deep.equal([]);
      expect(h.policy.counters.unanswerable).to.equal(1);
      // Nothing was sent: the recipient's own notification is not taken for a duplicate (review).
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(false);
    });
  });

  describe('one delivery notification per IM (digest §5.4)', () => {
    it('injects no second report for the same IM sent again, whatever its outcome', () => {
      // Fuzz audit: a single-chunk IM leaves no tombstone, so a retransmission was tracked anew.
      const h = setup();
      const im = imdnIm('positive-delivery, negative-delivery');
      ackAll(h, send(h, im, { messageId: 'MsrpMsg01' }));
      ackAll(h, send(h, im, { messageId: 'MsrpMsg02' })); // the same imdn.Message-ID again
      h.tracker.fail(send(h, im, { messageId: 'MsrpMsg03' })!, 413);
      expect(h.sent.map((i) => i.outcome)).to.deep.equal(['delivered']);
      expect(h.policy.counters.alreadyReported).to.equal(2);
    });

    it('injects no delivered after a failed for the same IM, and the dedupe still forwards the recipient', () => {
      const h = setup();
      const im = imdnIm('positive-delivery, negative-delivery');
      h.tracker.fail(send(h, im, { messageId: 'MsrpMsg01' })!, 403);
      ackAll(h, send(h, im, { messageId: 'MsrpMsg02' }));
      expect(h.sent.map((i) => i.outcome)).to.deep.equal(['failed']);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(false);
    });

    it('reports again once the entry of the first report has expired', () => {
      const h = setup({ dedupeTtlMs: 1000 });
      const im = imdnIm('positive-delivery');
      ackAll(h, send(h, im, { messageId: 'MsrpMsg01' }));
      h.clock.now += 1000;
      ackAll(h, send(h, im, { messageId: 'MsrpMsg02' }));
      expect(h.sent.map((i) => i.outcome)).to.deep.equal(['delivered', 'delivered']);
    });
  });

  describe('a sender whose connection closed (--relay-ca keeps its whole IMs)', () => {
    /** The same IM (same imdn.Message-ID) sent again, under another MSRP Message-ID, on a new link. */
    function feedTwice(h: Harness, messageId: string): TrackedMessage<string, Meta> {
      const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };
      let msg: TrackedMessage<string, Meta> | null = null;
      for (const spec of chunksOf(imdnIm('positive-delivery'), 1000)) {
        const c = feedChunk(h.tracker, 'alice-again', SESSION, messageId, meta, spec);
        if (c !== null) msg = c.msg;
      }
      return msg!;
    }

    it('keeps the IMs dropOwner is told to keep, and reports them when their outcome comes', () => {
      const h = setup();
      const kept = send(h, imdnIm('positive-delivery'));
      const other = send(h, imdnIm('positive-delivery'), { messageId: 'MsrpMsg02' });
      h.tracker.dropOwner('alice', (m) => m === kept);
      // The other one went with its sender's connection, as before.
      expect([h.tracker.size, h.policy.counters.senderGone]).to.deep.equal([1, 1]);
      ackAll(h, kept);
      ackAll(h, other);
      expect({ sent: h.sent.map((i) => i.outcome), size: h.tracker.size }).to.deep.equal({
        sent: ['delivered'],
        size: 0,
      });
    });

    it('injects nothing for a copy of the IM sent again over a new link when the recipient reported first', () => {
      // Review: the kept copy held the awaiting slot (first wins), so the recipient's IMDN marked it and
      // the new copy, never awaited, got a `delivered` of ours too: two notifications.
      const h = setup();
      const kept = send(h, imdnIm('positive-delivery'));
      h.tracker.dropOwner('alice', () => true);
      const again = feedTwice(h, 'MsrpMsg02');
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered'))).to.equal(false);
      ackAll(h, kept);
      ackAll(h, again);
      expect({ sent: outcomes(h), recipientReported: h.policy.counters.recipientReported }).to.deep.equal({
        sent: [],
        recipientReported: 1,
      });
    });

    it('keeps, of a closed connection, only the IMs still owed a report (the relay asks owesDelivery)', () => {
      const h = setup();
      const owed = send(h, imdnIm('positive-delivery'));
      const none = send(h, imdnIm('display'), { messageId: 'MsrpMsg02' });
      expect([
        owed !== null && h.policy.owesDelivery(owed),
        none !== null && h.policy.owesDelivery(none),
      ]).to.deep.equal([true, false]);
    });

    it('counts a report with no way back sender_gone, not injected, and lets the recipient IMDN through', () => {
      const h = setup({ inject: () => false });
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect({
        senderGone: h.policy.counters.senderGone,
        injected: h.policy.counters.injected.imdn.delivered,
        duplicate: h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered')),
      }).to.deep.equal({ senderGone: 1, injected: 0, duplicate: false });
    });
  });

  describe('dedupe', () => {
    it("drops the recipient's delivery IMDN for a message reported delivered, and counts it once", () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery, display')));
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered'))).to.equal(true);
      expect(h.policy.counters.duplicatesDropped).to.equal(1);
    });

    it("forwards the recipient's display IMDN", () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery, display')));
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('displayed'))).to.equal(false);
      expect(h.policy.counters.duplicatesDropped).to.equal(0);
    });

    it('forwards a delivery IMDN about another message or from another session', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', 'Other0001'))).to.equal(false);
      expect(h.policy.isDuplicateImdnBody('msrp://carol.example.net:1/x;tcp', recipientImdn())).to.equal(
        false,
      );
    });

    /** The recipient's aggregated IMDN (RFC 5438 §8.3) of `parts`: [status, IM message-id], or a text part. */
    function recipientAggregate(parts: Array<['delivered' | 'displayed', string] | 'text'>): Buffer {
      const part = (p: (typeof parts)[number]): string =>
        p === 'text'
          ? 'Content-Type: text/plain\r\n\r\nsee you\r\n'
          : 'Content-Type: message/imdn+xml\r\n\r\n' +
            '<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
            `<message-id>${p[1]}</message-id>\r\n<datetime>2024-05-06T10:15:30Z</datetime>\r\n` +
            (p[0] === 'delivered'
              ? '<delivery-notification><status><delivered/></status></delivery-notification>\r\n'
              : '<display-notification><status><displayed/></status></display-notification>\r\n') +
            '</imdn>\r\n';
      return Buffer.from(
        E5_2_HEAD.replace('message/imdn+xml', 'multipart/mixed; boundary="agg7"') +
          parts.map((p) => `--agg7\r\n${part(p)}`).join('') +
          '--agg7--\r\n',
      );
    }

    it("drops the recipient's aggregated IMDN when every part repeats a delivery the relay reported", () => {
      // Fuzzing audit: aggregates were never looked into, so the sender got the relay's and the recipient's.
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery')));
      const verdicts = [
        h.policy.isDuplicateImdnBody(SESSION, recipientAggregate([['delivered', 'Qw8rT2zLk4']])),
        h.policy.isDuplicateImdnBody(SESSION, recipientAggregate([['delivered', 'Qw8rT2zLk4'], 'text'])),
        h.policy.isDuplicateImdnBody(
          SESSION,
          recipientAggregate([
            ['delivered', 'Qw8rT2zLk4'],
            ['displayed', 'Qw8rT2zLk4'],
          ]),
        ),
        h.policy.isDuplicateImdnBody(
          SESSION,
          recipientAggregate([
            ['delivered', 'Qw8rT2zLk4'],
            ['delivered', 'Other0001'],
          ]),
        ),
      ];
      // Bodies are not edited: one that also says anything else goes on whole.
      expect([verdicts, h.policy.counters.duplicatesDropped]).to.deep.equal([[true, false, false, false], 1]);
    });

    it('forwards an aggregate it could not read whole: no close-delimiter, or a malformed part', () => {
      // Second review: a last part without close-delimiter was never read, so a display part behind a
      // repeated delivered was dropped with it; one malformed part hid the good ones.
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery')));
      const whole = recipientAggregate([
        ['delivered', 'Qw8rT2zLk4'],
        ['delivered', 'Qw8rT2zLk4'],
      ]);
      const unclosed = Buffer.from(whole.toString('latin1').replace(/--agg7--\r\n$/, ''), 'latin1');
      const glued = Buffer.from(
        whole.toString('latin1').replace(/<\/imdn>\r\n--agg7--\r\n$/, '</imdn>--agg7--'),
        'latin1',
      );
      const badPart = Buffer.from(
        whole
          .toString('latin1')
          .replace(/--agg7--\r\n$/, '--agg7\r\nContent-Type: message/imdn+xml\r\n\r\n<imdn\r\n--agg7--\r\n'),
        'latin1',
      );
      expect(
        [whole, unclosed, glued, badPart].map((b) => h.policy.isDuplicateImdnBody(SESSION, b)),
      ).to.deep.equal([true, false, false, false]);
    });

    it('still takes the good delivery part of an aggregate with a malformed one for the recipient reporting first', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'));
      const good = recipientAggregate([['delivered', 'Qw8rT2zLk4']]).toString('latin1');
      const early = Buffer.from(
        good.replace(
          /--agg7--\r\n$/,
          '--agg7\r\nContent-Type: message/imdn+xml\r\n\r\n<!DOCTYPE x><imdn/>\r\n--agg7--\r\n',
        ),
        'latin1',
      );
      expect(h.policy.isDuplicateImdnBody(SESSION, early)).to.equal(false);
      ackAll(h, msg);
      expect([h.sent.length, h.policy.counters.recipientReported]).to.deep.equal([0, 1]);
    });

    it('takes a delivery part of an aggregate for the recipient reporting first, and injects none', () => {
      const h = setup();
      const msg = send(h, imdnIm('positive-delivery'));
      const early = recipientAggregate([
        ['displayed', 'Qw8rT2zLk4'],
        ['delivered', 'Qw8rT2zLk4'],
      ]);
      expect(h.policy.isDuplicateImdnBody(SESSION, early)).to.equal(false);
      ackAll(h, msg);
      expect({ sent: h.sent.length, recipientReported: h.policy.counters.recipientReported }).to.deep.equal({
        sent: 0,
        recipientReported: 1,
      });
    });

    it('forwards everything when dedupe is off', () => {
      const h = setup({ dedupe: false });
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect(h.sent.length).to.equal(1);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(false);
    });

    it('forwards the recipient IMDN when the relay did not report (failure, no request)', () => {
      const h = setup();
      const msg = send(h, imdnIm('negative-delivery'));
      h.tracker.fail(msg!, 403);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(false);
    });

    it('forgets a delivered report after dedupeTtlMs', () => {
      const h = setup({ dedupeTtlMs: 60_000 });
      ackAll(h, send(h, imdnIm('positive-delivery')));
      h.clock.now += 59_999;
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(true);
      h.clock.now += 1;
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn())).to.equal(false);
    });

    it('remembers at most dedupeEntries reports', () => {
      const h = setup({ dedupeEntries: 1 });
      ackAll(h, send(h, imdnIm('positive-delivery'), { messageId: 'MsrpMsg01' }));
      ackAll(
        h,
        send(h, imdnIm('positive-delivery').replace('Qw8rT2zLk4', 'Second001'), { messageId: 'MsrpMsg02' }),
      );
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', 'Qw8rT2zLk4'))).to.equal(false);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', 'Second001'))).to.equal(true);
    });

    it('keeps exactly the last dedupeEntries reports through many wrap-arounds, and sweeps expired ones', () => {
      const h = setup({ dedupeEntries: 3, dedupeTtlMs: 60_000 });
      const ids = Array.from({ length: 10 }, (_, i) => `Imdn${String(i).padStart(5, '0')}`);
      for (const [i, id] of ids.entries()) {
        const im = imdnIm('positive-delivery').replace('Qw8rT2zLk4', id);
        ackAll(h, send(h, im, { messageId: `MsrpMsg${i}` }));
        h.clock.now += 1000;
      }
      const remembered = ids.filter((id) =>
        h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', id)),
      );
      expect(remembered).to.deep.equal(ids.slice(-3));
      const one = parseByteRange('1-590/590');
      expect(h.policy.isImdnCandidate('message/cpim', one, SESSION)).to.equal(true);
      // The oldest of the three expires first; after the last one, the session holds nothing.
      h.policy.sweep(h.clock.now + 60_000 - 3000);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', ids[7]!))).to.equal(false);
      expect(h.policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered', ids[8]!))).to.equal(true);
      h.policy.sweep(h.clock.now + 60_000);
      expect(h.policy.isImdnCandidate('message/cpim', one, SESSION)).to.equal(false);
    });

    it('proposes holding only a small whole (or unranged) message/cpim SEND once something was reported', () => {
      const h = setup();
      const one = parseByteRange('1-590/590');
      expect(h.policy.isImdnCandidate('message/cpim', one)).to.equal(false);
      ackAll(h, send(h, imdnIm('positive-delivery')));
      expect(h.policy.isImdnCandidate('message/cpim', one)).to.equal(true);
      expect(h.policy.isImdnCandidate('text/plain', one)).to.equal(false);
      // No Byte-Range: the whole message in one chunk (RFC 4975 §7.3.1), held up to holdLimit octets.
      expect(h.policy.isImdnCandidate('message/cpim', null)).to.equal(true);
      expect(h.policy.isImdnCandidate('text/plain', null)).to.equal(false);
      // Range-end `*`: whole all the same when its total fits (RFC 4975 §7.1).
      expect(h.policy.isImdnCandidate('message/cpim', parseByteRange('1-*/590'))).to.equal(true);
      expect(h.policy.isImdnCandidate('message/cpim', parseByteRange('2-*/590'))).to.equal(false);
      expect(h.policy.isImdnCandidate('message/cpim', parseByteRange('1-*/9000'))).to.equal(false);
      expect(h.policy.isImdnCandidate('message/cpim', parseByteRange('1-9000/9000'))).to.equal(false);
    });
  });

  describe('counters', () => {
    it('counts requests by dialect and kind', () => {
      const h = setup();
      ackAll(h, send(h, imdnIm('positive-delivery, display'), { messageId: 'MsrpMsg01' }));
      ackAll(h, send(h, legacyIm('negative-delivery, read'), { messageId: 'MsrpMsg02' }));
      expect(h.policy.counters.requests).to.deep.equal({
        imdn: { 'positive-delivery': 1, 'negative-delivery': 0, display: 1, processing: 0 },
        legacy: { 'positive-delivery': 0, 'negative-delivery': 1, display: 1, processing: 0 },
      });
      expect(h.policy.counters.injected).to.deep.equal({
        imdn: { delivered: 1, failed: 0, processed: 0 },
        legacy: { delivered: 0, failed: 0, processed: 0 },
      });
    });
  });

  describe('helpers', () => {
    it('takes the recipient session key from the last URI of a path', () => {
      expect(recipientSessionKey(TO_PATH)).to.equal(SESSION);
      expect(recipientSessionKey(` ${SESSION} `)).to.equal(SESSION);
    });

    it('counts octets as acknowledged on send only when the recipient never answers 200', () => {
      expect(acknowledgedOnSend('yes')).to.equal(false);
      expect(acknowledgedOnSend('partial')).to.equal(true);
      expect(acknowledgedOnSend('no')).to.equal(true);
    });

    it('accepts every report mode', () => {
      const modes: ReportMode[] = ['on-ack', 'on-receipt', 'off'];
      expect(modes.map((mode) => setup({ mode }).policy.mode)).to.deep.equal(modes);
    });
  });
});
