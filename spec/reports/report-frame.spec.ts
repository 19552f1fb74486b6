import { expect } from 'chai';
import fc from 'fast-check';
import { reportFrame, ReportFrames, type ReportFrameInput } from '../../lib/reports/report-frame.js';
import type { ReportRequest } from '../../lib/reports/report-request.js';

const TO_PATH = 'msrp://alice.example.org:7777/iau39soe2843z;tcp';
const FROM_PATH = 'msrp://relay.example.com:2855/t0K3nQ9xLm;tcp msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
const NOW = Date.UTC(2024, 4, 6, 10, 15, 31, 250);

function request(over: Partial<ReportRequest> = {}): ReportRequest {
  return {
    dialect: 'imdn',
    kinds: new Set(['positive-delivery', 'negative-delivery']),
    messageId: 'Qw8rT2zLk4',
    dateTime: '2024-05-06T10:15:30Z',
    from: '<im:alice@example.org>',
    to: '<im:bob@example.net>',
    recordRoutes: [],
    ...over,
  };
}

function input(over: Partial<ReportFrameInput> = {}, req: Partial<ReportRequest> = {}): ReportFrameInput {
  return { req: request(req), outcome: 'delivered', toPath: TO_PATH, fromPath: FROM_PATH, ...over };
}

/** Identifier sources that give the same sequence to the template and to the scratch builder. */
function ids(): () => string {
  let n = 0;
  return () => `id${String(++n).padStart(6, '0')}`;
}

/** The frame from a template (second report of the session, so the template is used) and from scratch. */
function both(frames: ReportFrames, session: string, inp: ReportFrameInput): [string, string] {
  frames.build(session, inp, NOW, ids());
  const templated = frames.build(session, inp, NOW, ids()).toString('latin1');
  return [templated, reportFrame(inp, NOW, ids()).toString('latin1')];
}

