/**
 * IMDN documents (RFC 5438 `message/imdn+xml`) and the legacy report documents of
 * draft-khartabil-simple-im-report-00 (`message/status-report`) and its successors: parsing incoming ones
 * with a namespace-aware XML parser, building the delivery report the relay injects, and a validator for
 * the RFC 5438 element order. Report-request detection lives in report-request.ts and is re-exported here.
 */
import { DOMParser, type Document, type Element } from '@xmldom/xmldom';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { escapeCpimRawValue, escapeCpimValue, parseNameAddr } from './cpim.js';
import type { ReportRequest } from './report-request.js';

export {
  detectReportRequest,
  isImdnMessage,
  reportPayloadKind,
  wantsReport,
  IMDN_HEADER_NS,
  IMDN_DRAFT_HEADER_NS,
  type ReportKind,
  type ReportPayloadKind,
  type ReportRequest,
} from './report-request.js';

/** XML namespace of RFC 5438 IMDN documents. */
export const IMDN_XML_NS = 'urn:ietf:params:xml:ns:imdn';
/** XML namespace of draft-khartabil-simple-im-report-00 status reports (its example omits it). */
export const STATUS_REPORT_XML_NS = 'urn:ietf:params:xml:ns:status-report';
/** XML namespace of draft-khartabil-simple-im-receipts-00 status receipts. */
export const STATUS_RECEIPT_XML_NS = 'urn:ietf:params:xml:ns:status-receipt';

/** The disposition category a notification reports on. */
export type ImdnNotification = 'delivery' | 'display' | 'processing';

/** A disposition state (the empty element inside RFC 5438 `<status>`). */
export type ImdnStatus =
  'delivered' | 'failed' | 'forbidden' | 'error' | 'displayed' | 'processed' | 'stored';

/** A parsed IMDN or legacy report document. */
export interface ImdnDocument {
  /** `rfc5438`; `imdn-draft` (draft-ietf-simple-imdn-00 `<disposition>`); `status-report`; `status-receipt`. */
  format: 'rfc5438' | 'imdn-draft' | 'status-report' | 'status-receipt';
  /** The referenced IM's Message-ID. */
  messageId: string;
  /** The referenced IM's DateTime, when the document carries it. */
  dateTime?: string;
  /** The recipient the report is about. */
  recipientUri?: string;
  /** The recipient before an intermediary rewrote CPIM To. */
  originalRecipientUri?: string;
  /** Copy of the IM's Subject. */
  subject?: string;
  /** Which category this notification reports. */
  notification: ImdnNotification;
  /** The disposition state; legacy codes are mapped (200/success → delivered or displayed, 485 → error). */
  status: ImdnStatus;
  /** Free text of a legacy `<note>`. */
  note?: string;
}

/** Options of {@link buildDeliveryReport}. */
export interface DeliveryReportOptions {
  /** The time written in the report's CPIM `DateTime`. */
  now: Date;
  /** The report's own `imdn.Message-ID` (RFC 5438 §6.3: a new one; unused by the legacy dialect). */
  messageId: string;
  /** `<recipient-uri>`; defaults to the URI of the IM's CPIM To. */
  recipientUri?: string;
  /** `<original-recipient-uri>`; defaults to the URI of the IM's `imdn.Original-To`, else the recipient URI. */
  originalRecipientUri?: string;
  /** Legacy dialect only: the `<status>` code of a `failed` report (the draft names none); default 500. */
  failureCode?: number;
  /** The CPIM `DateTime` text to write instead of {@link cpimDateTime} of `now` (report templates). */
  dateTimeText?: string;
}

/** A report ready to be the body of an injected SEND. */
export interface DeliveryReport {
  /** Always `message/cpim`. */
  contentType: 'message/cpim';
  /** The complete CPIM message. */
  body: Buffer;
}

