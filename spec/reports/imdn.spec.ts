import { expect } from 'chai';
import fc from 'fast-check';
import { ErrorCodes, MsrpError } from '../../lib/errors.js';
import { CPIM_CORE_NS, CpimHead, parseCpimHead, parseNameAddr } from '../../lib/reports/cpim.js';
import {
  buildDeliveryReport,
  detectReportRequest,
  IMDN_HEADER_NS,
  isDateTime,
  parseAggregatedImdn,
  parseImdn,
  readImdn,
  parsePlainImdn,
  reportPayloadKind,
  validateImdnDocument,
  type ReportRequest,
} from '../../lib/reports/imdn.js';
import { E5_1, E5_2_XML, E5_2, E6_5 } from '../helpers/cpim-fixtures.js';

/** Digest §5.7 E5.3: a display IMDN payload (<len=298>). */
const E5_3_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\r\n' +
  '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
  '<message-id>Qw8rT2zLk4</message-id>\r\n' +
  '<datetime>2024-05-06T10:15:30Z</datetime>\r\n' +
  '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
  '<display-notification><status><displayed/></status></display-notification>\r\n' +
  '</imdn>';

/** Digest §6.5: the legacy read report payload. */
const E6_5_REPORT =
  '<status-report>\r\n' +
  '<message-id>7fGh2Kp9</message-id>\r\n' +
  '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
  '<type>read</type>\r\n' +
  '<status>200</status>\r\n' +
  '<note lang="en">Message was read</note>\r\n' +
  '</status-report>';

/** What buildDeliveryReport makes of E6_5 for a delivered message at 2024-05-06T10:15:31Z. */
const E6_5_DELIVERED =
  'From: Bob <im:bob@example.net>\r\n' +
  'To: Alice <im:alice@example.org>\r\n' +
  'DateTime: 2024-05-06T10:15:31Z\r\n' +
  '\r\n' +
  'Content-Type: message/status-report\r\n' +
  'Content-Disposition: confirm\r\n' +
  '\r\n' +
  '<status-report>\r\n' +
  '<message-id>7fGh2Kp9</message-id>\r\n' +
  '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
  '<type>delivery</type>\r\n' +
  '<status>200</status>\r\n' +
  '<note lang="en">Message was delivered</note>\r\n' +
  '</status-report>';

const NOW = new Date('2024-05-06T10:15:31Z');

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

function request(h: CpimHead): ReportRequest {
  const req = detectReportRequest(h);
  if (req === null) throw new Error('no report request detected');
  return req;
}

function thrown(fn: () => unknown): MsrpError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MsrpError) return err;
    throw err;
  }
  throw new Error('expected an MsrpError');
}

/** The CPIM head and the content of a generated report. */
function split(body: Buffer): { h: CpimHead; content: Buffer } {
  const h = head(body);
  return { h, content: body.subarray(h.bodyOffset) };
}

