import { expect } from 'chai';
import { CpimHead, parseCpimHead } from '../../lib/reports/cpim.js';
import {
  detectReportRequest,
  isImdnMessage,
  reportPayloadKind,
  wantsReport,
  type ReportRequest,
} from '../../lib/reports/report-request.js';
import { readReportHead } from '../../lib/reports/report-scan.js';
import { E5_1, E5_2, E6_5 } from '../helpers/cpim-fixtures.js';

function head(text: string | Buffer, lenient = false): CpimHead {
  const res = parseCpimHead(typeof text === 'string' ? Buffer.from(text, 'utf8') : text, { lenient });
  if (res === 'incomplete') throw new Error('head unexpectedly incomplete');
  return res;
}

/** An IM with the given message headers, a text/plain payload and the usual From/To/DateTime. */
function im(...lines: string[]): CpimHead {
  return head(
    ['From: <im:alice@example.org>', 'To: <im:bob@example.net>', 'DateTime: 2024-05-06T10:15:30Z', ...lines]
      .map((l) => `${l}\r\n`)
      .join('') + '\r\nContent-Type: text/plain\r\n\r\nHi',
  );
}

/** An IM whose `imdn.Disposition-Notification` line is `imdn.Disposition-Notification:` + `rest`. */
function asking(rest: string): CpimHead {
  return im(
    'NS: imdn <urn:ietf:params:imdn>',
    'imdn.Message-ID: m1',
    `imdn.Disposition-Notification:${rest}`,
  );
}

/** A CPIM head with only the given MIME headers. */
function payload(...contentHeaders: string[]): CpimHead {
  return head(`From: <im:b@x>\r\n\r\n${contentHeaders.map((l) => `${l}\r\n`).join('')}\r\n`);
}

function request(h: CpimHead): ReportRequest {
  const req = detectReportRequest(h);
  if (req === null) throw new Error('no report request detected');
  return req;
}