/** Status elements allowed per category (RFC 5438 §11.1.7 and the schema of §11.1.9). */
const STATUSES: Record<ImdnNotification, readonly ImdnStatus[]> = {
  delivery: ['delivered', 'failed', 'forbidden', 'error'],
  display: ['displayed', 'forbidden', 'error'],
  processing: ['processed', 'stored', 'forbidden', 'error'],
};
const NOTIFICATION_ELEMENTS: Record<string, ImdnNotification> = {
  'delivery-notification': 'delivery',
  'display-notification': 'display',
  'processing-notification': 'processing',
};
/** RFC 5438 §11.1, §11.1.9: children of `<imdn>` in schema order; the notification element comes last. */
const ORDER = ['message-id', 'datetime', 'recipient-uri', 'original-recipient-uri', 'subject'];
const ELEMENT_NODE = 1;
const TEXT_NODE = 3;
const CDATA_SECTION_NODE = 4;
/** XML 1.0 §2.2 Char production: what a document may hold at all. */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\u{10000}-\u{10ffff}]/u;
/** RFC 3339 §5.6 date-time, its syntax (the ranges are {@link isDateTime}'s). */
const DATE_TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/i;

/** The two-digit number at `i` of `s` (digits checked by the caller). */
function twoDigits(s: string, i: number): number {
  return (s.charCodeAt(i) - 48) * 10 + s.charCodeAt(i + 1) - 48;
}

/** True for an RFC 3339 date-time, what CPIM `DateTime` (digest §4.5) and `<datetime>` hold. */
export function isDateTime(text: string): boolean {
  const t = text.trim();
  if (!DATE_TIME_RE.test(t)) return false;
  const year = twoDigits(t, 0) * 100 + twoDigits(t, 2);
  const month = twoDigits(t, 5);
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days =
    month === 2 ? (leap ? 29 : 28) : month === 4 || month === 6 || month === 9 || month === 11 ? 30 : 31;
  const day = twoDigits(t, 8);
  const last = t.charCodeAt(t.length - 1);
  // A numeric offset ends the string as `+HH:MM` (the syntax was checked); `Z` has none.
  const offsetOk =
    last === 0x5a || last === 0x7a || (twoDigits(t, t.length - 5) < 24 && twoDigits(t, t.length - 2) < 60);
  // RFC 3339 §5.6-5.7: month 1-12, the month's days, hours to 23, minutes to 59, seconds to 60 (a leap
  // second); an offset's hours and minutes likewise.
  return (
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= days &&
    twoDigits(t, 11) < 24 &&
    twoDigits(t, 14) < 60 &&
    twoDigits(t, 17) <= 60 &&
    offsetOk
  );
}

function badDoc(reason: string): MsrpError {
  return createError(ErrorCodes.BAD_HEADER_VALUE, `invalid report document: ${reason}`, 400);
}

/** Tags (`<`) a report document may have before it is refused unparsed. */
const MAX_XML_TAGS = 256;

/** Parses XML text with xmldom, namespace-aware; throws a plain Error on anything not well-formed. */
function parseXml(text: string): Document {
  // No IMDN or status report has a DTD; refusing one keeps entity tricks out of the parser.
  if (/<!DOCTYPE/i.test(text)) throw new Error('a DOCTYPE is not allowed');
  // Nor more than a few dozen tags: xmldom costs ~60 times a plain document for an 8 KiB one of deep
  // nesting (complexity audit), and the largest real report has about twenty.
  let tags = 0;
  for (let i = text.indexOf('<'); i !== -1; i = text.indexOf('<', i + 1))
    if (++tags > MAX_XML_TAGS) throw new Error(`more than ${MAX_XML_TAGS} tags`);
  const parser = new DOMParser({
    locator: false,
    onError(level, msg) {
      if (level !== 'warning') throw new Error(msg);
    },
  });
  const doc = parser.parseFromString(text.replace(/^\ufeff/, ''), 'text/xml');
  if (doc.documentElement === null) throw new Error('no root element');
  return doc;
}

/** The first line of what went wrong in {@link parseXml}, without xmldom's ParseError wrapping. */
function xmlErrorText(err: unknown): string {
  const e = err as Error & { cause?: unknown };
  const inner = e.cause instanceof Error ? e.cause : e;
  return inner.message.split('\n')[0];
}

/** Child elements of `el` in document order. */
function childElements(el: Element): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i];
    if (n.nodeType === ELEMENT_NODE) out.push(n as Element);
  }
  return out;
}

/** True when `el` holds character data other than white space. */
function hasText(el: Element): boolean {
  for (let i = 0; i < el.childNodes.length; i++) {
    const n = el.childNodes[i];
    if (
      (n.nodeType === TEXT_NODE || n.nodeType === CDATA_SECTION_NODE) &&
      (n.nodeValue ?? '').trim() !== ''
    ) {
      return true;
    }
  }
  return false;
}