describe('parseImdn', () => {
  it('has the digest lengths for the E5.2 and E5.3 payloads', () => {
    expect([Buffer.byteLength(E5_2_XML), Buffer.byteLength(E5_3_XML), Buffer.byteLength(E5_2)]).to.deep.equal(
      [369, 298, 590],
    );
  });

  it('parses the E5.2 delivery IMDN', () => {
    expect(parseImdn(Buffer.from(E5_2_XML))).to.deep.equal({
      format: 'rfc5438',
      messageId: 'Qw8rT2zLk4',
      dateTime: '2024-05-06T10:15:30Z',
      recipientUri: 'im:bob@example.net',
      originalRecipientUri: 'im:bob@example.net',
      notification: 'delivery',
      status: 'delivered',
    });
  });

  it('parses the E5.3 display IMDN', () => {
    expect(parseImdn(Buffer.from(E5_3_XML))).to.deep.equal({
      format: 'rfc5438',
      messageId: 'Qw8rT2zLk4',
      dateTime: '2024-05-06T10:15:30Z',
      recipientUri: 'im:bob@example.net',
      notification: 'display',
      status: 'displayed',
    });
  });

  it('parses the E5.2 payload found through the CPIM head', () => {
    const h = head(E5_2);
    expect(parseImdn(Buffer.from(E5_2).subarray(h.bodyOffset)).status).to.equal('delivered');
  });

  it('parses the §6.5 legacy read report as display/displayed (§6.6 #3)', () => {
    expect(parseImdn(Buffer.from(E6_5_REPORT))).to.deep.equal({
      format: 'status-report',
      messageId: '7fGh2Kp9',
      recipientUri: 'im:bob@example.net',
      notification: 'display',
      status: 'displayed',
      note: 'Message was read',
    });
  });

  it('maps a legacy <status>485</status> to error (§6.6 #4)', () => {
    const doc = parseImdn(Buffer.from(E6_5_REPORT.replace('<status>200</status>', '<status>485</status>')));
    expect([doc.notification, doc.status]).to.deep.equal(['display', 'error']);
  });

  it('maps <disposition>delivery</disposition><status>failure</status> to delivery/failed (§6.6 #4)', () => {
    const xml =
      '<imdn xmlns="urn:ietf:params:xml:ns:imdn"><message-id>m1</message-id>' +
      '<datetime>2006-05-26T10:00:00Z</datetime><disposition>delivery</disposition>' +
      '<status>failure</status><note lang="en">no route</note></imdn>';
    expect(parseImdn(Buffer.from(xml))).to.deep.equal({
      format: 'imdn-draft',
      messageId: 'm1',
      dateTime: '2006-05-26T10:00:00Z',
      notification: 'delivery',
      status: 'failed',
      note: 'no route',
    });
  });

  it('maps a legacy delivery report with an error code to failed', () => {
    const xml = E6_5_REPORT.replace('<type>read</type>', '<type>delivery</type>').replace('200', '408');
    expect(parseImdn(Buffer.from(xml)).status).to.equal('failed');
  });

  it('parses a status-report in its XML namespace', () => {
    const xml = E6_5_REPORT.replace(
      '<status-report>',
      '<status-report xmlns="urn:ietf:params:xml:ns:status-report">',
    );
    expect(parseImdn(Buffer.from(xml)).messageId).to.equal('7fGh2Kp9');
  });

  it('parses a status-receipt (draft-khartabil-simple-im-receipts-00)', () => {
    const xml = E6_5_REPORT.replace(/status-report/g, 'status-receipt').replace('read', 'delivery');
    const doc = parseImdn(Buffer.from(xml));
    expect([doc.format, doc.notification, doc.status]).to.deep.equal([
      'status-receipt',
      'delivery',
      'delivered',
    ]);
  });

  it('parses an IMDN whose namespace is bound to a prefix', () => {
    const xml =
      '<i:imdn xmlns:i="urn:ietf:params:xml:ns:imdn"><i:message-id>m1</i:message-id>' +
      '<i:datetime>2024-05-06T10:15:30Z</i:datetime>' +
      '<i:processing-notification><i:status><i:stored/></i:status></i:processing-notification></i:imdn>';
    const doc = parseImdn(Buffer.from(xml));
    expect([doc.notification, doc.status]).to.deep.equal(['processing', 'stored']);
  });

  it('decodes XML entities in element text', () => {
    const xml = E5_2_XML.replace('Qw8rT2zLk4', 'a&amp;b&lt;c');
    expect(parseImdn(Buffer.from(xml)).messageId).to.equal('a&b<c');
  });

  it('throws for an <imdn> outside the IMDN namespace', () => {
    const xml = E5_2_XML.replace(' xmlns="urn:ietf:params:xml:ns:imdn"', '');
    expect(thrown(() => parseImdn(Buffer.from(xml))).message).to.contain('unknown root element <imdn>');
  });

  it('throws MSRP_ERR_BAD_HEADER_VALUE for XML that is not well-formed', () => {
    const err = thrown(() => parseImdn(Buffer.from(E5_2_XML.slice(0, 200))));
    expect([err.code, err.statusCode]).to.deep.equal([ErrorCodes.BAD_HEADER_VALUE, 400]);
  });

  it('throws, unparsed, for a document of more than 256 tags (deep nesting costs the XML parser dear)', () => {
    const deep = '<x>'.repeat(300) + '</x>'.repeat(300);
    const xml = E5_2_XML.replace('</imdn>', `${deep}</imdn>`);
    expect(thrown(() => parseImdn(Buffer.from(xml))).message).to.contain('more than 256 tags');
  });

  it('throws for a document with a DOCTYPE', () => {
    const xml = '<!DOCTYPE imdn [<!ENTITY a "b">]>' + E5_2_XML.slice(E5_2_XML.indexOf('<imdn'));
    expect(thrown(() => parseImdn(Buffer.from(xml))).message).to.contain('DOCTYPE');
  });

  it('throws for a document without <message-id>', () => {
    const xml = E5_2_XML.replace('<message-id>Qw8rT2zLk4</message-id>\r\n', '');
    expect(thrown(() => parseImdn(Buffer.from(xml))).message).to.contain('no <message-id>');
  });

  it('throws for a status not allowed in its category', () => {
    const xml = E5_3_XML.replace('<displayed/>', '<delivered/>');
    expect(thrown(() => parseImdn(Buffer.from(xml))).message).to.contain('no valid status (<delivered/>)');
  });

  it('throws for a legacy report with an unknown type', () => {
    expect(thrown(() => parseImdn(Buffer.from(E6_5_REPORT.replace('read', 'seen')))).message).to.contain(
      'unknown report type',
    );
  });
});

