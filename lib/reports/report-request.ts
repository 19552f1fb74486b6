/**
 * What an instant message asks to be told about: the RFC 5438 `Disposition-Notification` header under any
 * prefix bound to `urn:ietf:params:imdn`, the draft-ietf-simple-imdn-00 forms (namespace
 * `urn:ietf:params:cpim-headers:imdn`, or unprefixed) and the draft-khartabil-simple-im-report-00 forms
 * (`Receipt-Request` / `Request-Receipt`, unprefixed `Message-ID`, `read` meaning display), following the
 * legacy acceptance rules of the spec digest §6.4; and which incoming CPIM messages are themselves reports.
 */
import { CPIM_CORE_NS, unescapeCpimValue, type CpimHead, type CpimHeader } from './cpim.js';

/** A `t` or `z` in a DateTime (RFC 3339 allows them; XML Schema's dateTime does not). */
const LOWER_TZ = /[tz]/;

/** Namespace of the RFC 5438 CPIM headers (`NS: imdn <urn:ietf:params:imdn>`). */
export const IMDN_HEADER_NS = 'urn:ietf:params:imdn';
/** Namespace of the IMDN headers in draft-ietf-simple-imdn-00. */
export const IMDN_DRAFT_HEADER_NS = 'urn:ietf:params:cpim-headers:imdn';

/** A disposition an IM may request. */
export type ReportKind = 'positive-delivery' | 'negative-delivery' | 'display' | 'processing';

/** The reports an IM requested and what a report about it must echo. */
export interface ReportRequest {
  /** `imdn` for a Disposition-Notification request (answered with message/imdn+xml), `legacy` for Receipt-Request. */
  dialect: 'imdn' | 'legacy';
  /**
   * The known dispositions requested, in the order positive-delivery, negative-delivery, display,
   * processing; `read` is mapped to `display`, unknown tokens are dropped. Shared between requests.
   */
  kinds: ReadonlySet<ReportKind>;
  /**
   * The IM's identifier: `imdn.Message-ID`, else the unprefixed legacy `Message-ID` (unescaped); an empty or
   * white-space value counts as absent.
   */
  messageId: string;
  /** The IM's `DateTime` value as sent, `T` and `Z` upper-cased (RFC 5438 echoes it in `<datetime>`). */
  dateTime?: string;
  /** The IM's CPIM `From` in wire form (escapes kept), to become the report's `To`. */
  from?: string;
  /** The IM's first CPIM `To` in wire form, to become the report's `From`. */
  to?: string;
  /** The IM's `imdn.Original-To` in wire form, echoed as `<original-recipient-uri>`. */
  originalTo?: string;
  /** The IM's `imdn.IMDN-Record-Route` values in wire form, in order (copied to `IMDN-Route`). */
  recordRoutes: readonly string[];
}

/** What a report-carrying CPIM payload is: an RFC 5438 IMDN, a legacy report, or an aggregate of IMDNs. */
export type ReportPayloadKind = 'imdn' | 'legacy' | 'aggregate';

/** Payload types of the legacy report documents (digest §6.4). */
const LEGACY_REPORT_TYPES = new Set([
  'message/status-report',
  'application/status-report+xml',
  'message/status-receipt+xml',
  'message/status-receipt',
]);
/** Dispositions of legacy reports: `confirm`, `render` (im-report-00 §3.4) and RFC 5438's `notification`. */
const LEGACY_DISPOSITIONS = new Set(['notification', 'confirm', 'render']);

/** The lower-cased first token of a MIME header value, parameters dropped (`Text/Plain; x=y` → `text/plain`). */
export function mimeToken(value: string | undefined): string {
  if (value === undefined) return '';
  const semi = value.indexOf(';');
  return (semi === -1 ? value : value.slice(0, semi)).trim().toLowerCase();
}