/** Trimmed text of the first child element `local` in namespace `ns`, or undefined. */
function childText(el: Element, ns: string | null, local: string): string | undefined {
  const child = childElements(el).find((c) => c.namespaceURI === ns && c.localName === local);
  return child === undefined ? undefined : (child.textContent ?? '').trim();
}

/**
 * Reads an IMDN like {@link parseImdn}, quickly when it can: the plain RFC 5438 shape every relay and most
 * endpoints write (default namespace, no entities, no comments, elements in schema order) is read with one
 * anchored expression and no DOM; anything else goes through {@link parseImdn}. Both give the same document
 * for what the fast path accepts (spec/reports/imdn.spec.ts compares them). The load generator uses it for
 * the report it gets back for every message; the relay itself parses with the XML parser.
 */
export function readImdn(body: Buffer): ImdnDocument {
  return parsePlainImdn(body.toString('utf8')) ?? parseImdn(body);
}

/**
 * XML character data without markup, references, forbidden controls, or what the XML parser rewrites as a
 * line end (CR; NEL, LS and PS, which xmldom 0.9 also turns into LF).
 */
const PLAIN_TEXT = '([^<>&\\r\\u0085\\u2028\\u2029\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\ufffe\\uffff]*)';
/** XML white space (not JavaScript's `\s`, which also matches non-XML spaces). */
const WS = '[ \\t\\r\\n]*';
const PLAIN_IMDN_RE = new RegExp(
  `^\\ufeff?(?:<\\?xml version="1\\.0" encoding="UTF-8"\\?>)?${WS}<imdn xmlns="urn:ietf:params:xml:ns:imdn">${WS}` +
    `<message-id>${PLAIN_TEXT}</message-id>${WS}<datetime>${PLAIN_TEXT}</datetime>${WS}` +
    `(?:<recipient-uri>${PLAIN_TEXT}</recipient-uri>${WS})?` +
    `(?:<original-recipient-uri>${PLAIN_TEXT}</original-recipient-uri>${WS})?` +
    `(?:<subject>${PLAIN_TEXT}</subject>${WS})?` +
    `<(delivery|display|processing)-notification>${WS}<status>${WS}<([a-z]+)/>${WS}</status>${WS}` +
    `</\\6-notification>${WS}</imdn>${WS}$`,
);

/** @internal The fast path of {@link readImdn}: a document of the plain RFC 5438 shape, or null. */
export function parsePlainImdn(text: string): ImdnDocument | null {
  const m = PLAIN_IMDN_RE.exec(text);
  if (m === null) return null;
  const messageId = m[1]!.trim();
  const notification = m[6] as ImdnNotification;
  const status = m[7] as ImdnStatus;
  if (messageId === '' || !STATUSES[notification].includes(status)) return null; // the parser says why
  const doc: ImdnDocument = { format: 'rfc5438', messageId, notification, status };
  doc.dateTime = m[2]!.trim();
  if (m[3] !== undefined) doc.recipientUri = m[3].trim();
  if (m[4] !== undefined) doc.originalRecipientUri = m[4].trim();
  if (m[5] !== undefined) doc.subject = m[5].trim();
  return doc;
}

/**
 * Parses an IMDN (RFC 5438 `<imdn>`, or the draft-ietf-simple-imdn-00 `<imdn>` with `<disposition>`) or a
 * legacy `<status-report>` / `<status-receipt>` document with the namespace-aware XML parser. Throws an
 * `MsrpError` (`MSRP_ERR_BAD_HEADER_VALUE`) when the XML is not well-formed or lacks the message-id, the
 * notification or a known status.
 */
export function parseImdn(body: Buffer): ImdnDocument {
  let doc: Document;
  try {
    doc = parseXml(body.toString('utf8'));
  } catch (err) {
    throw badDoc(`not well-formed XML (${xmlErrorText(err)})`);
  }
  const root = doc.documentElement as Element;
  const ns = root.namespaceURI;
  if (root.localName === 'imdn' && ns === IMDN_XML_NS) return parseImdnRoot(root);
  if (root.localName === 'status-report' && (ns === null || ns === STATUS_REPORT_XML_NS)) {
    return parseLegacyRoot(root, 'status-report', childText(root, ns, 'type'));
  }
  if (root.localName === 'status-receipt' && (ns === null || ns === STATUS_RECEIPT_XML_NS)) {
    return parseLegacyRoot(root, 'status-receipt', childText(root, ns, 'type'));
  }
  throw badDoc(`unknown root element <${root.tagName}>${ns === null ? '' : ` in ${ns}`}`);
}