describe('readImdn (the fast path)', () => {
  /** readImdn and the XML parser agree: the same document, or both throw. True when the fast path read it. */
  function agree(xml: string): boolean {
    const body = Buffer.from(xml, 'utf8');
    let slow: unknown;
    try {
      slow = parseImdn(body);
    } catch (err) {
      slow = (err as Error).constructor;
    }
    let fast: unknown;
    try {
      fast = readImdn(body);
    } catch (err) {
      fast = (err as Error).constructor;
    }
    expect(fast, xml).to.deep.equal(slow);
    return parsePlainImdn(xml) !== null;
  }

  it('reads the digest IMDNs without the XML parser', () => {
    expect(parsePlainImdn(E5_2_XML)).to.deep.equal(parseImdn(Buffer.from(E5_2_XML)));
    expect(parsePlainImdn(E5_3_XML)).to.deep.equal(parseImdn(Buffer.from(E5_3_XML)));
    expect(parsePlainImdn(E6_5_REPORT)).to.equal(null);
  });

  const CR_LF = ['', '\r\n', '\n', ' ', '\t'];

  it('agrees with the XML parser on the digest examples and their variations', () => {
    for (const xml of [E5_2_XML, E5_3_XML, E6_5_REPORT]) {
      agree(xml);
      agree('\ufeff' + xml);
      agree(xml.replace(/\r\n/g, '\n'));
      agree(xml.replace(/\r\n/g, ''));
      agree(xml.replace('Qw8rT2zLk4', '  Qw8rT2zLk4 '));
      agree(xml.replace('Qw8rT2zLk4', 'Qw8&amp;rT2'));
      agree(xml.replace('Qw8rT2zLk4', 'Qw8\r\nrT2'));
      agree(xml.replace('Qw8rT2zLk4', 'a]]>b'));
      agree(xml.replace('Qw8rT2zLk4', 'a\u0001b'));
      agree(xml.replace('Qw8rT2zLk4', 'a\u0085b\u2028c\u2029'));
      agree(xml.replace('Qw8rT2zLk4', 'msg\u0085'));
      agree(xml.replace('Qw8rT2zLk4', ''));
      agree(xml.replace('<status>', '<status><!-- c -->'));
      agree(xml.replace('<delivered/>', '<delivered />'));
      agree(xml.replace('<delivered/>', '<failed/>'));
      agree(xml.replace('<delivered/>', '<displayed/>'));
      agree(xml.replace('</imdn>', '</imdn>\r\n'));
      agree(xml.replace('</imdn>', '</imdn><x/>'));
      agree(xml.replace('<?xml version="1.0" encoding="UTF-8"?>', ''));
      agree(xml.replace('<?xml version="1.0" encoding="UTF-8"?>', ' <?xml version="1.0" encoding="UTF-8"?>'));
      agree(xml.replace('</delivery-notification>', '</display-notification>'));
      agree(xml.replace('</datetime>', '</datetime><subject>hi &lt;3</subject>'));
      agree(xml.replace('</datetime>', '</datetime><subject>caf\u00e9 \u00a0</subject>'));
    }
  });

  it('agrees with the XML parser on generated documents (fast-check)', () => {
    let runs = 0;
    let fast = 0;
    const text = fc.string({ unit: 'binary', maxLength: 12 });
    fc.assert(
      fc.property(
        text,
        text,
        fc.option(text),
        fc.option(text),
        fc.option(text),
        fc.constantFrom('delivery', 'display', 'processing'),
        fc.constantFrom('delivered', 'failed', 'displayed', 'processed', 'stored', 'forbidden', 'error', 'x'),
        fc.array(fc.constantFrom(...CR_LF), { minLength: 8, maxLength: 8 }),
        (id, dt, rcpt, orig, subject, kind, status, ws) => {
          runs++;
          const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
          let xml = `<?xml version="1.0" encoding="UTF-8"?>${ws[0]}<imdn xmlns="urn:ietf:params:xml:ns:imdn">`;
          xml += `${ws[1]}<message-id>${esc(id)}</message-id>${ws[2]}<datetime>${esc(dt)}</datetime>`;
          if (rcpt !== null) xml += `${ws[3]}<recipient-uri>${esc(rcpt)}</recipient-uri>`;
          if (orig !== null) xml += `<original-recipient-uri>${esc(orig)}</original-recipient-uri>`;
          if (subject !== null) xml += `<subject>${esc(subject)}</subject>`;
          xml += `${ws[4]}<${kind}-notification>${ws[5]}<status><${status}/></status>${ws[6]}`;
          xml += `</${kind}-notification></imdn>${ws[7]}`;
          if (agree(xml)) fast++;
        },
      ),
      { numRuns: 200, seed: 5438 },
    );
    // Most generated documents are plain: the fast path is exercised, not bypassed.
    expect(fast).to.be.greaterThan(runs / 4);
  });

  it('agrees with the XML parser on the reports the relay builds', () => {
    const req = (messageId: string): ReportRequest => ({
      dialect: 'imdn',
      kinds: new Set(['positive-delivery']),
      messageId,
      dateTime: '2024-05-06T10:15:30Z',
      from: '"Alice \\"A\\"" <im:alice@example.com>',
      to: '<im:bob@example.net>',
      recordRoutes: [],
    });
    for (const id of ['Qw8rT2zLk4', 'a&b<c>d', ' spaced ', 'caf\u00e9']) {
      for (const outcome of ['delivered', 'failed', 'processed'] as const) {
        const cpim = buildDeliveryReport(req(id), outcome, { now: new Date(0), messageId: 'r1' }).body;
        const h = parseCpimHead(cpim);
        if (h === 'incomplete') throw new Error('incomplete');
        agree(cpim.subarray(h.bodyOffset).toString('utf8'));
      }
    }
  });
});

