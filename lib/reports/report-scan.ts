/**
 * The relay's quick look at a CPIM head (DESIGN.md "Report policy"): is this message a report, and what
 * did it request? It reads the octets in place and makes a string only of the few values a request is
 * made of, where `detectReportRequest(parseCpimHead(head, { lenient: true }))` builds an object per header.
 * It takes the plain heads nearly every endpoint writes — ASCII, CRLF line ends, `[prefix.]Name: value`
 * lines without parameters or folding, `NS` values without escapes — and answers `'fallback'` for
 * anything else, which the caller then gives to the full parser. On what it takes it answers exactly as the
 * full parser and {@link detectReportRequest} do (spec/reports/report-scan.spec.ts compares them).
 */
import { CR, LF } from '../constants.js';
import { bytesEqualIgnoringAsciiCase } from '../msrp/ascii.js';
import { CPIM_CORE_NS, parseCpimHead, type CpimHead } from './cpim.js';
import {
  detectReportRequest,
  IMDN_DRAFT_HEADER_NS,
  IMDN_HEADER_NS,
  payloadKind,
  reportPayloadKind,
  requestFrom,
  type ReportPayloadKind,
  type ReportRequest,
} from './report-request.js';

/**
 * What {@link scanReportHead} found: the request (null when none), `'report'` for a message that is itself
 * a report, `'incomplete'` while the head is not all there, `'fallback'` for a head it leaves to the parser.
 */
export type HeadScan = ReportRequest | null | 'report' | 'incomplete' | 'fallback';

/** The namespaces a header name can resolve to, as far as report requests care. */
const OTHER = 0;
const IMDN = 1;
const DRAFT = 2;
const CORE = 3;
/** No namespace: a prefix no NS line declared (RFC 3862 §3.4). */
const UNBOUND = -1;

const HTAB = 0x09;
const SP = 0x20;
const DOT = 0x2e;
const COLON = 0x3a;
const SEMI = 0x3b;
const LT = 0x3c;
const GT = 0x3e;
const HASH = 0x23;
const BACKSLASH = 0x5c;