/** Copies the optional echo elements shared by every format. */
function common(
  root: Element,
  format: ImdnDocument['format'],
): Omit<ImdnDocument, 'notification' | 'status'> {
  const ns = root.namespaceURI;
  const messageId = childText(root, ns, 'message-id');
  if (messageId === undefined || messageId === '') throw badDoc('no <message-id>');
  const doc: Omit<ImdnDocument, 'notification' | 'status'> = { format, messageId };
  const optional = [
    ['datetime', 'dateTime'],
    ['recipient-uri', 'recipientUri'],
    ['original-recipient-uri', 'originalRecipientUri'],
    ['subject', 'subject'],
    ['note', 'note'],
  ] as const;
  for (const [element, key] of optional) {
    const text = childText(root, ns, element);
    if (text !== undefined) doc[key] = text;
  }
  return doc;
}

function parseImdnRoot(root: Element): ImdnDocument {
  const disposition = childText(root, IMDN_XML_NS, 'disposition');
  if (disposition !== undefined) return parseLegacyRoot(root, 'imdn-draft', disposition);
  const base = common(root, 'rfc5438');
  const element = childElements(root).find(
    (c) => c.namespaceURI === IMDN_XML_NS && NOTIFICATION_ELEMENTS[c.localName ?? ''] !== undefined,
  );
  if (element === undefined) throw badDoc('no notification element');
  const notification = NOTIFICATION_ELEMENTS[element.localName ?? ''];
  const status = childElements(element).find(
    (c) => c.namespaceURI === IMDN_XML_NS && c.localName === 'status',
  );
  if (status === undefined) throw badDoc(`no <status> in <${element.localName}>`);
  const state = childElements(status).find((c) => c.namespaceURI === IMDN_XML_NS);
  const value = state?.localName ?? '';
  if (!(STATUSES[notification] as readonly string[]).includes(value)) {
    throw badDoc(`<${element.localName}> has no valid status${value === '' ? '' : ` (<${value}/>)`}`);
  }
  return { ...base, notification, status: value as ImdnStatus };
}

/**
 * Maps a legacy document (digest §6.4): `<type>` / `<disposition>` `delivery` or `read`; `<status>` `200` /
 * `success` → delivered or displayed, `485` / `error` → error, `forbidden` → forbidden, `failure` and any
 * other 3xx-6xx code → failed (delivery) or error (read).
 */
function parseLegacyRoot(
  root: Element,
  format: ImdnDocument['format'],
  kind: string | undefined,
): ImdnDocument {
  const base = common(root, format);
  const k = (kind ?? '').toLowerCase();
  let notification: ImdnNotification;
  if (k === 'delivery') notification = 'delivery';
  else if (k === 'read' || k === 'display') notification = 'display';
  else throw badDoc(`unknown report type ${JSON.stringify(kind ?? '')}`);
  const code = (childText(root, root.namespaceURI, 'status') ?? '').toLowerCase();
  let status: ImdnStatus;
  if (code === '200' || code === 'success') status = notification === 'delivery' ? 'delivered' : 'displayed';
  else if (code === '485' || code === 'error') status = 'error';
  else if (code === 'forbidden') status = 'forbidden';
  else if (code === 'failure' || /^[3-6]\d\d$/.test(code)) {
    status = notification === 'delivery' ? 'failed' : 'error';
  } else throw badDoc(`unknown status ${JSON.stringify(code)}`);
  return { ...base, notification, status };
}

/** What {@link parseAggregatedImdn} saw of an aggregate's shape, when the caller asks. */
export interface AggregateShape {
  /** Parts read, skipped ones (not `message/imdn+xml`) and malformed ones included. */
  parts: number;
  /** `message/imdn+xml` parts that did not parse (left out of the documents). */
  bad: number;
  /** True when every part was read and the last delimiter is the close-delimiter (`--boundary--`). */
  closed: boolean;
}