describe('parseAggregatedImdn', () => {
  const body =
    '--agg-7Hq2\r\n' +
    'Content-Type: message/imdn+xml\r\n' +
    '\r\n' +
    E5_2_XML +
    '\r\n--agg-7Hq2\r\n' +
    'Content-Type: message/imdn+xml\r\n' +
    '\r\n' +
    E5_3_XML.replace('im:bob@example.net', 'im:carol@example.net') +
    '\r\n--agg-7Hq2--';

  it('parses each message/imdn+xml part of an aggregated IMDN (§5.8 #14)', () => {
    const docs = parseAggregatedImdn('multipart/mixed; boundary="agg-7Hq2"', Buffer.from(body));
    expect(docs.map((d) => [d.messageId, d.recipientUri, d.status])).to.deep.equal([
      ['Qw8rT2zLk4', 'im:bob@example.net', 'delivered'],
      ['Qw8rT2zLk4', 'im:carol@example.net', 'displayed'],
    ]);
  });

  it('accepts an unquoted boundary', () => {
    expect(parseAggregatedImdn('multipart/mixed;boundary=agg-7Hq2', Buffer.from(body))).to.have.length(2);
  });

  it('skips parts of other types', () => {
    const mixed = body.replace('Content-Type: message/imdn+xml', 'Content-Type: text/plain');
    expect(parseAggregatedImdn('multipart/mixed; boundary="agg-7Hq2"', Buffer.from(mixed))).to.have.length(1);
  });

  it('throws for a multipart/mixed without boundary', () => {
    expect(thrown(() => parseAggregatedImdn('multipart/mixed', Buffer.from(body))).message).to.contain(
      'boundary',
    );
  });
});

