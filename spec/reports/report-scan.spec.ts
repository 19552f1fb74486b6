import { expect } from 'chai';
import fc from 'fast-check';
import { parseCpimHead } from '../../lib/reports/cpim.js';
import { detectReportRequest, isImdnMessage, reportPayloadKind } from '../../lib/reports/report-request.js';
import {
  readReportHead,
  readReportPayload,
  scanReportHead,
  scanReportPayload,
  type HeadScan,
} from '../../lib/reports/report-scan.js';
import { E5_1, E5_2, E6_5 } from '../helpers/cpim-fixtures.js';

/** What the full lenient parser and detectReportRequest answer, in the scanner's terms. */
function reference(buf: Buffer): Exclude<HeadScan, 'fallback'> | 'malformed' {
  let head;
  try {
    head = parseCpimHead(buf, { lenient: true });
  } catch {
    return 'malformed';
  }
  if (head === 'incomplete') return head;
  if (isImdnMessage(head)) return 'report';
  return detectReportRequest(head, true);
}

/** What the parser says of the payload, in scanReportPayload's terms. */
function payloadReference(buf: Buffer): ReturnType<typeof scanReportPayload> {
  const head = parseCpimHead(buf, { lenient: true });
  if (head === 'incomplete') return head;
  const kind = reportPayloadKind(head);
  if (kind === null) return null;
  return { kind, bodyOffset: head.bodyOffset, contentType: head.contentHeader('Content-Type') ?? '' };
}

/** A comparable form: the kinds Set as an array in insertion order. */
function plain(r: ReturnType<typeof reference>): unknown {
  return r !== null && typeof r === 'object' ? { ...r, kinds: [...r.kinds] } : r;
}

/** True when the scanner took the head (no fallback); throws when it disagrees with the parser. */
function agree(text: string | Buffer): boolean {
  const buf = typeof text === 'string' ? Buffer.from(text, 'utf8') : text;
  const scanned = scanReportHead(buf);
  const what = JSON.stringify(buf.toString('latin1'));
  expect(scanReportPayload(buf) === 'fallback', what).to.equal(scanned === 'fallback');
  if (scanned === 'fallback') return false;
  expect(plain(scanned), what).to.deep.equal(plain(reference(buf)));
  expect(scanReportPayload(buf), what).to.deep.equal(payloadReference(buf));
  return true;
}