/**
 * Parses an aggregated IMDN (RFC 5438 §8.3): a `multipart/mixed` payload whose `message/imdn+xml` parts
 * are each an IMDN; other parts are skipped. `contentType` is the payload's Content-Type (with its
 * boundary). Throws an `MsrpError` for a missing boundary, and, unless `seen` is given, for a malformed
 * part; with `seen`, a malformed part is counted there and the others are still returned, and `seen`
 * says whether the aggregate was whole (a caller that drops it must know it read all of it: review).
 */
export function parseAggregatedImdn(
  contentType: string,
  body: Buffer,
  seen?: AggregateShape,
): ImdnDocument[] {
  const m = /;\s*boundary\s*=\s*(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  if (m === null) throw badDoc('multipart/mixed without boundary');
  const delimiter = Buffer.from(`--${m[1] ?? m[2]}`, 'utf8');
  const starts: number[] = [];
  for (let i = body.indexOf(delimiter); i !== -1; i = body.indexOf(delimiter, i + 1)) {
    // RFC 2046 §5.1.1: a delimiter starts the body or a line.
    if (i === 0 || body[i - 1] === 0x0a) starts.push(i);
  }
  const docs: ImdnDocument[] = [];
  let complete = true;
  if (seen !== undefined) {
    seen.parts = 0;
    seen.bad = 0;
  }
  for (let n = 0; n + 1 < starts.length; n++) {
    const lineEnd = body.indexOf(0x0a, starts[n]);
    if (lineEnd === -1 || lineEnd > starts[n + 1]) {
      complete = false;
      break;
    }
    if (seen !== undefined) seen.parts++;
    let end = starts[n + 1] - 1; // the LF before the next delimiter belongs to it
    if (body[end - 1] === 0x0d) end--;
    const part = body.subarray(lineEnd + 1, Math.max(lineEnd + 1, end));
    const text = part.toString('latin1');
    const blank = /\r?\n\r?\n/.exec(text);
    const headerText = blank === null ? text : text.slice(0, blank.index);
    const type = /^content-type:\s*([^;\r\n]+)/im.exec(headerText)?.[1].trim().toLowerCase();
    if (type !== 'message/imdn+xml' || blank === null) continue;
    try {
      docs.push(parseImdn(part.subarray(blank.index + blank[0].length)));
    } catch (err) {
      if (seen === undefined) throw err;
      seen.bad++;
    }
  }
  if (seen !== undefined) {
    // RFC 2046 §5.1.1: the close-delimiter is the delimiter followed by `--`; without one, octets after
    // the last delimiter are a part not read.
    const last = starts.length >= 2 ? starts[starts.length - 1]! + delimiter.length : -1;
    seen.closed = complete && last !== -1 && body[last] === 0x2d && body[last + 1] === 0x2d;
  }
  return docs;
}

/** Escapes text for an XML element; throws for characters XML 1.0 cannot carry at all. */
function xmlText(s: string, what: string): string {
  if (NOT_XML_CHAR.test(s)) throw badDoc(`${what} holds a character XML cannot carry`);
  return s.replace(/[&<>]/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : '&gt;'));
}

let lastSecond = NaN;
let lastDateTime = '';

/**
 * The `DateTime` of a report written at `ms` (epoch milliseconds): an RFC 3339 UTC timestamp to the second,
 * as in the digest's examples (`2024-05-06T10:15:31Z`).
 */