describe('detectReportRequest', () => {
  it('reads the E5.1 request', () => {
    expect(detectReportRequest(head(E5_1))).to.deep.equal({
      dialect: 'imdn',
      kinds: new Set(['positive-delivery', 'display']),
      messageId: 'Qw8rT2zLk4',
      dateTime: '2024-05-06T10:15:30Z',
      from: '<im:alice@example.org>',
      to: '<im:bob@example.net>',
      recordRoutes: [],
    });
  });

  it('recognises Disposition-Notification under any prefix bound to urn:ietf:params:imdn (§5.8 #2)', () => {
    const req = request(
      im('NS: foo <urn:ietf:params:imdn>', 'foo.Message-ID: m1', 'foo.Disposition-Notification: display'),
    );
    expect([req.dialect, [...req.kinds], req.messageId]).to.deep.equal(['imdn', ['display'], 'm1']);
  });

  it('ignores request values that name Object properties (constructor, __proto__, toString)', () => {
    const req = request(asking(' constructor, __proto__, toString, positive-delivery'));
    expect([...req.kinds]).to.deep.equal(['positive-delivery']);
  });

  it('returns null for an undeclared prefix (§5.8 #2)', () => {
    expect(detectReportRequest(im('imdn.Message-ID: m1', 'imdn.Disposition-Notification: display'))).to.equal(
      null,
    );
  });

  it('returns null when the NS line comes after the request (§4.8 #4)', () => {
    const h = im(
      'imdn.Disposition-Notification: display',
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: m1',
    );
    expect(detectReportRequest(h)).to.equal(null);
  });

  it('returns null for an empty Disposition-Notification value (§5.8 #3)', () => {
    expect(detectReportRequest(asking(' '))).to.equal(null);
  });

  it('returns null for a Disposition-Notification with nothing after the colon', () => {
    expect(detectReportRequest(asking(''))).to.equal(null);
  });

  it('ignores unknown request tokens (§5.8 #3)', () => {
    const req = request(asking(' x-new, negative-delivery'));
    expect([...req.kinds]).to.deep.equal(['negative-delivery']);
  });

  it('returns null when only unknown tokens were requested', () => {
    expect(detectReportRequest(asking(' x-new'))).to.equal(null);
  });

  it('reads display;foo=bar as display (§5.8 #3)', () => {
    const req = request(asking(' display;foo=bar , processing'));
    expect([...req.kinds]).to.deep.equal(['display', 'processing']);
  });

  it('reads a quoted parameter value as one value, commas and all (RFC 5438 §10, RFC 3862 §4.5)', () => {
    // Audit finding: `display;note="a, positive-delivery, b"` asked for positive-delivery too.
    const req = request(asking(' display;note="a, positive-delivery, b", processing'));
    expect([...req.kinds]).to.deep.equal(['display', 'processing']);
    const escaped = request(asking(' display;note="say \\"x, negative-delivery\\""'));
    expect([...escaped.kinds]).to.deep.equal(['display']);
  });

  it('recognises a prefix bound to urn:ietf:params:cpim-headers:imdn', () => {
    const req = request(
      im(
        'NS: d <urn:ietf:params:cpim-headers:imdn>',
        'd.Message-ID: m2',
        'd.Disposition-Notification: positive-delivery',
      ),
    );
    expect([req.dialect, [...req.kinds], req.messageId]).to.deep.equal(['imdn', ['positive-delivery'], 'm2']);
  });

  it('recognises unprefixed Disposition-Notification with unprefixed Message-ID (draft-ietf-simple-imdn-00)', () => {
    const req = request(im('Message-ID: m3', 'Disposition-Notification: negative-delivery, read'));
    expect([req.dialect, [...req.kinds], req.messageId]).to.deep.equal([
      'imdn',
      ['negative-delivery', 'display'],
      'm3',
    ]);
  });

  it('reads the §6.5 legacy request', () => {
    expect(detectReportRequest(head(E6_5))).to.deep.equal({
      dialect: 'legacy',
      kinds: new Set(['positive-delivery', 'display']),
      messageId: '7fGh2Kp9',
      from: 'Alice <im:alice@example.org>',
      to: 'Bob <im:bob@example.net>',
      recordRoutes: [],
    });
  });

  it('reads Receipt-Request: read as a display request (§6.6 #1)', () => {
    expect([...request(im('Message-ID: m4', 'Receipt-Request: read')).kinds]).to.deep.equal(['display']);
  });

  it('reads Request-Receipt: read as a display request (§6.6 #1)', () => {
    const req = request(im('Message-ID: m4', 'Request-Receipt: read'));
    expect([req.dialect, [...req.kinds]]).to.deep.equal(['legacy', ['display']]);
  });

  it('uses the unprefixed Message-ID when no imdn.Message-ID exists (§6.6 #2)', () => {
    expect(
      request(
        im(
          'NS: imdn <urn:ietf:params:imdn>',
          'Message-ID: legacy-id',
          'imdn.Disposition-Notification: display',
        ),
      ).messageId,
    ).to.equal('legacy-id');
  });

  it('prefers imdn.Message-ID over the unprefixed Message-ID', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'Message-ID: legacy-id',
      'imdn.Message-ID: new-id',
      'imdn.Disposition-Notification: display',
    );
    expect(request(h).messageId).to.equal('new-id');
  });

  it('uses the unprefixed Message-ID when imdn.Message-ID is empty or white space', () => {
    const empty = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID:',
      'Message-ID: legacy-id',
      'imdn.Disposition-Notification: display',
    );
    expect(request(empty).messageId).to.equal('legacy-id');
    // Escaped white space (RFC 3862 §2.3): the decoded value is a tab, a space and a tab.
    const blank = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: \\t \\t',
      'Message-ID: legacy-id',
      'Receipt-Request: read',
    );
    expect(blank.get('urn:ietf:params:imdn', 'Message-ID')?.value).to.equal('\t \t');
    expect(request(blank).messageId).to.equal('legacy-id');
  });

  it('uses imdn.Message-ID when the unprefixed Message-ID is empty', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'Message-ID:',
      'imdn.Message-ID: new-id',
      'imdn.Disposition-Notification: display',
    );
    expect(request(h).messageId).to.equal('new-id');
  });

  it('returns null when every Message-ID is empty, as when there is none', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'NS: d <urn:ietf:params:cpim-headers:imdn>',
      'imdn.Message-ID:',
      'd.Message-ID:',
      'Message-ID:',
      'imdn.Disposition-Notification: display',
    );
    expect(detectReportRequest(h)).to.equal(null);
  });

  it('answers in RFC 5438 form when both request forms are present', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: m5',
      'Receipt-Request: read',
      'imdn.Disposition-Notification: positive-delivery',
    );
    const req = request(h);
    expect([req.dialect, [...req.kinds]]).to.deep.equal(['imdn', ['positive-delivery', 'display']]);
  });

  it('answers in the draft form when the Disposition-Notification beside a Receipt-Request asks for nothing', () => {
    // Review: an empty or unknown-valued Disposition-Notification asks for no IMDN (digest §5.8), so it
    // does not make the answer an RFC 5438 one; the fast scan decides through the same requestFrom.
    for (const dn of ['Disposition-Notification: ', 'Disposition-Notification: foo']) {
      const lines = ['Message-ID: m7', dn, 'Receipt-Request: positive-delivery'];
      const req = request(im(...lines));
      const text =
        ['From: <im:a@x>', 'To: <im:b@y>', ...lines].join('\r\n') +
        '\r\n\r\nContent-Type: text/plain\r\n\r\n';
      const scanned = readReportHead(Buffer.from(text));
      expect(
        [req.dialect, [...req.kinds], typeof scanned === 'object' ? scanned?.dialect : scanned],
        dn,
      ).to.deep.equal(['legacy', ['positive-delivery'], 'legacy']);
    }
  });

  it('reads quoted parameters before decoding escapes: an escaped quote or backslash neither ends nor opens a String', () => {
    // Fuzzing: with the value's CPIM escapes decoded first, `\\` left a lone backslash that swallowed the
    // closing quote (positive-delivery lost) and `\u0022` became a quote (a kind invented inside a String).
    const cases: Array<[string, string[]]> = [
      [' negative-delivery;note="x\\\\", positive-delivery', ['positive-delivery', 'negative-delivery']],
      [' negative-delivery;note="\\u0022", positive-delivery', ['positive-delivery', 'negative-delivery']],
      [' negative-delivery;note="\\"", positive-delivery', ['positive-delivery', 'negative-delivery']],
      [' display;note="a\\", positive-delivery, b"', ['display']],
      [' positive\\u002Ddelivery', ['positive-delivery']], // a request token's own escapes are decoded
    ];
    for (const [rest, kinds] of cases) {
      const text =
        'From: <im:a@x>\r\nTo: <im:b@y>\r\nDateTime: 2024-05-06T10:15:30Z\r\nNS: imdn <urn:ietf:params:imdn>\r\n' +
        `imdn.Message-ID: m1\r\nimdn.Disposition-Notification:${rest}\r\n\r\nContent-Type: text/plain\r\n\r\n`;
      const scanned = readReportHead(Buffer.from(text, 'latin1'));
      expect(
        [
          [...request(asking(rest)).kinds],
          typeof scanned === 'object' && scanned !== null ? [...scanned.kinds] : scanned,
        ],
        rest,
      ).to.deep.equal([kinds, kinds]);
    }
  });

  it('returns null when a request has no Message-ID to correlate with', () => {
    expect(
      detectReportRequest(im('NS: imdn <urn:ietf:params:imdn>', 'imdn.Disposition-Notification: display')),
    ).to.equal(null);
  });

  it('returns null for a message that requested nothing', () => {
    expect(detectReportRequest(im('NS: imdn <urn:ietf:params:imdn>', 'imdn.Message-ID: m6'))).to.equal(null);
  });

  it('returns null for an IMDN that carries a Disposition-Notification (§5.8 #10)', () => {
    const text = E5_2.replace(
      'imdn.Message-ID: Hn3vB8sPq1\r\n',
      'imdn.Message-ID: Hn3vB8sPq1\r\nimdn.Disposition-Notification: display\r\n',
    );
    expect(detectReportRequest(head(text))).to.equal(null);
  });

  it('keeps imdn.Original-To and the IMDN-Record-Route headers in order', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: m7',
      'imdn.Disposition-Notification: positive-delivery',
      'imdn.Original-To: "List" <im:list@example.net>',
      'imdn.IMDN-Record-Route: <sip:as1@example.net>',
      'imdn.IMDN-Record-Route: <sip:as2@example.net>',
    );
    const req = request(h);
    expect(req.originalTo).to.equal('"List" <im:list@example.net>');
    expect(req.recordRoutes).to.deep.equal(['<sip:as1@example.net>', '<sip:as2@example.net>']);
  });

  it('finds lower-cased request headers in a lenient head', () => {
    const text = E5_1.replace('imdn.Disposition-Notification', 'IMDN.disposition-notification');
    expect(detectReportRequest(head(text))).to.equal(null);
    expect([...request(head(text, true)).kinds]).to.deep.equal(['positive-delivery', 'display']);
  });
});