/** RFC 3862 §3.6 NAMECHAR, by ASCII code: 1 for a name character (no `.`, no colon). */
export const NAMECHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-^_`|~") NAMECHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) NAMECHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) NAMECHAR[c] = NAMECHAR[c + 0x20] = 1;

/** True for the ASCII octets JavaScript's `trim()` removes. */
function isTrimmed(c: number): boolean {
  return c === SP || (c >= HTAB && c <= CR);
}

/** The namespace class of the URI `buf[start..end)`, compared as the lenient parser does (ASCII case). */
function uriClass(buf: Buffer, start: number, end: number): number {
  if (bytesEqualIgnoringAsciiCase(buf, start, end, IMDN_HEADER_NS)) return IMDN;
  if (bytesEqualIgnoringAsciiCase(buf, start, end, IMDN_DRAFT_HEADER_NS)) return DRAFT;
  if (bytesEqualIgnoringAsciiCase(buf, start, end, CPIM_CORE_NS)) return CORE;
  return OTHER;
}

/** Where each line of the head being scanned ends (its CR); a head of more lines goes to the parser. */
const LINE_ENDS = new Int32Array(128);

/** The lean scan's state: namespace bindings in force and the values found so far (fields, not arrays). */
class Scan {
  defaultNs = CORE;
  /** Declared prefixes as `[start, end, class]` offsets into the head; a later declaration wins. */
  prefixes: number[] | null = null;
  /** Disposition-Notification values by namespace, Receipt-Request and Request-Receipt values. */
  dnImdn: string[] | null = null;
  dnDraft: string[] | null = null;
  dnCore: string[] | null = null;
  receiptRequests: string[] | null = null;
  requestReceipts: string[] | null = null;
  /** The first non-blank Message-ID of each namespace, the first Original-To of the two IMDN namespaces. */
  idImdn: string | undefined;
  idDraft: string | undefined;
  idCore: string | undefined;
  originalToImdn: string | undefined;
  originalToDraft: string | undefined;
  dateTime: string | undefined;
  from: string | undefined;
  to: string | undefined;
  recordRoutes: string[] | null = null;
  contentType: string | undefined;
  contentDisposition: string | undefined;

  constructor(
    readonly buf: Buffer,
    readonly bodyOffset: number,
  ) {}

  /** The class a prefix `buf[start..end)` is bound to. */
  prefixClass(start: number, end: number): number {
    const p = this.prefixes;
    if (p === null) return UNBOUND;
    for (let i = p.length - 3; i >= 0; i -= 3) {
      if (sameIgnoringAsciiCase(this.buf, start, end, p[i]!, p[i + 1]!)) return p[i + 2]!;
    }
    return UNBOUND;
  }

  /**
   * Reads `NS: [prefix] <URI>` from its trimmed value `[start, end)` as the lenient parser's `NS_LENIENT_RE`
   * does; false (fall back) when the value has an escape, since the parser reads the decoded value. A value
   * of another shape binds nothing.
   */
  declare(start: number, end: number): boolean {
    const buf = this.buf;
    if (hasEscape(buf, start, end)) return false;
    let i = start;
    while (i < end && NAMECHAR[buf[i]!] === 1) i++;
    const prefixEnd = i;
    if (prefixEnd > start) while (i < end && (buf[i] === SP || buf[i] === HTAB)) i++;
    if (end - i < 3 || buf[i] !== LT || buf[end - 1] !== GT) return true;
    for (let j = i + 1; j < end - 1; j++) {
      const c = buf[j]!;
      if (c === LT || c === GT || c === HASH || isTrimmed(c)) return true;
    }
    const cls = uriClass(buf, i + 1, end - 1);
    if (prefixEnd === start) {
      this.defaultNs = cls;
    } else {
      if (this.prefixes === null) this.prefixes = [start, prefixEnd, cls];
      else this.prefixes.push(start, prefixEnd, cls);
    }
    return true;
  }
}

/**
 * Scans the head of a message/cpim body (its first octets, `buf`) for a report request; see the module
 * comment and {@link HeadScan}.
 */
export function scanReportHead(buf: Buffer): HeadScan {
  const scan = scanHead(buf);
  if (typeof scan === 'string') return scan;
  if (payloadKind(scan.contentType, scan.contentDisposition) !== null) return 'report';
  const notifications = joined(joined(scan.dnImdn, scan.dnDraft), scan.dnCore);
  const receipts = joined(scan.receiptRequests, scan.requestReceipts);
  if (notifications.length === 0 && receipts.length === 0) return null;
  return requestFrom({
    notifications,
    receipts,
    messageId: scan.idImdn ?? scan.idDraft ?? scan.idCore,
    dateTime: scan.dateTime,
    from: scan.from,
    to: scan.to,
    originalTo: scan.originalToImdn ?? scan.originalToDraft,
    recordRoutes: scan.recordRoutes ?? NONE,
  });
}

/** A CPIM message that carries a report: what kind, and where its payload starts. */
export interface ReportPayload {
  kind: ReportPayloadKind;
  /** Offset in the body of the first octet after the head (CpimHead.bodyOffset). */
  bodyOffset: number;
  /** The payload's Content-Type value (an aggregate's boundary is in it). */
  contentType: string;
}

/**
 * Whether a whole message/cpim body carries a report (`reportPayloadKind` of its parsed head), with the
 * same plain-head rules and `'fallback'` as {@link scanReportHead}; null for an IM.
 */
export function scanReportPayload(buf: Buffer): ReportPayload | null | 'incomplete' | 'fallback' {
  const scan = scanHead(buf);
  if (typeof scan === 'string') return scan;
  const kind = payloadKind(scan.contentType, scan.contentDisposition);
  if (kind === null) return null;
  return { kind, bodyOffset: scan.bodyOffset, contentType: scan.contentType ?? '' };
}

/**
 * {@link scanReportHead}, with the full lenient parser and {@link detectReportRequest} for a head the scan
 * leaves to them: `'malformed'` for a head the parser refuses.
 */
export function readReportHead(buf: Buffer): Exclude<HeadScan, 'fallback'> | 'malformed' {
  const scanned = scanReportHead(buf);
  if (scanned !== 'fallback') return scanned;
  let head: CpimHead | 'incomplete';
  try {
    head = parseCpimHead(buf, { lenient: true });
  } catch {
    return 'malformed';
  }
  if (head === 'incomplete') return head;
  if (reportPayloadKind(head) !== null) return 'report';
  return detectReportRequest(head, true); // just checked: not a report
}

/**
 * {@link scanReportPayload}, with the full lenient parser for a head the scan leaves to it; throws the
 * parser's `MsrpError` for a head it refuses.
 */
export function readReportPayload(buf: Buffer): ReportPayload | null | 'incomplete' {
  const scanned = scanReportPayload(buf);
  if (scanned !== 'fallback') return scanned;
  const head = parseCpimHead(buf, { lenient: true });
  if (head === 'incomplete') return head;
  const kind = reportPayloadKind(head);
  if (kind === null) return null;
  return { kind, bodyOffset: head.bodyOffset, contentType: head.contentHeader('Content-Type') ?? '' };
}

/** Reads both header blocks of a plain head into a {@link Scan}. */
function scanHead(buf: Buffer): Scan | 'incomplete' | 'fallback' {
  // One pass to the second blank line, noting where lines end (octet loops: Buffer#indexOf is a native
  // call each time, dearer than the few dozen octets of a header line). A bare CR or LF, a non-ASCII
  // octet (the parser decodes UTF-8) or too many lines leave the head to the parser.
  const ends = LINE_ENDS;
  let lines = 0;
  let messageLines = -1;
  let lineStart = 0;
  let i = 0;
  for (; ; i++) {
    const c = buf[i];
    if (c === undefined) return 'incomplete';
    if (c === CR) {
      const next = buf[i + 1];
      if (next === undefined) return 'incomplete';
      if (next !== LF) return 'fallback';
      if (i === lineStart) {
        if (messageLines !== -1) break;
        messageLines = lines;
      } else {
        if (lines === ends.length) return 'fallback';
        ends[lines++] = i;
      }
      lineStart = i + 2;
      i++;
    } else if (c === LF || c >= 0x80) {
      return 'fallback';
    }
  }
  const scan = new Scan(buf, i + 2);
  let start = messageLines === 0 ? 2 : 0;
  for (let n = 0; n < lines; n++) {
    const end = ends[n]!;
    const ok = n < messageLines ? messageHeader(scan, start, end) : contentHeader(scan, start, end);
    if (!ok) return 'fallback';
    // The blank line after the message headers sits between the two blocks.
    start = n + 1 === messageLines ? end + 4 : end + 2;
  }
  return scan;
}

const NONE: readonly string[] = Object.freeze([]);

/** The values of `a` then `b`; a list itself when the other is empty (the usual head has one). */
function joined(a: readonly string[] | null, b: readonly string[] | null): readonly string[] {
  if (b === null) return a ?? NONE;
  if (a === null) return b;
  return a.concat(b);
}

/** True when `buf[a..aEnd)` and `buf[b..bEnd)` are equal with ASCII letters compared case-insensitively. */
function sameIgnoringAsciiCase(buf: Buffer, a: number, aEnd: number, b: number, bEnd: number): boolean {
  if (aEnd - a !== bEnd - b) return false;
  for (let i = 0; i < aEnd - a; i++) {
    const x = buf[a + i]!;
    const y = buf[b + i]!;
    if (x !== y && ((x | 0x20) !== (y | 0x20) || (x | 0x20) < 0x61 || (x | 0x20) > 0x7a)) return false;
  }
  return true;
}

/** Reads one message header line `[start, end)`; false to fall back. */
function messageHeader(scan: Scan, start: number, end: number): boolean {
  const buf = scan.buf;
  // `[prefix.]Name` of NAMECHARs, then the colon: anything else (white space, folding) is the parser's.
  let dot = -1;
  let i = start;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c === COLON) break;
    if (c === DOT && dot === -1) dot = i;
    else if (NAMECHAR[c] !== 1) return false;
  }
  const colon = i;
  if (colon === end || colon === start || dot === start || dot === colon - 1) return false;
  if (buf[colon + 1] === SEMI) return false; // parameters
  let vs = colon + 1;
  let ve = end;
  while (vs < ve && isTrimmed(buf[vs]!)) vs++;
  while (ve > vs && isTrimmed(buf[ve - 1]!)) ve--;
  const ns = dot === -1 ? scan.defaultNs : scan.prefixClass(start, dot);
  if (ns === UNBOUND || ns === OTHER) return true;
  const ls = dot === -1 ? start : dot + 1;
  // Only the names a request is made of (each comparison checks the length first).
  if (bytesEqualIgnoringAsciiCase(buf, ls, colon, 'Disposition-Notification')) {
    const v = decodedValue(buf, vs, ve);
    if (v === undefined) return false;
    if (ns === IMDN) (scan.dnImdn ??= []).push(v);
    else if (ns === DRAFT) (scan.dnDraft ??= []).push(v);
    else (scan.dnCore ??= []).push(v);
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, colon, 'Message-ID')) {
    const first = ns === IMDN ? scan.idImdn : ns === DRAFT ? scan.idDraft : scan.idCore;
    // An empty or white-space id is no id: the next one (or the next namespace's) is the IM's.
    if (first === undefined && vs < ve) {
      const v = decodedValue(buf, vs, ve);
      if (v === undefined) return false;
      if (ns === IMDN) scan.idImdn = v;
      else if (ns === DRAFT) scan.idDraft = v;
      else scan.idCore = v;
    }
  } else if (ns === CORE) {
    return coreHeader(scan, ls, colon, vs, ve);
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, colon, 'Original-To')) {
    if (ns === IMDN) scan.originalToImdn ??= buf.toString('latin1', vs, ve);
    else scan.originalToDraft ??= buf.toString('latin1', vs, ve);
  } else if (ns === IMDN && bytesEqualIgnoringAsciiCase(buf, ls, colon, 'IMDN-Record-Route')) {
    (scan.recordRoutes ??= []).push(buf.toString('latin1', vs, ve));
  }
  return true;
}

/** A core-namespace header named `buf[ls..le)` with the trimmed value `[vs, ve)`; false to fall back. */
function coreHeader(scan: Scan, ls: number, le: number, vs: number, ve: number): boolean {
  const buf = scan.buf;
  if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'NS')) return scan.declare(vs, ve);
  if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'From')) {
    scan.from ??= buf.toString('latin1', vs, ve);
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'To')) {
    scan.to ??= buf.toString('latin1', vs, ve);
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'DateTime')) {
    if (scan.dateTime === undefined) {
      const v = decodedValue(buf, vs, ve);
      if (v === undefined) return false;
      scan.dateTime = v;
    }
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'Receipt-Request')) {
    const v = decodedValue(buf, vs, ve);
    if (v === undefined) return false;
    (scan.receiptRequests ??= []).push(v);
  } else if (bytesEqualIgnoringAsciiCase(buf, ls, le, 'Request-Receipt')) {
    const v = decodedValue(buf, vs, ve);
    if (v === undefined) return false;
    (scan.requestReceipts ??= []).push(v);
  }
  return true;
}

/**
 * The value `buf[start..end)` as the parser decodes it; undefined when it holds an escape (the decoded
 * value differs from the wire form: left to the parser).
 */
function decodedValue(buf: Buffer, start: number, end: number): string | undefined {
  return hasEscape(buf, start, end) ? undefined : buf.toString('latin1', start, end);
}

/** True when `buf[start..end)` holds a backslash. */
function hasEscape(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] === BACKSLASH) return true;
  return false;
}

/** Reads one MIME header line `[start, end)`; false to fall back (folding, no valid name). */
function contentHeader(scan: Scan, start: number, end: number): boolean {
  const buf = scan.buf;
  if (buf[start] === SP || buf[start] === HTAB) return false;
  let colon = start;
  while (colon < end && buf[colon] !== COLON) colon++;
  if (colon === end) return false;
  let ns = start;
  let ne = colon;
  while (ns < ne && isTrimmed(buf[ns]!)) ns++;
  while (ne > ns && isTrimmed(buf[ne - 1]!)) ne--;
  if (ne === ns) return false;
  for (let i = ns; i < ne; i++) if (buf[i]! <= SP || buf[i]! > 0x7e) return false;
  if (scan.contentType === undefined && bytesEqualIgnoringAsciiCase(buf, ns, ne, 'Content-Type')) {
    scan.contentType = buf.toString('latin1', colon + 1, end).trim();
  } else if (
    scan.contentDisposition === undefined &&
    bytesEqualIgnoringAsciiCase(buf, ns, ne, 'Content-Disposition')
  ) {
    scan.contentDisposition = buf.toString('latin1', colon + 1, end).trim();
  }
  return true;
}