/**
 * Classifies the CPIM payload: `imdn` for `message/imdn+xml` with `Content-Disposition: notification`,
 * `aggregate` for a `multipart/mixed` with `notification` (RFC 5438 §8.3), `legacy` for the draft report
 * types with `notification`, `confirm` or `render`; null for an instant message.
 */
export function reportPayloadKind(head: CpimHead): ReportPayloadKind | null {
  return payloadKind(head.contentHeader('Content-Type'), head.contentHeader('Content-Disposition'));
}

/** {@link reportPayloadKind} from the values of the first Content-Type and Content-Disposition. */
export function payloadKind(
  contentType: string | undefined,
  contentDisposition: string | undefined,
): ReportPayloadKind | null {
  const type = mimeToken(contentType);
  const disposition = mimeToken(contentDisposition);
  // RFC 5438 §9 / digest §5.8 #11: message/imdn+xml without the notification disposition is an IM.
  if (type === 'message/imdn+xml') return disposition === 'notification' ? 'imdn' : null;
  if (type === 'multipart/mixed') return disposition === 'notification' ? 'aggregate' : null;
  if (LEGACY_REPORT_TYPES.has(type) && LEGACY_DISPOSITIONS.has(disposition)) return 'legacy';
  return null;
}

/** True when the CPIM message carries a report (IMDN, aggregated IMDN or legacy report) rather than an IM. */
export function isImdnMessage(head: CpimHead): boolean {
  return reportPayloadKind(head) !== null;
}

/** The request values RFC 5438 §10 and draft-khartabil-simple-im-report-00 §4 define. */
const KNOWN = new Map<string, ReportKind>([
  ['positive-delivery', 'positive-delivery'],
  ['negative-delivery', 'negative-delivery'],
  ['display', 'display'],
  ['processing', 'processing'],
  // draft-khartabil-simple-im-report-00 §3.1 and draft-ietf-simple-imdn-00: `read` is RFC 5438's `display`.
  ['read', 'display'],
]);

/** Each kind's bit in a set of kinds, in the order a request's `kinds` lists them. */
const KIND_BITS: ReadonlyArray<[ReportKind, number]> = [
  ['positive-delivery', 1],
  ['negative-delivery', 2],
  ['display', 4],
  ['processing', 8],
];
const BIT_OF = new Map(KIND_BITS);

/**
 * One set per combination of kinds, shared by every request that asks for it: a request allocates no set
 * of its own, and lives as long as its IM is tracked (until the recipient's 200).
 */
const KIND_SETS: ReadonlyArray<ReadonlySet<ReportKind>> = Array.from(
  { length: 16 },
  (_, bits) => new Set(KIND_BITS.filter(([, bit]) => (bits & bit) !== 0).map(([kind]) => kind)),
);

/**
 * Reads a request value in its wire form: `notify-req *(COMMA notify-req)` with `COMMA = *SP "," *SP`,
 * each request possibly followed by `;param=value` extensions. RFC 5438 §7.2.1: unknown values are
 * ignored. Returns the kinds' bits. The value's CPIM escapes are not decoded first (RFC 3862 §3.6): a
 * quoted parameter holding `\\` or `\"` (or `\u0022`) would end, or open, a String where the sender's did
 * not, and hide or invent a kind (fuzzing found both); only each request token is decoded.
 */
function kindBits(value: string): number {
  // The usual value is one known token exactly: no slices for it.
  const whole = KNOWN.get(value);
  if (whole !== undefined) return BIT_OF.get(whole)!;
  let bits = 0;
  let at = 0;
  // The next `;` is looked for again only once passed: searching from each item to the end made a
  // value of many commas and no `;` cost the square of its length (complexity audit).
  let semi = -2;
  while (at <= value.length) {
    let comma = value.indexOf(',', at);
    if (comma === -1) comma = value.length;
    if (semi !== -1 && semi < at) semi = value.indexOf(';', at);
    const params = semi !== -1 && semi < comma;
    // A Map, not an object: `constructor` or `__proto__` in a request are unknown values, not kinds.
    const kind = KNOWN.get(
      unescapeCpimValue(value.slice(at, params ? semi : comma))
        .trim()
        .toLowerCase(),
    );
    if (kind !== undefined) bits |= BIT_OF.get(kind)!;
    // RFC 5438 §10 / RFC 3862 §4.5: a parameter value may be a quoted String, commas and all.
    at = (params ? nextItem(value, semi) : comma) + 1;
  }
  return bits;
}