describe('wantsReport', () => {
  it('wants delivered only when positive-delivery was requested', () => {
    expect(wantsReport(request(head(E5_1)), 'delivered')).to.equal(true);
  });

  it('does not want failed when negative-delivery was not requested', () => {
    expect(wantsReport(request(head(E5_1)), 'failed')).to.equal(false);
  });

  it('wants nothing on delivery when only negative-delivery was requested (§5.8 #9)', () => {
    const req = request(asking(' negative-delivery'));
    expect([wantsReport(req, 'delivered'), wantsReport(req, 'failed')]).to.deep.equal([false, true]);
  });

  it('wants processed only when processing was requested', () => {
    const req = request(asking(' processing'));
    expect([wantsReport(req, 'processed'), wantsReport(request(head(E5_1)), 'processed')]).to.deep.equal([
      true,
      false,
    ]);
  });
});

describe('reportPayloadKind', () => {
  it('classifies E5.2 as an IMDN', () => {
    expect([reportPayloadKind(head(E5_2)), isImdnMessage(head(E5_2))]).to.deep.equal(['imdn', true]);
  });

  it('classifies E5.1 as an instant message', () => {
    expect([reportPayloadKind(head(E5_1)), isImdnMessage(head(E5_1))]).to.deep.equal([null, false]);
  });

  it('treats message/imdn+xml without Content-Disposition: notification as an IM (§5.8 #11)', () => {
    expect(isImdnMessage(payload('Content-Type: message/imdn+xml'))).to.equal(false);
  });

  it('matches media type and disposition case-insensitively and without parameters', () => {
    expect(
      reportPayloadKind(
        payload('Content-Type: Message/IMDN+XML; charset=utf-8', 'Content-Disposition: Notification'),
      ),
    ).to.equal('imdn');
  });

  it('classifies message/status-report with confirm as a legacy report', () => {
    expect(
      reportPayloadKind(payload('Content-Type: message/status-report', 'Content-Disposition: confirm')),
    ).to.equal('legacy');
  });

  it('classifies application/status-report+xml with render as a legacy report', () => {
    expect(
      reportPayloadKind(
        payload('Content-Type: application/status-report+xml', 'Content-Disposition: render'),
      ),
    ).to.equal('legacy');
  });

  it('classifies message/status-receipt+xml with confirm as a legacy report', () => {
    expect(
      reportPayloadKind(payload('Content-Type: message/status-receipt+xml', 'Content-Disposition: confirm')),
    ).to.equal('legacy');
  });

  it('does not classify a legacy report type without disposition as a report', () => {
    expect(reportPayloadKind(payload('Content-Type: message/status-report'))).to.equal(null);
  });

  it('classifies multipart/mixed with notification as an aggregated IMDN (§5.8 #14)', () => {
    expect(
      reportPayloadKind(
        payload('Content-Type: multipart/mixed; boundary="agg-7Hq2"', 'Content-Disposition: notification'),
      ),
    ).to.equal('aggregate');
  });
});