describe('scanReportHead', () => {
  it('reads the digest E5.1 request without the full parser', () => {
    const r = scanReportHead(Buffer.from(E5_1));
    expect(r).to.not.equal('fallback');
    expect(plain(r as ReturnType<typeof reference>)).to.deep.equal({
      dialect: 'imdn',
      kinds: ['positive-delivery', 'display'],
      messageId: 'Qw8rT2zLk4',
      dateTime: '2024-05-06T10:15:30Z',
      from: '<im:alice@example.org>',
      to: '<im:bob@example.net>',
      recordRoutes: [],
    });
  });

  it('answers like the parser on the digest fixtures: an IM, an IMDN, a legacy request', () => {
    expect(agree(E5_1)).to.equal(true);
    expect(scanReportHead(Buffer.from(E5_2))).to.equal('report');
    expect(scanReportPayload(Buffer.from(E5_2))).to.deep.equal({
      kind: 'imdn',
      bodyOffset: E5_2.indexOf('<?xml'),
      contentType: 'message/imdn+xml',
    });
    expect(agree(E5_2)).to.equal(true);
    expect(agree(E6_5)).to.equal(true);
    expect((scanReportHead(Buffer.from(E6_5)) as { dialect: string }).dialect).to.equal('legacy');
  });

  it('answers incomplete at every cut before the second blank line, like the parser', () => {
    const end = E5_1.indexOf('\r\n\r\n', E5_1.indexOf('\r\n\r\n') + 4) + 4;
    for (let cut = 0; cut < end; cut++) {
      const buf = Buffer.from(E5_1.slice(0, cut));
      expect(scanReportHead(buf), `cut ${cut}`).to.equal('incomplete');
      expect(reference(buf)).to.equal('incomplete');
    }
  });

  it('leaves to the parser what it does not take: folding, parameters, escapes, bare LF, non-ASCII', () => {
    const cases = [
      E5_1.replace(
        'To: <im:bob@example.net>\r\n',
        'To: <im:bob@example.net>\r\n  <im:carol@example.net>\r\n',
      ),
      E5_1.replace('DateTime:', 'DateTime:;x=y'),
      E5_1.replace('Qw8rT2zLk4', 'Qw8r\\u0054'),
      E5_1.replace('NS: imdn <urn:ietf:params:imdn>', 'NS: imdn <urn:ietf:params:\\u0069mdn>'),
      E5_1.replace('\r\nTo:', '\nTo:'),
      E5_1.replace('alice', 'al\u00efce'),
      E5_1.replace('Content-Type: text/plain', ' Content-Type: text/plain'),
      E5_1.replace('DateTime: ', 'DateTime: \r '),
    ];
    for (const c of cases) {
      expect(scanReportHead(Buffer.from(c)), JSON.stringify(c)).to.equal('fallback');
    }
  });

  it("gives a head it leaves to the parser the parser's answer (readReportHead, readReportPayload)", () => {
    const folded = E5_1.replace('To: <im:bob@example.net>\r\n', 'To: <im:bob@example.net>\r\n  <im:c@x>\r\n');
    expect(scanReportHead(Buffer.from(folded))).to.equal('fallback');
    expect(plain(readReportHead(Buffer.from(folded)))).to.deep.equal(plain(reference(Buffer.from(folded))));
    expect((readReportHead(Buffer.from(folded)) as { messageId: string }).messageId).to.equal('Qw8rT2zLk4');
    expect(readReportHead(Buffer.from('No colon here\r\n\r\n\r\n'))).to.equal('malformed');
    const imdn = E5_2.replace('DateTime:', 'DateTime:;x=y');
    expect(scanReportPayload(Buffer.from(imdn))).to.equal('fallback');
    expect(readReportPayload(Buffer.from(imdn))).to.deep.equal(payloadReference(Buffer.from(imdn)));
    expect(() => readReportPayload(Buffer.from('No colon here\r\n\r\n\r\n'))).to.throw();
  });

  it('resolves prefixes and namespaces as the parser does: any prefix, any case, later NS wins', () => {
    const head = (lines: string[], content = 'Content-Type: text/plain'): string =>
      `${lines.join('\r\n')}\r\n\r\n${content}\r\n\r\nbody`;
    const base = ['From: <im:a@x>', 'To: <im:b@y>', 'DateTime: 2024-05-06T10:15:30Z'];
    const cases = [
      head([
        ...base,
        'NS: X <URN:IETF:PARAMS:IMDN>',
        'x.message-id: m1',
        'X.DISPOSITION-NOTIFICATION: Negative-Delivery',
      ]),
      head([
        ...base,
        'NS: x <urn:ietf:params:imdn>',
        'NS: x <urn:other>',
        'x.Message-ID: m1',
        'x.Disposition-Notification: positive-delivery',
      ]),
      head([
        ...base,
        'y.Message-ID: m1',
        'NS: y <urn:ietf:params:imdn>',
        'y.Disposition-Notification: positive-delivery',
      ]),
      head([
        ...base,
        'NS: <urn:ietf:params:imdn>',
        'Message-ID: m2',
        'Disposition-Notification: display',
        'NS: <urn:ietf:params:cpim-headers:>',
      ]),
      head([
        ...base,
        'NS: d <urn:ietf:params:cpim-headers:imdn>',
        'd.Message-ID: m3',
        'd.Disposition-Notification: read',
        'd.Original-To: <im:o@z>',
      ]),
      head([
        ...base,
        'NS: c <urn:ietf:params:cpim-headers:>',
        'c.NS: i <urn:ietf:params:imdn>',
        'i.Message-ID: m4',
        'Receipt-Request: read',
        'i.IMDN-Record-Route: <sip:r1>',
        'i.IMDN-Record-Route: <sip:r2>',
      ]),
      head([
        ...base,
        'Message-ID: m5',
        'Request-Receipt: positive-delivery ; q=1',
        'Receipt-Request: constructor, __proto__',
      ]),
      head(
        [
          ...base,
          'NS: imdn <urn:ietf:params:imdn>',
          'imdn.Message-ID: m6',
          'imdn.Disposition-Notification: positive-delivery',
        ],
        'Content-Type: Message/IMDN+XML\r\nContent-Disposition: Notification',
      ),
      head(
        [
          ...base,
          'NS: imdn <urn:ietf:params:imdn>',
          'imdn.Message-ID: m6',
          'imdn.Disposition-Notification: positive-delivery',
        ],
        'Content-Type: message/imdn+xml',
      ),
      head([
        ...base,
        'NS: bad',
        'NS: x\t<urn:ietf:params:imdn>',
        'NS: y<urn:ietf:params:imdn>',
        'NS: z <urn:a#b>',
        'x.Message-ID: m7',
        'y.Disposition-Notification: positive-delivery',
        'z.Disposition-Notification: display',
      ]),
      head(['Message-ID: m8', 'Disposition-Notification:positive-delivery', 'From:  <im:a@x>  ']),
      '\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n<imdn/>',
      '\r\n\r\nno headers at all',
    ];
    for (const c of cases) expect(agree(c), c).to.equal(true);
  });

  it('takes the next Message-ID form when one is empty or white space, as the parser does', () => {
    const im = (...lines: string[]): Buffer =>
      Buffer.from(
        [
          'From: <im:a@x>',
          'To: <im:b@y>',
          'DateTime: 2024-05-06T10:15:30Z',
          'NS: imdn <urn:ietf:params:imdn>',
        ]
          .concat(lines, 'imdn.Disposition-Notification: display')
          .join('\r\n') + '\r\n\r\nContent-Type: text/plain\r\n\r\nHi',
      );
    const id = (buf: Buffer): unknown => {
      expect(agree(buf), buf.toString('latin1')).to.equal(true);
      const r = scanReportHead(buf);
      return r !== null && typeof r === 'object' ? r.messageId : r;
    };
    expect(id(im('imdn.Message-ID:', 'Message-ID: legacy-id'))).to.equal('legacy-id');
    expect(id(im('imdn.Message-ID:  \t ', 'Message-ID: legacy-id'))).to.equal('legacy-id');
    expect(id(im('Message-ID:', 'imdn.Message-ID: new-id'))).to.equal('new-id');
    expect(id(im('Message-ID: legacy-id', 'imdn.Message-ID: new-id'))).to.equal('new-id');
    expect(id(im('imdn.Message-ID: ', 'Message-ID:   '))).to.equal(null);
  });

  it('agrees with the parser on generated heads (fast-check)', () => {
    const names = [
      'From',
      'to',
      'DateTime',
      'NS',
      'Message-ID',
      'Disposition-Notification',
      'Receipt-Request',
      'Request-Receipt',
      'Original-To',
      'IMDN-Record-Route',
      'Subject',
      'Require',
      'X-Foo',
      'ns',
      'MESSAGE-ID',
    ];
    const prefixes = ['', 'imdn.', 'IMDN.', 'x.', 'cpim.', 'nope.', 'a.b.', '.'];
    const seps = [': ', ': ', ': ', ':', ':  ', ' : ', ':;lang=fr ', ':\t'];
    const values = [
      '<sip:alice@example.com>',
      '"Al \\"A\\"" <im:a@b>',
      'positive-delivery',
      'positive-delivery, negative-delivery',
      'Read',
      'display ; x=1',
      'constructor',
      '',
      'abc\\u0041',
      '2024-05-06T10:15:30Z',
      ' padded ',
      'caf\u00e9',
      'imdn <urn:ietf:params:imdn>',
      'x <URN:ietf:params:imdn>',
      '<urn:ietf:params:imdn>',
      'cpim <urn:ietf:params:cpim-headers:>',
      'x <urn:ietf:params:cpim-headers:imdn>',
      'x<urn:a>',
      'bad',
    ];
    const contents = [
      'Content-Type: text/plain',
      'content-type: Message/IMDN+XML',
      'Content-Disposition: notification',
      'Content-Type: message/status-report',
      'Content-Disposition: confirm',
      ' folded',
      'Bad Name: x',
      'Content-Type:multipart/mixed; boundary=x',
      'X: y',
      'NoColon',
    ];
    const ends = ['\r\n', '\r\n', '\r\n', '\r\n', '\n', '\r'];
    const composed = fc
      .tuple(
        fc.constantFrom(...prefixes),
        fc.constantFrom(...names),
        fc.constantFrom(...seps),
        fc.constantFrom(...values),
        fc.constantFrom(...ends),
      )
      .map((parts) => parts.join(''));
    // Whole lines of real requests, so that many generated heads request something.
    const requestLine = fc
      .constantFrom(
        'NS: imdn <urn:ietf:params:imdn>',
        'NS: IM <URN:IETF:PARAMS:IMDN>',
        'imdn.Message-ID: m1',
        'IM.message-id: m2',
        'imdn.Disposition-Notification: positive-delivery, display',
        'Disposition-Notification: negative-delivery',
        'Message-ID: m3',
        'Receipt-Request: read',
        'Request-Receipt: positive-delivery',
        'From: "A" <im:a@x>',
        'To: <im:b@y>',
        'DateTime: 2024-05-06T10:15:30Z',
        'imdn.Original-To: <im:o@z>',
        'imdn.IMDN-Record-Route: <sip:r1>',
      )
      .map((l) => `${l}\r\n`);
    const line = fc.oneof({ arbitrary: requestLine, weight: 9 }, { arbitrary: composed, weight: 1 });
    let runs = 0;
    let taken = 0;
    let requests = 0;
    fc.assert(
      fc.property(
        fc.array(line, { maxLength: 12 }),
        fc.oneof(
          { arbitrary: fc.constant([['Content-Type: text/plain', '\r\n']]), weight: 3 },
          {
            arbitrary: fc.array(fc.tuple(fc.constantFrom(...contents), fc.constantFrom(...ends)), {
              maxLength: 3,
            }),
            weight: 1,
          },
        ),
        fc.boolean(),
        fc.oneof({ arbitrary: fc.constant(null), weight: 4 }, { arbitrary: fc.nat({ max: 400 }), weight: 1 }),
        (lines, content, declared, cut) => {
          runs++;
          let text = (declared ? 'NS: imdn <urn:ietf:params:imdn>\r\n' : '') + lines.join('');
          text += `\r\n${content.map(([c, e]) => c + e).join('')}\r\nHello`;
          let buf = Buffer.from(text, 'utf8');
          if (cut !== null) buf = buf.subarray(0, cut);
          if (agree(buf)) taken++;
          const r = scanReportHead(buf);
          if (r !== null && typeof r === 'object') requests++;
        },
      ),
      { numRuns: 3000, seed: 3862 },
    );
    // The generator favours plain heads and real request lines: the scan itself is exercised (about two
    // thirds of the heads, one in seven a request), not only its fallback.
    expect(taken).to.be.greaterThan(runs / 5);
    expect(requests).to.be.greaterThan(runs / 20);
  });
});