/** Index of the first comma at or after `from` outside a quoted String (backslash escapes), or the length. */
function nextItem(value: string, from: number): number {
  let quoted = false;
  for (let i = from; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (quoted && c === 0x5c /* \\ */) i++;
    else if (c === 0x22 /* " */) quoted = !quoted;
    else if (c === 0x2c /* , */ && !quoted) return i;
  }
  return value.length;
}

/** Where a Disposition-Notification may be: RFC 5438, draft-ietf-simple-imdn-00, unprefixed (digest §6.4). */
const REQUEST_NAMESPACES = [IMDN_HEADER_NS, IMDN_DRAFT_HEADER_NS, CPIM_CORE_NS];
/** The draft-khartabil-simple-im-report-00 request headers. */
const LEGACY_REQUEST_NAMES = ['Receipt-Request', 'Request-Receipt'];
/** Where imdn.Original-To may be. */
const ORIGINAL_TO_NAMESPACES = [IMDN_HEADER_NS, IMDN_DRAFT_HEADER_NS];

/** The first header `local` in any of the namespaces, tried in order. */
function first(head: CpimHead, namespaces: string[], local: string): CpimHeader | undefined {
  for (const ns of namespaces) {
    const h = head.get(ns, local);
    if (h !== undefined) return h;
  }
  return undefined;
}

/**
 * The header values a report request is made of, each as {@link detectReportRequest} reads it; the CPIM
 * head parser and the lean scanner of report-scan.ts both fill it, {@link requestFrom} decides.
 */
export interface RequestParts {
  /**
   * `Disposition-Notification` values in wire form (CPIM escapes not decoded): the RFC 5438 namespace's,
   * the draft's, the unprefixed, each in wire order.
   */
  notifications: readonly string[];
  /** `Receipt-Request` values, then `Request-Receipt` values, in wire form and wire order. */
  receipts: readonly string[];
  /** Decoded value of the first non-blank `Message-ID` in the RFC 5438, draft, core namespaces in that order. */
  messageId: string | undefined;
  /** Decoded value of the first core `DateTime`. */
  dateTime: string | undefined;
  /** Wire form of the first core `From`, the first core `To`, the first `Original-To` (RFC 5438, then draft). */
  from: string | undefined;
  to: string | undefined;
  originalTo: string | undefined;
  /** Wire forms of the RFC 5438 `IMDN-Record-Route` headers in order. */
  recordRoutes: readonly string[];
}

/**
 * Decides the request from its header values: a `Disposition-Notification` that asks for a known kind
 * answers in RFC 5438 form; otherwise `Receipt-Request` / `Request-Receipt` in the draft's form (an empty
 * or unknown-valued `Disposition-Notification` asks for nothing, digest §5.8, so it does not choose the
 * dialect: review); null without a known kind or a message id.
 */
export function requestFrom(parts: RequestParts): ReportRequest | null {
  let notified = 0;
  for (const value of parts.notifications) notified |= kindBits(value);
  let bits = notified;
  for (const value of parts.receipts) bits |= kindBits(value);
  if (bits === 0) return null;
  const messageId = parts.messageId?.trim() ?? '';
  if (messageId === '') return null;
  const req: ReportRequest = {
    dialect: notified !== 0 ? 'imdn' : 'legacy',
    kinds: KIND_SETS[bits]!,
    messageId,
    recordRoutes: parts.recordRoutes,
  };
  // Upper-case T and Z: RFC 3339 allows either case, XML Schema's dateTime (in <datetime>) only the upper.
  const dt = parts.dateTime;
  if (dt !== undefined) req.dateTime = LOWER_TZ.test(dt) ? dt.toUpperCase() : dt;
  if (parts.from !== undefined) req.from = parts.from;
  if (parts.to !== undefined) req.to = parts.to;
  if (parts.originalTo !== undefined) req.originalTo = parts.originalTo;
  return req;
}

