import { expect } from 'chai';
import { parseCpimHead } from '../../lib/reports/cpim.js';
import { buildDeliveryReport, detectReportRequest } from '../../lib/reports/imdn.js';
import { readReportPayload } from '../../lib/reports/report-scan.js';
import {
  CpimHeadTemplate,
  cpimHead,
  PayloadSource,
  plainReportPayload,
  readReports,
  receiverImdn,
  SizePicker,
} from '../../lib/load/payload.js';

describe('load payload', () => {
  it('picks sizes exactly in proportion to their weights, interleaved', () => {
    const picker = new SizePicker([
      { bytes: 100, weight: 5 },
      { bytes: 1024, weight: 4 },
      { bytes: 65536, weight: 1 },
    ]);
    const picks = Array.from({ length: 1000 }, () => picker.next());
    const count = (b: number): number => picks.filter((p) => p === b).length;
    expect([count(100), count(1024), count(65536)]).to.deep.equal([500, 400, 100]);
    expect(picks.slice(0, 10)).to.include.members([100, 1024, 65536]);
  });

  it('cuts bodies from a repeating pool: any slicing gives the same octets as the whole', () => {
    const source = new PayloadSource(1000);
    const head = Buffer.from('HEAD\r\n\r\n');
    const body = source.body(5000, head);
    expect(body.length).to.equal(5008);
    const whole = body.slice(0, body.length);
    expect(whole.subarray(0, 8).toString()).to.equal('HEAD\r\n\r\n');
    expect(/^[a-z]+$/.test(whole.subarray(8).toString('latin1'))).to.equal(true);
    for (const size of [1, 7, 999, 1000, 1001, 2048]) {
      const pieces: Buffer[] = [];
      for (let at = 0; at < body.length; at += size)
        pieces.push(body.slice(at, Math.min(body.length, at + size)));
      expect(Buffer.concat(pieces).equals(whole), `chunks of ${size}`).to.equal(true);
    }
  });

  it('writes a CPIM head whose IMDN request the reports code reads back (RFC 5438 §6)', () => {
    const head = cpimHead({
      from: 'sip:alice@example.com',
      to: 'sip:bob@example.com',
      imdnId: 'iL12345-0-1',
      reports: ['positive-delivery', 'negative-delivery'],
    });
    const parsed = parseCpimHead(Buffer.concat([head, Buffer.from('hello')]));
    if (parsed === 'incomplete') throw new Error('incomplete CPIM head');
    const req = detectReportRequest(parsed);
    expect(req?.messageId).to.equal('iL12345-0-1');
    expect([...(req?.kinds ?? [])]).to.deep.equal(['positive-delivery', 'negative-delivery']);
    expect(parsed.contentHeader('Content-Type')).to.equal('text/plain');
  });

  it('makes from its template the very head cpimHead builds, for plain and other ids and URIs', () => {
    const at = Date.UTC(2026, 11, 6, 17, 40, 5, 123);
    const dateTime = new Date(at).toISOString();
    const cases: Array<[string, string, string, string]> = [
      ['sip:alice@example.com', 'sip:bob@example.com', 'iL12345-0-1z', 'plain id'],
      [
        'sip:alice@example.com',
        'sip:bob@example.com',
        'i"odd\\id é',
        'an id the template leaves to cpimHead',
      ],
      ['sip:"al ice"@example.com', 'sip:bøb@example.com', 'iX-1', 'URIs formatCpim escapes or encodes'],
    ];
    for (const [from, to, imdnId, what] of cases)
      for (const reports of [[], ['positive-delivery', 'negative-delivery']] as const) {
        const template = new CpimHeadTemplate({ from, to, reports });
        const want = cpimHead({ from, to, imdnId, reports, dateTime });
        expect(template.head(imdnId, at).equals(want), what).to.equal(true);
        expect(template.head(imdnId, at).equals(want), `${what}, again`).to.equal(true);
      }
  });

  it('asks for no report when none is requested', () => {
    const head = cpimHead({ from: 'sip:a@x', to: 'sip:b@x', imdnId: 'i1', reports: [] });
    const parsed = parseCpimHead(head);
    if (parsed === 'incomplete') throw new Error('incomplete CPIM head');
    expect(detectReportRequest(parsed)).to.equal(null);
    expect(receiverImdn('message/cpim', head)).to.equal(null);
  });

  it('builds the receiver IMDN and reads it back as a delivered report for the IM', () => {
    const im = Buffer.concat([
      cpimHead({ from: 'sip:a@x', to: 'sip:b@x', imdnId: 'iABC-1-2', reports: ['positive-delivery'] }),
      Buffer.from('payload'),
    ]);
    const imdn = receiverImdn('message/cpim', im);
    expect(imdn).to.not.equal(null);
    expect(readReports('message/cpim', imdn!)).to.deep.equal([{ imdnId: 'iABC-1-2', status: 'delivered' }]);
  });

  it('reads no report out of an IM, another content type or a broken body', () => {
    const im = cpimHead({ from: 'sip:a@x', to: 'sip:b@x', imdnId: 'i1', reports: ['positive-delivery'] });
    expect(readReports('message/cpim', im)).to.equal(null);
    expect(readReports('text/plain', Buffer.from('x'))).to.equal(null);
    expect(readReports('message/cpim', Buffer.from('garbage\r\n\r\n\r\n'))).to.equal(null);
  });

  describe('reports in the plain shape, read without the CPIM scan', () => {
    const rfcIm = Buffer.concat([
      cpimHead({
        from: 'sip:a@x',
        to: 'sip:b@x',
        imdnId: 'iQ1',
        reports: ['positive-delivery', 'negative-delivery'],
      }),
      Buffer.from('hello'),
    ]);
    const legacyIm = Buffer.from(
      'From: Alice <im:alice@example.org>\r\nTo: Bob <im:bob@example.net>\r\nMessage-ID: 7fGh2Kp9\r\n' +
        'Receipt-Request: positive-delivery, negative-delivery\r\n\r\nContent-Type: text/plain\r\n\r\nPing',
    );
    const reportsOf = (im: Buffer): Buffer[] => {
      const head = parseCpimHead(im);
      if (head === 'incomplete') throw new Error('incomplete CPIM head');
      const req = detectReportRequest(head)!;
      return (['delivered', 'failed'] as const).map(
        (o) => buildDeliveryReport(req, o, { now: new Date(Date.UTC(2026, 11, 6)), messageId: 'rep1' }).body,
      );
    };
    const plain = [...reportsOf(rfcIm), ...reportsOf(legacyIm)];
    const text = (b: Buffer): string => b.toString('latin1');
    const variants: Array<[string, Buffer]> = [
      ['an IM', rfcIm],
      ['a legacy IM', legacyIm],
      [
        'lower-case MIME names',
        Buffer.from(text(plain[0]!).replace('Content-Type:', 'content-type:'), 'latin1'),
      ],
      ['bare LF line ends', Buffer.from(text(plain[0]!).replace(/\r\n/g, '\n'), 'latin1')],
      [
        'a folded MIME header',
        Buffer.from(text(plain[0]!).replace('Content-Disposition: ', 'Content-Disposition:\r\n '), 'latin1'),
      ],
      [
        'no MIME disposition',
        Buffer.from(text(plain[0]!).replace(/Content-Disposition: [^\r]*\r\n/, ''), 'latin1'),
      ],
      ['a CPIM line without a colon', Buffer.from('From <sip:a@x>\r\n' + text(plain[0]!), 'latin1')],
      [
        'a head only',
        Buffer.from(text(plain[0]!).slice(0, text(plain[0]!).indexOf('\r\n\r\n') + 4), 'latin1'),
      ],
      ['nothing', Buffer.alloc(0)],
      [
        'an empty MIME head',
        Buffer.from(text(plain[0]!).replace(/\r\n\r\nContent-Type[^]*?\r\n\r\n/, '\r\n\r\n\r\n'), 'latin1'),
      ],
      ['a CR inside a name', Buffer.from('Fr\rom: <sip:a@x>\r\n' + text(plain[0]!), 'latin1')],
      // From a review: names the CPIM parser refuses, and octets past ASCII (the scan decodes UTF-8).
      ['a name with a parenthesis', Buffer.from('a(b: x\r\n' + text(plain[0]!), 'latin1')],
      ['a name with two dots', Buffer.from('a.b.c: x\r\n' + text(plain[0]!), 'latin1')],
      ['an empty prefix', Buffer.from('.x: y\r\n' + text(plain[0]!), 'latin1')],
      ['an empty name after the prefix', Buffer.from('x.: y\r\n' + text(plain[0]!), 'latin1')],
      [
        'a lone 0xA0 after the MIME type',
        Buffer.from(text(plain[0]!).replace('imdn+xml', 'imdn+xml\u00a0'), 'latin1'),
      ],
      [
        'a UTF-8 no-break space after the MIME type',
        Buffer.from(text(plain[0]!).replace('imdn+xml', 'imdn+xml\u00a0'), 'utf8'),
      ],
    ];

    it('finds the payload of the reports relays write, as the CPIM scan does', () => {
      for (const body of plain) {
        const quick = plainReportPayload(body);
        expect(quick, text(body)).to.not.equal(null);
        expect(quick).to.deep.equal(readReportPayload(body));
      }
      expect(plain.map((b) => readReports('message/cpim', b))).to.deep.equal([
        [{ imdnId: 'iQ1', status: 'delivered' }],
        [{ imdnId: 'iQ1', status: 'failed' }],
        [{ imdnId: '7fGh2Kp9', status: 'delivered' }],
        [{ imdnId: '7fGh2Kp9', status: 'failed' }],
      ]);
    });

    it('agrees with the CPIM scan on everything else, or leaves it to the scan', () => {
      for (const [name, body] of variants) {
        const quick = plainReportPayload(body);
        if (quick === null) continue; // the scan decides
        const full = readReportPayload(body);
        expect(quick === 'im' ? null : quick, name).to.deep.equal(full);
      }
      // The odd shapes are not taken in place.
      for (const name of [
        'bare LF line ends',
        'a folded MIME header',
        'a CPIM line without a colon',
        'a head only',
        'nothing',
        'an empty MIME head',
        'a CR inside a name',
        'a name with a parenthesis',
        'a name with two dots',
        'an empty prefix',
        'an empty name after the prefix',
        'a lone 0xA0 after the MIME type',
        'a UTF-8 no-break space after the MIME type',
      ])
        expect(plainReportPayload(variants.find(([n]) => n === name)![1]), name).to.equal(null);
      expect(plainReportPayload(rfcIm)).to.equal('im');
    });
  });
});
