/**
 * Behaviour of the reports layer that mutation testing found no spec pinning down: each test here fails
 * on one mutant of lib/reports/ (named in its comment) and passes on the real code.
 */
import { expect } from 'chai';
import { parseCpimHead, type CpimHead } from '../../lib/reports/cpim.js';
import { recipientSessionKey } from '../../lib/reports/policy.js';
import { reportFrame, ReportFrames, type ReportFrameInput } from '../../lib/reports/report-frame.js';
import { detectReportRequest, type ReportRequest } from '../../lib/reports/report-request.js';
import { openChunk } from '../helpers/reports.js';
import {
  FROM_PATH,
  imdnIm,
  NOW,
  outcomes,
  recipientImdn,
  send,
  SESSION,
  setup,
  TO_PATH,
  type Meta,
} from '../helpers/report-policy.js';

const META: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: true, dest: 'bob' };

function head(text: string): CpimHead {
  const h = parseCpimHead(Buffer.from(text, 'utf8'), { lenient: true });
  if (h === 'incomplete') throw new Error('head unexpectedly incomplete');
  return h;
}

describe('reports layer: behaviour pinned by mutation testing', () => {
  describe('MessageTracker with octets acknowledged on send (Failure-Report no/partial)', () => {
    // Mutant: tracker.ts acked() completes a message once acknowledged, without `wasWhole`. The relay
    // today holds a chunk's last octet until its end-line, so it cannot ack every octet first; the
    // tracker's contract (onComplete only once whole) must not depend on that.
    it('reports nothing for a message whose every octet was written but whose sender then ends it with #', () => {
      const h = setup();
      const { policy, tracker } = h;
      const body = Buffer.from(imdnIm('positive-delivery, negative-delivery'));
      const range = `1-${body.length}/${body.length}`;
      const chunk = openChunk(tracker, 'alice', SESSION, 'MsrpMsg01', META, { range, body, flag: '$' })!;
      // The relay wrote every octet to the recipient before the end-line came (acknowledgedOnSend).
      tracker.acked(chunk.msg, 1, body.length);
      expect(outcomes(h)).to.deep.equal([]);
      tracker.end(chunk, '#'); // RFC 4975 §7.3.1: the sender abandoned it
      expect(outcomes(h)).to.deep.equal([]);
      expect(policy.counters.aborted).to.equal(1);
    });

    it('reports delivered once the end-line of such a message comes with $', () => {
      const h = setup();
      const { tracker } = h;
      const body = Buffer.from(imdnIm('positive-delivery'));
      const range = `1-${body.length}/${body.length}`;
      const chunk = openChunk(tracker, 'alice', SESSION, 'MsrpMsg01', META, { range, body, flag: '$' })!;
      tracker.acked(chunk.msg, 1, body.length);
      expect(outcomes(h)).to.deep.equal([]);
      tracker.end(chunk, '$');
      expect(outcomes(h)).to.deep.equal(['delivered']);
    });
  });

  describe('report request values', () => {
    // Mutant: report-request.ts kindBits() compares request tokens case-sensitively. RFC 5438 §10 names
    // them as ABNF literals, which are case-insensitive (RFC 5234 §2.3).
    it('reads the known request values in any case', () => {
      const req = detectReportRequest(
        head(
          'From: <im:alice@example.org>\r\nTo: <im:bob@example.net>\r\nDateTime: 2024-05-06T10:15:30Z\r\n' +
            'NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: m1\r\n' +
            'imdn.Disposition-Notification: Positive-Delivery, NEGATIVE-DELIVERY\r\n' +
            '\r\nContent-Type: text/plain\r\n\r\nHi',
        ),
      );
      expect(req === null ? null : [...req.kinds]).to.deep.equal(['positive-delivery', 'negative-delivery']);
    });

    it('answers a request written in upper case (the relay reports delivered)', () => {
      const h = setup();
      const { tracker } = h;
      const msg = send(h, imdnIm('POSITIVE-DELIVERY'))!;
      tracker.acked(msg, 1, msg.total);
      expect(outcomes(h)).to.deep.equal(['delivered']);
    });
  });

  describe('processing (--reports-processing)', () => {
    // Mutant: policy.ts onWhole() sends `processed` without checking the processing flag. The existing
    // spec asks for processing alone, which is dropped at the head before onWhole runs.
    it('sends no processed with the flag off when the IM also asked for positive-delivery', () => {
      const h = setup();
      const { policy, tracker } = h;
      const msg = send(h, imdnIm('processing, positive-delivery'))!;
      expect(outcomes(h)).to.deep.equal([]);
      tracker.acked(msg, 1, msg.total);
      expect(outcomes(h)).to.deep.equal(['delivered']);
      expect(policy.counters.injected.imdn).to.deep.equal({ delivered: 1, failed: 0, processed: 0 });
    });
  });

  describe('dedupe of the recipient own IMDNs', () => {
    // Mutant: policy.ts isDuplicateImdnBody() drops every notification but display ones. docs/reports.md:
    // display and processing notifications are forwarded untouched; only delivery ones are duplicates.
    it("forwards the recipient's processing IMDN for a message the relay reported delivered", () => {
      const h = setup();
      const { policy, tracker } = h;
      const msg = send(h, imdnIm('positive-delivery, processing'))!;
      tracker.acked(msg, 1, msg.total);
      expect(outcomes(h)).to.deep.equal(['delivered']);
      expect(policy.isDuplicateImdnBody(SESSION, recipientImdn('processed'))).to.equal(false);
      expect(policy.counters.duplicatesDropped).to.equal(0);
      // The delivery one is the duplicate.
      expect(policy.isDuplicateImdnBody(SESSION, recipientImdn('delivered'))).to.equal(true);
    });
  });

  describe('helpers', () => {
    // Mutant: policy.ts recipientSessionKey() cuts at the first space. The existing spec's paths have two
    // URIs, where the first and the last space are the same.
    it('takes the recipient session key from the last URI of a path of three URIs', () => {
      expect(recipientSessionKey(`msrp://r1.example.com:2855/aaa;tcp ${TO_PATH}`)).to.equal(SESSION);
    });
  });

  describe('ReportFrames templates', () => {
    const base: ReportFrameInput = {
      req: {
        dialect: 'imdn',
        kinds: new Set(['positive-delivery', 'negative-delivery']),
        messageId: 'Qw8rT2zLk4',
        dateTime: '2024-05-06T10:15:30Z',
        from: '<im:alice@example.org>',
        to: '<im:bob@example.net>',
        originalTo: '<im:list@example.net>',
        recordRoutes: ['<sip:r1@example.net>', '<sip:r2@example.net>'],
      },
      outcome: 'delivered',
      toPath: FROM_PATH,
      fromPath: TO_PATH,
    };
    const ids = (): (() => string) => {
      let n = 0;
      return () => `id${String(++n).padStart(6, '0')}`;
    };
    const withReq = (over: Partial<ReportRequest>): ReportFrameInput => ({
      ...base,
      req: { ...base.req, ...over },
    });
    // Mutants: report-frame.ts fits() ignoring one constant part. The existing spec changes several parts at
    // once, so a template reused for another sender's To-Path (a second client sending toward the same
    // recipient session) went unnoticed.
    const changes: Array<[string, ReportFrameInput, ReportFrameInput]> = [
      ['To-Path (another sender)', base, { ...base, toPath: 'msrp://carol.example.org:7655/c9C9c9C9c9;tcp' }],
      ['From-Path', base, { ...base, fromPath: `msrp://relay.example.com:2855/zzzzzzzzzz;tcp ${SESSION}` }],
      ['CPIM From', base, withReq({ from: '<im:carol@example.org>' })],
      ['CPIM To', base, withReq({ to: '<im:bobby@example.net>' })],
      ['Original-To', base, withReq({ originalTo: '<im:other-list@example.net>' })],
      [
        'an IMDN-Record-Route',
        base,
        withReq({ recordRoutes: ['<sip:r1@example.net>', '<sip:r3@example.net>'] }),
      ],
      [
        'the legacy failure code',
        { ...base, outcome: 'failed', failureCode: 408, req: { ...base.req, dialect: 'legacy' } },
        { ...base, outcome: 'failed', failureCode: 481, req: { ...base.req, dialect: 'legacy' } },
      ],
    ];
    for (const [part, a, b] of changes) {
      it(`writes the next report of a session as from scratch when only ${part} changed`, () => {
        const frames = new ReportFrames(16);
        frames.build(SESSION, a, NOW, ids());
        expect(frames.build(SESSION, b, NOW, ids()).toString('latin1')).to.equal(
          reportFrame(b, NOW, ids()).toString('latin1'),
        );
      });
    }
  });
});