describe('isDateTime (RFC 3339 §5.6)', () => {
  it('accepts date-times with fractions, offsets, either case and a leap second', () => {
    const good = [
      '2024-05-06T10:15:30Z',
      '2024-05-06t10:15:30z',
      '2016-12-31T23:59:60Z',
      '2024-02-29T00:00:00+05:30',
      '2000-02-29T00:00:00Z',
      '2024-05-06T10:15:30.123-00:00',
      ' 2024-05-06T10:15:30Z ',
    ];
    expect(good.filter((t) => !isDateTime(t))).to.deep.equal([]);
  });

  it('refuses text, impossible dates and times, and offsets out of range', () => {
    const bad = [
      'yesterday',
      '2024-05-06 10:15:30Z',
      '2024-05-06T10:15:30',
      '2023-02-29T00:00:00Z',
      '1900-02-29T00:00:00Z',
      '2024-04-31T00:00:00Z',
      '2026-02-30T10:00:00Z',
      '2026-13-01T10:00:00Z',
      '2026-00-10T10:00:00Z',
      '2024-05-06T24:00:00Z',
      '2024-05-06T10:60:00Z',
      '2024-05-06T10:15:61Z',
      '2024-05-06T10:15:30+24:00',
    ];
    expect(bad.filter((t) => isDateTime(t))).to.deep.equal([]);
  });

  it('is echoed in <datetime> with T and Z upper-cased (XML Schema dateTime)', () => {
    const r = request(head(E5_1.replace(/DateTime: [^\r\n]+/, 'DateTime: 2024-05-06t10:15:30z')));
    const xml = split(
      buildDeliveryReport(r, 'delivered', { now: NOW, messageId: 'r1' }).body,
    ).content.toString();
    expect(xml).to.include('<datetime>2024-05-06T10:15:30Z</datetime>');
    expect(validateImdnDocument(xml)).to.deep.equal([]);
  });
});

