/**
 * CPIM bodies of the spec digest's report examples (§5.7 E5.1, E5.2; §6.5), byte-exact with CRLF,
 * shared by the reports specs.
 */
/** Digest §5.7 E5.1: the CPIM body of an IM requesting IMDNs (<len=263>). */
export const E5_1 =
  'From: <im:alice@example.org>\r\n' +
  'To: <im:bob@example.net>\r\n' +
  'DateTime: 2024-05-06T10:15:30Z\r\n' +
  'NS: imdn <urn:ietf:params:imdn>\r\n' +
  'imdn.Message-ID: Qw8rT2zLk4\r\n' +
  'imdn.Disposition-Notification: positive-delivery, display\r\n' +
  '\r\n' +
  'Content-Type: text/plain; charset=utf-8\r\n' +
  '\r\n' +
  'Hello Bob';

/** Digest §5.7 E5.2: the XML payload of the delivery IMDN (<len=369>). */
export const E5_2_XML =
  '<?xml version="1.0" encoding="UTF-8"?>\r\n' +
  '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
  '<message-id>Qw8rT2zLk4</message-id>\r\n' +
  '<datetime>2024-05-06T10:15:30Z</datetime>\r\n' +
  '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
  '<original-recipient-uri>im:bob@example.net</original-recipient-uri>\r\n' +
  '<delivery-notification><status><delivered/></status></delivery-notification>\r\n' +
  '</imdn>';

/** Digest §5.7 E5.2: the CPIM message headers and MIME headers of the delivery IMDN, to the blank line. */
export const E5_2_HEAD =
  'From: <im:bob@example.net>\r\n' +
  'To: <im:alice@example.org>\r\n' +
  'DateTime: 2024-05-06T10:15:31Z\r\n' +
  'NS: imdn <urn:ietf:params:imdn>\r\n' +
  'imdn.Message-ID: Hn3vB8sPq1\r\n' +
  '\r\n' +
  'Content-Type: message/imdn+xml\r\n' +
  'Content-Disposition: notification\r\n' +
  '\r\n';

/** Digest §5.7 E5.2: the CPIM body of the delivery IMDN (<len=590>). */
export const E5_2 = E5_2_HEAD + E5_2_XML;

/** Digest §6.5: legacy im-report-00 request (<len=164>). */
export const E6_5 =
  'From: Alice <im:alice@example.org>\r\n' +
  'To: Bob <im:bob@example.net>\r\n' +
  'Message-ID: 7fGh2Kp9\r\n' +
  'Receipt-Request: positive-delivery, read\r\n' +
  '\r\n' +
  'Content-Type: text/plain\r\n' +
  '\r\n' +
  'Ping';

/** An RFC 5438 IM from alice to bob asking for `notify`. */
export function imFromAlice(imdnId: string, notify: string, text = 'hi'): Buffer {
  return Buffer.from(
    [
      'From: <im:alice@example.org>',
      'To: <im:bob@example.net>',
      'DateTime: 2026-11-24T10:00:00Z',
      'NS: imdn <urn:ietf:params:imdn>',
      `imdn.Message-ID: ${imdnId}`,
      `imdn.Disposition-Notification: ${notify}`,
    ].join('\r\n') +
      '\r\n' +
      '\r\n' +
      'Content-Type: text/plain' +
      '\r\n' +
      '\r\n' +
      text,
  );
}