/**
 * Detects the reports an IM requested; null when it requested none, when it has no message identifier to
 * correlate a report with, or when it is itself a report (RFC 5438 §§6.2, 7.2.1: never an IMDN for an IMDN).
 * The dialect follows the request header: a `Disposition-Notification` form asking for a known kind answers
 * in RFC 5438 form, `Receipt-Request` / `Request-Receipt` otherwise in the draft's `message/status-report` form.
 * `knownNotReport`: the caller has just checked {@link isImdnMessage}, which is then not repeated.
 */
export function detectReportRequest(head: CpimHead, knownNotReport = false): ReportRequest | null {
  if (!knownNotReport && isImdnMessage(head)) return null;
  // RFC 5438 §6.1: servers MUST accept any prefix bound to the URN; CpimHead matches on the URN.
  // Digest §6.4: also urn:ietf:params:cpim-headers:imdn and the unprefixed (core namespace) form.
  const notifications: string[] = [];
  // In wire form: kindBits reads quoted Strings before any escape is decoded.
  for (const ns of REQUEST_NAMESPACES) values(head, ns, 'Disposition-Notification', notifications, true);
  const receipts: string[] = [];
  for (const name of LEGACY_REQUEST_NAMES) values(head, CPIM_CORE_NS, name, receipts, true);
  if (notifications.length === 0 && receipts.length === 0) return null;
  return requestFrom({
    notifications,
    receipts,
    messageId: messageIdOf(head),
    dateTime: head.get(CPIM_CORE_NS, 'DateTime')?.value,
    from: head.get(CPIM_CORE_NS, 'From')?.rawValue,
    to: head.get(CPIM_CORE_NS, 'To')?.rawValue,
    originalTo: first(head, ORIGINAL_TO_NAMESPACES, 'Original-To')?.rawValue,
    recordRoutes: values(head, IMDN_HEADER_NS, 'IMDN-Record-Route', [], true),
  });
}

/**
 * The first `Message-ID` value with more than white space, in the RFC 5438, draft, core namespaces in that
 * order: an empty `imdn.Message-ID` does not hide a legacy unprefixed one.
 */
function messageIdOf(head: CpimHead): string | undefined {
  for (const ns of REQUEST_NAMESPACES) {
    for (const h of head.getAll(ns, 'Message-ID')) if (h.value.trim() !== '') return h.value;
  }
  return undefined;
}

/** Appends the (wire-form when `raw`) values of every header `local` in namespace `ns` to `out`. */
function values(head: CpimHead, ns: string, local: string, out: string[], raw: boolean): string[] {
  const headers = head.headers;
  for (let i = head.indexOf(ns, local); i !== -1; i = head.indexOf(ns, local, i + 1)) {
    out.push(raw ? headers[i]!.rawValue : headers[i]!.value);
  }
  return out;
}

/**
 * Whether the IM asked for a report with this outcome: `delivered` needs `positive-delivery`, `failed`
 * needs `negative-delivery`, `processed` needs `processing` (RFC 5438 §§7.2.1, 8.1, 8.2).
 */
export function wantsReport(req: ReportRequest, outcome: 'delivered' | 'failed' | 'processed'): boolean {
  switch (outcome) {
    case 'delivered':
      return req.kinds.has('positive-delivery');
    case 'failed':
      return req.kinds.has('negative-delivery');
    case 'processed':
      return req.kinds.has('processing');
  }
}