describe('ReportFrames', () => {
  it('writes the same octets as the scratch builder: RFC 5438 delivered, failed, processed; legacy', () => {
    const frames = new ReportFrames(16);
    const cases: ReportFrameInput[] = [
      input(),
      input({ outcome: 'failed', failureCode: 408 }),
      input({ outcome: 'processed' }),
      input({}, { originalTo: '<im:bob-old@example.net>', recordRoutes: ['<sip:r1@x>', '"R 2" <sip:r2@y>'] }),
      input({}, { dialect: 'legacy', dateTime: undefined, from: 'Alice <im:alice@example.org>' }),
      input({ outcome: 'failed', failureCode: 481 }, { dialect: 'legacy' }),
      input({}, { from: '"Al\\u00efce \\"A\\"" <im:alice@example.org>', to: '<im:b\u00f6b@example.net>' }),
    ];
    cases.forEach((c, i) => {
      const [templated, scratch] = both(frames, `s${i}`, c);
      expect(templated).to.equal(scratch);
    });
  });

  it('fills Byte-Range from the body length of each report', () => {
    const frames = new ReportFrames(16);
    const short = frames.build('s', input({}, { messageId: 'a' }), NOW, ids()).toString('latin1');
    const long = frames.build('s', input({}, { messageId: 'a'.repeat(32) }), NOW, ids()).toString('latin1');
    const range = (f: string): number => Number(/Byte-Range: 1-(\d+)\//.exec(f)![1]);
    const bodyOf = (f: string): string => f.slice(f.indexOf('\r\n\r\n') + 4, f.lastIndexOf('\r\n-------'));
    expect(range(long) - range(short)).to.equal(31);
    expect(range(long)).to.equal(Buffer.byteLength(bodyOf(long), 'latin1'));
  });

  it('remakes the template when a constant part of the session changes', () => {
    const frames = new ReportFrames(16);
    const a = input();
    const b = input({ toPath: 'msrp://alice.example.org:7777/other;tcp' }, { to: '<im:carol@example.net>' });
    frames.build('s', a, NOW, ids());
    expect(frames.build('s', b, NOW, ids()).toString('latin1')).to.equal(
      reportFrame(b, NOW, ids()).toString('latin1'),
    );
    expect(frames.build('s', a, NOW, ids()).toString('latin1')).to.equal(
      reportFrame(a, NOW, ids()).toString('latin1'),
    );
  });

  it('builds from scratch what a template would write differently: escapes, non-ASCII, control characters', () => {
    const frames = new ReportFrames(16);
    for (const messageId of ['a&b', '<x>', 'caf\u00e9', 'tab\there']) {
      const inp = input({}, { messageId });
      frames.build('s', inp, NOW, ids());
      let scratch: string;
      try {
        scratch = reportFrame(inp, NOW, ids()).toString('latin1');
      } catch {
        expect(() => frames.build('s', inp, NOW, ids())).to.throw();
        continue;
      }
      expect(frames.build('s', inp, NOW, ids()).toString('latin1')).to.equal(scratch);
    }
  });

  it('re-draws the transaction id when an echoed value would put its end-line in the body', () => {
    // The recipient URI is echoed into the constant part of the template; the scratch builder re-draws.
    const frames = new ReportFrames(16);
    const inp = input({}, { to: '<sip:b\r\n-------id000002$>' });
    for (let i = 0; i < 2; i++) {
      const f = frames.build('s', inp, NOW, ids()).toString('latin1');
      const tid = /^MSRP (\S+) SEND/.exec(f)![1]!;
      expect(tid).to.not.equal('id000002');
      expect(f.indexOf(`\r\n-------${tid}`)).to.equal(f.length - tid.length - 12);
    }
    expect(frames.made).to.equal(0);
  });

  it('keeps one template per outcome, and one for failed whatever the RFC 5438 failure code', () => {
    const frames = new ReportFrames(16);
    for (let i = 0; i < 5; i++) {
      for (const inp of [
        input({ outcome: 'processed' }, { messageId: `m${i}` }),
        input({}, { messageId: `m${i}` }),
        input({ outcome: 'failed', failureCode: 400 + i }, { messageId: `m${i}` }),
      ]) {
        expect(frames.build('s', inp, NOW, ids()).toString('latin1')).to.equal(
          reportFrame(inp, NOW, ids()).toString('latin1'),
        );
      }
    }
    expect(frames.made).to.equal(3);
    // The legacy failed report writes the code: a new code makes a new template.
    const legacy = (code: number): ReportFrameInput =>
      input({ outcome: 'failed', failureCode: code }, { dialect: 'legacy' });
    frames.build('l', legacy(408), NOW, ids());
    const f = frames.build('l', legacy(481), NOW, ids()).toString('latin1');
    expect(f).to.equal(reportFrame(legacy(481), NOW, ids()).toString('latin1'));
    expect(f).to.contain('<status>481</status>');
    expect(frames.made).to.equal(5);
  });

  it('builds from scratch when a given identifier is not written as it is', () => {
    const frames = new ReportFrames(16);
    frames.build('s', input(), NOW, ids());
    for (const id of ['a\\b', 'caf\u00e9', 'x<y']) {
      const same = (): string => id;
      expect(frames.build('s', input(), NOW, same).toString('latin1')).to.equal(
        reportFrame(input(), NOW, same).toString('latin1'),
      );
    }
    expect(() => frames.build('s', input(), NOW, () => '')).to.throw();
  });

  it('throws as the scratch builder does for a request it cannot answer', () => {
    const frames = new ReportFrames(16);
    const inp = input({}, { dateTime: undefined });
    expect(() => reportFrame(inp, NOW, ids())).to.throw();
    expect(() => frames.build('s', inp, NOW, ids())).to.throw();
    expect(() => frames.build('s', input({}, { from: undefined }), NOW, ids())).to.throw();
  });

  it('keeps at most max sessions and still answers after dropping them', () => {
    const frames = new ReportFrames(2);
    for (let i = 0; i < 5; i++) {
      const [templated, scratch] = both(frames, `s${i}`, input({}, { messageId: `m${i}` }));
      expect(templated).to.equal(scratch);
    }
    expect((frames as unknown as { templates: Map<string, unknown> }).templates.size).to.be.at.most(2);
  });

  it('agrees with the scratch builder on generated requests (fast-check)', () => {
    const text = fc.string({ unit: 'grapheme-ascii', maxLength: 16 });
    fc.assert(
      fc.property(
        text,
        fc.option(text, { nil: undefined }),
        fc.constantFrom('imdn', 'legacy'),
        fc.constantFrom('delivered', 'failed', 'processed'),
        fc.array(fc.constantFrom('<sip:r1>', '<sip:r2>'), { maxLength: 2 }),
        (messageId, dateTime, dialect, outcome, recordRoutes) => {
          const inp = input(
            { outcome: outcome as ReportFrameInput['outcome'], failureCode: 486 },
            { messageId, dateTime, dialect: dialect as ReportRequest['dialect'], recordRoutes },
          );
          const frames = new ReportFrames(4);
          let scratch: string | Error;
          try {
            scratch = reportFrame(inp, NOW, ids()).toString('latin1');
          } catch (err) {
            scratch = err as Error;
          }
          for (let i = 0; i < 2; i++) {
            if (scratch instanceof Error) expect(() => frames.build('s', inp, NOW, ids())).to.throw();
            else expect(frames.build('s', inp, NOW, ids()).toString('latin1')).to.equal(scratch);
          }
        },
      ),
      { numRuns: 300, seed: 4976 },
    );
  });
});