describe('buildDeliveryReport', () => {
  const req = (): ReportRequest => request(head(E5_1));
  const e52 = () =>
    buildDeliveryReport(req(), 'delivered', {
      now: NOW,
      messageId: 'Hn3vB8sPq1',
      originalRecipientUri: 'im:bob@example.net',
    });

  it('builds the E5.2 CPIM body byte-exactly from E5.1', () => {
    const report = e52();
    expect(report.contentType).to.equal('message/cpim');
    expect(report.body.toString('utf8')).to.equal(E5_2);
    expect(report.body.length).to.equal(590);
  });

  it('builds an IMDN document that validates', () => {
    expect(validateImdnDocument(split(e52().body).content.toString('utf8'))).to.deep.equal([]);
  });

  it('is classified as an IMDN by its own parser (§5.8 #4)', () => {
    expect(reportPayloadKind(split(e52().body).h)).to.equal('imdn');
  });

  it('carries its own imdn.Message-ID and no Disposition-Notification or IMDN-Record-Route (§5.8 #4)', () => {
    const { h } = split(e52().body);
    expect(h.get(IMDN_HEADER_NS, 'Message-ID')?.value).to.equal('Hn3vB8sPq1');
    expect(h.get(IMDN_HEADER_NS, 'Disposition-Notification')).to.equal(undefined);
    expect(h.get(IMDN_HEADER_NS, 'IMDN-Record-Route')).to.equal(undefined);
  });

  it('is not itself a report request', () => {
    expect(detectReportRequest(split(e52().body).h)).to.equal(null);
  });

  it("echoes the IM's message-id and DateTime exactly (§5.8 #5)", () => {
    const doc = parseImdn(split(e52().body).content);
    expect([doc.messageId, doc.dateTime]).to.deep.equal(['Qw8rT2zLk4', '2024-05-06T10:15:30Z']);
  });

  it('swaps CPIM From and To', () => {
    const { h } = split(e52().body);
    expect([h.get(CPIM_CORE_NS, 'From')?.value, h.get(CPIM_CORE_NS, 'To')?.value]).to.deep.equal([
      '<im:bob@example.net>',
      '<im:alice@example.org>',
    ]);
  });

  it('builds the E5.2 CPIM body without options beyond time and id: original-recipient-uri repeats the recipient', () => {
    const report = buildDeliveryReport(req(), 'delivered', { now: NOW, messageId: 'Hn3vB8sPq1' });
    expect(report.body.toString('utf8')).to.equal(E5_2);
  });

  it('takes recipient-uri and original-recipient-uri from the options', () => {
    const report = buildDeliveryReport(req(), 'delivered', {
      now: NOW,
      messageId: 'r1',
      recipientUri: 'sip:bob@192.0.2.1',
      originalRecipientUri: 'im:team@example.net',
    });
    const doc = parseImdn(split(report.body).content);
    expect([doc.recipientUri, doc.originalRecipientUri]).to.deep.equal([
      'sip:bob@192.0.2.1',
      'im:team@example.net',
    ]);
  });

  it('reports a failure with <failed/> in a delivery-notification', () => {
    const report = buildDeliveryReport(req(), 'failed', { now: NOW, messageId: 'r2' });
    const content = split(report.body).content.toString();
    expect(content).to.contain('<delivery-notification><status><failed/></status></delivery-notification>');
    expect(validateImdnDocument(content)).to.deep.equal([]);
  });

  it('reports processing with <processed/> in a processing-notification', () => {
    const report = buildDeliveryReport(req(), 'processed', { now: NOW, messageId: 'r3' });
    const doc = parseImdn(split(report.body).content);
    expect([doc.notification, doc.status]).to.deep.equal(['processing', 'processed']);
  });

  it("echoes the IM's Original-To as original-recipient-uri (§5.8 #6)", () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: m1',
      'imdn.Disposition-Notification: positive-delivery',
      'imdn.Original-To: <im:list@example.net>',
    );
    const report = buildDeliveryReport(request(h), 'delivered', { now: NOW, messageId: 'r4' });
    expect(parseImdn(split(report.body).content).originalRecipientUri).to.equal('im:list@example.net');
  });

  it('copies two IMDN-Record-Route headers into IMDN-Route headers in order (§5.8 #7)', () => {
    const h = im(
      'NS: imdn <urn:ietf:params:imdn>',
      'imdn.Message-ID: m1',
      'imdn.Disposition-Notification: positive-delivery',
      'imdn.IMDN-Record-Route: <sip:as1@example.net>',
      'imdn.IMDN-Record-Route: <sip:as2@example.net>',
    );
    const { h: out } = split(
      buildDeliveryReport(request(h), 'delivered', { now: NOW, messageId: 'r5' }).body,
    );
    expect(out.getAll(IMDN_HEADER_NS, 'IMDN-Route').map((x) => x.value)).to.deep.equal([
      '<sip:as1@example.net>',
      '<sip:as2@example.net>',
    ]);
  });

  it('escapes XML special characters and re-parses to the same values', () => {
    const r = { ...req(), messageId: 'a&b<c>d' };
    const { content } = split(buildDeliveryReport(r, 'delivered', { now: NOW, messageId: 'r6' }).body);
    expect(content.toString()).to.contain('<message-id>a&amp;b&lt;c&gt;d</message-id>');
    expect(parseImdn(content).messageId).to.equal('a&b<c>d');
  });

  it('echoes a quoted display name with escaped quotes unchanged', () => {
    const text = E5_1.replace('To: <im:bob@example.net>', 'To: "Dr. \\"Bob\\"" <im:bob@example.net>');
    const { h } = split(
      buildDeliveryReport(request(head(text)), 'delivered', { now: NOW, messageId: 'r7' }).body,
    );
    expect(parseNameAddr(h.get(CPIM_CORE_NS, 'From')?.rawValue ?? '')).to.deep.equal({
      displayName: 'Dr. "Bob"',
      uri: 'im:bob@example.net',
    });
  });

  it('writes DateTime to the second', () => {
    const { h } = split(
      buildDeliveryReport(req(), 'delivered', { now: new Date('2024-05-06T10:15:31.789Z'), messageId: 'r8' })
        .body,
    );
    expect(h.get(CPIM_CORE_NS, 'DateTime')?.value).to.equal('2024-05-06T10:15:31Z');
  });

  it('throws when the IM has no DateTime to echo', () => {
    const r = { ...req(), dateTime: undefined };
    expect(
      thrown(() => buildDeliveryReport(r, 'delivered', { now: NOW, messageId: 'r9' })).message,
    ).to.contain('DateTime');
  });

  it('throws when the IM has no CPIM From', () => {
    const r = { ...req(), from: undefined };
    expect(thrown(() => buildDeliveryReport(r, 'delivered', { now: NOW, messageId: 'r10' })).code).to.equal(
      ErrorCodes.BAD_HEADER_VALUE,
    );
  });

  it('throws for a value XML cannot carry', () => {
    const r = { ...req(), messageId: 'a\u0001b' };
    expect(
      thrown(() => buildDeliveryReport(r, 'delivered', { now: NOW, messageId: 'r11' })).message,
    ).to.contain('XML cannot carry');
  });

  describe('legacy dialect', () => {
    const legacy = (): ReportRequest => request(head(E6_5));

    it('builds the draft status-report for the §6.5 request byte-exactly', () => {
      const report = buildDeliveryReport(legacy(), 'delivered', { now: NOW, messageId: 'unused' });
      expect(report.body.toString('utf8')).to.equal(E6_5_DELIVERED);
    });

    it('is classified as a legacy report by its own parser', () => {
      const { h } = split(buildDeliveryReport(legacy(), 'delivered', { now: NOW, messageId: 'unused' }).body);
      expect([reportPayloadKind(h), h.get(CPIM_CORE_NS, 'Message-ID')]).to.deep.equal(['legacy', undefined]);
    });

    it('re-parses as delivery/delivered for the original Message-ID', () => {
      const { content } = split(
        buildDeliveryReport(legacy(), 'delivered', { now: NOW, messageId: 'unused' }).body,
      );
      expect(parseImdn(content)).to.deep.equal({
        format: 'status-report',
        messageId: '7fGh2Kp9',
        recipientUri: 'im:bob@example.net',
        notification: 'delivery',
        status: 'delivered',
        note: 'Message was delivered',
      });
    });

    it('writes the failure code of a failed delivery and re-parses it as failed', () => {
      const report = buildDeliveryReport(legacy(), 'failed', {
        now: NOW,
        messageId: 'unused',
        failureCode: 408,
      });
      const { content } = split(report.body);
      expect(content.toString()).to.contain('<status>408</status>');
      expect(parseImdn(content).status).to.equal('failed');
    });

    it('throws for processed, which the draft cannot express', () => {
      expect(
        thrown(() => buildDeliveryReport(legacy(), 'processed', { now: NOW, messageId: 'x' })).message,
      ).to.contain('processing');
    });
  });
});