export function cpimDateTime(ms: number): string {
  // Reports come in bursts: one formatting per second, not per report.
  const second = Math.floor(ms / 1000);
  if (second !== lastSecond) {
    lastSecond = second;
    lastDateTime = new Date(second * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  }
  return lastDateTime;
}

/**
 * Builds the report the relay injects for a message it delivered (`delivered`), could not deliver
 * (`failed`) or processed (`processed`): a complete CPIM message from the IM's recipient to its sender.
 * The `imdn` dialect gets an RFC 5438 IMDN (`message/imdn+xml`, `Content-Disposition: notification`); the
 * `legacy` dialect gets the draft's `<status-report>` (`message/status-report`, `Content-Disposition:
 * confirm`). Throws an `MsrpError` when the IM lacks what the report must echo (CPIM From/To; DateTime for
 * `imdn`) or when the legacy dialect is asked for `processed`, which it cannot express.
 */
export function buildDeliveryReport(
  req: ReportRequest,
  outcome: 'delivered' | 'failed' | 'processed',
  opts: DeliveryReportOptions,
): DeliveryReport {
  return { contentType: 'message/cpim', body: Buffer.from(deliveryReportText(req, outcome, opts), 'utf8') };
}

/**
 * {@link buildDeliveryReport} as a string (the relay writes it straight into the SEND it injects). The
 * CPIM head is written as `formatCpim` would write these headers: echoed From/To/IMDN-Route values keep
 * their wire form (only control characters escaped), the others are escaped as CPIM values.
 */
export function deliveryReportText(
  req: ReportRequest,
  outcome: 'delivered' | 'failed' | 'processed',
  opts: DeliveryReportOptions,
): string {
  if (req.from === undefined || req.to === undefined) throw badDoc('the IM has no CPIM From or To to swap');
  const recipientUri = opts.recipientUri ?? parseNameAddr(req.to)?.uri;
  // RFC 5438 §7.2.1: the IMDN goes from the recipient (the IM's To) to the sender (the IM's From).
  let head =
    `From: ${escapeCpimRawValue(req.to)}\r\nTo: ${escapeCpimRawValue(req.from)}\r\n` +
    `DateTime: ${opts.dateTimeText ?? cpimDateTime(opts.now.getTime())}\r\n`;
  if (req.dialect === 'legacy') {
    if (outcome === 'processed') throw badDoc('the legacy report format has no processing notification');
    // draft-khartabil-simple-im-report-00 §3.2: a report SHOULD NOT carry Message-ID, MUST NOT Receipt-Request.
    const code = outcome === 'delivered' ? 200 : (opts.failureCode ?? 500);
    let xml = `<status-report>\r\n<message-id>${xmlText(req.messageId, 'the message id')}</message-id>\r\n`;
    if (recipientUri !== undefined) {
      xml += `<recipient-uri>${xmlText(recipientUri, 'the recipient URI')}</recipient-uri>\r\n`;
    }
    const note = outcome === 'delivered' ? 'Message was delivered' : 'Message was not delivered';
    xml += `<type>delivery</type>\r\n<status>${code}</status>\r\n<note lang="en">${note}</note>\r\n</status-report>`;
    return `${head}\r\nContent-Type: message/status-report\r\nContent-Disposition: confirm\r\n\r\n${xml}`;
  }
  // RFC 5438 §11.1.2: the IMDN carries the IM's DateTime in <datetime>; an IM without one cannot be answered.
  if (req.dateTime === undefined) throw badDoc('the IM has no DateTime to echo');
  if (opts.messageId === '') throw badDoc('the report needs its own imdn.Message-ID');
  head += `NS: imdn <urn:ietf:params:imdn>\r\nimdn.Message-ID: ${escapeCpimValue(opts.messageId)}\r\n`;
  // RFC 5438 §§6.6, 7.2.1: IMDN-Record-Route headers become IMDN-Route headers, in the same order.
  for (const route of req.recordRoutes) head += `imdn.IMDN-Route: ${escapeCpimRawValue(route)}\r\n`;
  // RFC 5438 §11.1.4: <original-recipient-uri> MUST be present when the IM had an Original-To. The §11.1.9
  // schema puts it in one optional group with <recipient-uri>, so without Original-To it repeats the
  // recipient (as in the digest's E5.2), and neither is written when the recipient is unknown.
  const original =
    opts.originalRecipientUri ??
    (req.originalTo === undefined ? undefined : parseNameAddr(req.originalTo)?.uri) ??
    recipientUri;
  let xml =
    `<?xml version="1.0" encoding="UTF-8"?>\r\n<imdn xmlns="${IMDN_XML_NS}">\r\n` +
    `<message-id>${xmlText(req.messageId, 'the message id')}</message-id>\r\n` +
    `<datetime>${xmlText(req.dateTime, 'the DateTime')}</datetime>\r\n`;
  if (recipientUri !== undefined && original !== undefined) {
    xml +=
      `<recipient-uri>${xmlText(recipientUri, 'the recipient URI')}</recipient-uri>\r\n` +
      `<original-recipient-uri>${xmlText(original, 'the original recipient')}</original-recipient-uri>\r\n`;
  }
  const element = outcome === 'processed' ? 'processing-notification' : 'delivery-notification';
  xml += `<${element}><status><${outcome}/></status></${element}>\r\n</imdn>`;
  return `${head}\r\nContent-Type: message/imdn+xml\r\nContent-Disposition: notification\r\n\r\n${xml}`;
}

/**
 * Checks an RFC 5438 IMDN document against the schema rules the relay relies on: root `<imdn>` in the
 * IMDN namespace; children in the order message-id, datetime, recipient-uri?, original-recipient-uri?,
 * subject?, then exactly one notification element holding exactly one `<status>` with exactly one empty
 * state element allowed for that category; extension elements only from other namespaces. Returns the
 * problems found, `[]` for a valid document.
 */
export function validateImdnDocument(xml: string): string[] {
  let doc: Document;
  try {
    doc = parseXml(xml);
  } catch (err) {
    return [`not well-formed XML: ${xmlErrorText(err)}`];
  }
  const root = doc.documentElement as Element;
  if (root.localName !== 'imdn' || root.namespaceURI !== IMDN_XML_NS) {
    return [
      `root element is <${root.tagName}> in ${root.namespaceURI ?? 'no namespace'}, not <imdn> in ${IMDN_XML_NS}`,
    ];
  }
  const problems: string[] = [];
  if (hasText(root)) problems.push('<imdn> holds text outside its elements');
  let rank = -1;
  const notifications: Element[] = [];
  const seen = new Set<string>();
  for (const child of childElements(root)) {
    const local = child.localName ?? '';
    if (child.namespaceURI !== IMDN_XML_NS) {
      // RFC 5438 §11.1.9: extensions come from other, non-empty namespaces.
      if (child.namespaceURI === null || child.namespaceURI === '')
        problems.push(`<${local}> has no namespace`);
      continue;
    }
    const r = NOTIFICATION_ELEMENTS[local] !== undefined ? ORDER.length : ORDER.indexOf(local);
    if (r === -1) {
      problems.push(`<${local}> is not an IMDN element`);
      continue;
    }
    if (r === ORDER.length) {
      notifications.push(child);
    } else if (seen.has(local)) {
      problems.push(`<${local}> appears more than once`);
      continue;
    } else {
      seen.add(local);
      if (r < rank) problems.push(`<${local}> is out of order`);
    }
    rank = Math.max(rank, r);
  }
  const messageId = childText(root, IMDN_XML_NS, 'message-id');
  if (messageId === undefined) problems.push('<message-id> is missing');
  else if (messageId === '') problems.push('<message-id> is empty');
  const dt = childText(root, IMDN_XML_NS, 'datetime');
  if (dt === undefined) problems.push('<datetime> is missing');
  else if (!isDateTime(dt)) problems.push(`<datetime> ${JSON.stringify(dt)} is not an RFC 3339 date-time`);
  if (notifications.length !== 1) {
    problems.push(`expected exactly one notification element, found ${notifications.length}`);
  }
  for (const n of notifications) problems.push(...checkNotification(n));
  return problems;
}

/** Problems inside one notification element: exactly one `<status>` with exactly one allowed, empty state. */
function checkNotification(n: Element): string[] {
  const name = n.localName ?? '';
  const allowed = STATUSES[NOTIFICATION_ELEMENTS[name]];
  const problems: string[] = [];
  if (hasText(n)) problems.push(`<${name}> holds text`);
  // RFC 5438 §11.1.9: a notification element holds exactly one <status> and nothing else.
  const statuses = childElements(n);
  if (
    statuses.length !== 1 ||
    statuses[0].namespaceURI !== IMDN_XML_NS ||
    statuses[0].localName !== 'status'
  ) {
    problems.push(`<${name}> must hold exactly one <status>`);
    return problems;
  }
  const status = statuses[0];
  // RFC 5438 §11.1.9: <status> holds one state element plus extensions from other, non-empty namespaces.
  const states = childElements(status).filter((c) => c.namespaceURI === IMDN_XML_NS);
  if (childElements(status).some((c) => c.namespaceURI === null || c.namespaceURI === '')) {
    problems.push(`<status> in <${name}> holds an element without namespace`);
  }
  if (hasText(status)) problems.push(`<status> in <${name}> holds text`);
  if (states.length !== 1) {
    problems.push(`<status> in <${name}> must hold exactly one status element, found ${states.length}`);
    return problems;
  }
  const state = states[0];
  if (!(allowed as readonly string[]).includes(state.localName ?? '')) {
    problems.push(`<${state.localName}> is not a status of <${name}>`);
  }
  if (state.childNodes.length !== 0) problems.push(`<${state.localName}> must be empty`);
  return problems;
}