describe('validateImdnDocument', () => {
  it('accepts the E5.2 document', () => {
    expect(validateImdnDocument(E5_2_XML)).to.deep.equal([]);
  });

  it('accepts the E5.3 document', () => {
    expect(validateImdnDocument(E5_3_XML)).to.deep.equal([]);
  });

  it('accepts an extension element from another namespace', () => {
    const xml = E5_3_XML.replace('</imdn>', '<x:ext xmlns:x="urn:example:ext">1</x:ext></imdn>');
    expect(validateImdnDocument(xml)).to.deep.equal([]);
  });

  it('reports elements out of order', () => {
    const xml = E5_3_XML.replace('<message-id>Qw8rT2zLk4</message-id>\r\n', '').replace(
      '</imdn>',
      '<message-id>Qw8rT2zLk4</message-id></imdn>',
    );
    expect(validateImdnDocument(xml)).to.deep.equal(['<message-id> is out of order']);
  });

  it('reports a missing message-id and datetime', () => {
    const xml =
      '<imdn xmlns="urn:ietf:params:xml:ns:imdn"><display-notification><status><displayed/></status></display-notification></imdn>';
    expect(validateImdnDocument(xml)).to.deep.equal(['<message-id> is missing', '<datetime> is missing']);
  });

  it('reports a datetime that is not RFC 3339', () => {
    expect(validateImdnDocument(E5_3_XML.replace('2024-05-06T10:15:30Z', 'yesterday'))).to.deep.equal([
      '<datetime> "yesterday" is not an RFC 3339 date-time',
    ]);
  });

  it('reports a repeated element', () => {
    const xml = E5_3_XML.replace('<recipient-uri>', '<recipient-uri>a</recipient-uri><recipient-uri>');
    expect(validateImdnDocument(xml)).to.deep.equal(['<recipient-uri> appears more than once']);
  });

  it('reports two notification elements', () => {
    const xml = E5_2_XML.replace(
      '</imdn>',
      '<display-notification><status><displayed/></status></display-notification></imdn>',
    );
    expect(validateImdnDocument(xml)).to.deep.equal(['expected exactly one notification element, found 2']);
  });

  it('reports a missing notification element', () => {
    const xml = E5_3_XML.replace(
      '<display-notification><status><displayed/></status></display-notification>\r\n',
      '',
    );
    expect(validateImdnDocument(xml)).to.deep.equal(['expected exactly one notification element, found 0']);
  });

  it('reports two status values', () => {
    expect(validateImdnDocument(E5_3_XML.replace('<displayed/>', '<displayed/><error/>'))).to.deep.equal([
      '<status> in <display-notification> must hold exactly one status element, found 2',
    ]);
  });

  it('reports a status not allowed in its category', () => {
    expect(validateImdnDocument(E5_3_XML.replace('<displayed/>', '<delivered/>'))).to.deep.equal([
      '<delivered> is not a status of <display-notification>',
    ]);
  });

  it('reports a status element that is not empty', () => {
    expect(
      validateImdnDocument(E5_3_XML.replace('<displayed/>', '<displayed>yes</displayed>')),
    ).to.deep.equal(['<displayed> must be empty']);
  });

  it('reports a notification without <status>', () => {
    expect(validateImdnDocument(E5_3_XML.replace('<status><displayed/></status>', ''))).to.deep.equal([
      '<display-notification> must hold exactly one <status>',
    ]);
  });

  it('accepts an extension element from another namespace inside <status>', () => {
    const xml = E5_3_XML.replace('<displayed/>', '<displayed/><x:why xmlns:x="urn:example:ext">ok</x:why>');
    expect(validateImdnDocument(xml)).to.deep.equal([]);
  });

  it('reports an element other than <status> inside a notification', () => {
    const xml = E5_3_XML.replace('</status>', '</status><x:why xmlns:x="urn:example:ext"/>');
    expect(validateImdnDocument(xml)).to.deep.equal([
      '<display-notification> must hold exactly one <status>',
    ]);
  });

  it('reports an unknown IMDN element', () => {
    expect(validateImdnDocument(E5_3_XML.replace('</imdn>', '<note>x</note></imdn>'))).to.deep.equal([
      '<note> is not an IMDN element',
    ]);
  });

  it('reports a root outside the IMDN namespace', () => {
    expect(validateImdnDocument(E6_5_REPORT)).to.deep.equal([
      'root element is <status-report> in no namespace, not <imdn> in urn:ietf:params:xml:ns:imdn',
    ]);
  });

  it('reports XML that is not well-formed', () => {
    expect(validateImdnDocument('<imdn')).to.have.length(1);
    expect(validateImdnDocument('<imdn')[0]).to.match(/^not well-formed XML: /);
  });
});
