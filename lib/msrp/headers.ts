/**
 * Typed values of MSRP headers (RFC 4975 §9, RFC 4976 §7): Byte-Range, Status, Success-Report,
 * Failure-Report, Expires / Min-Expires / Max-Expires and Message-ID. Pure functions over the raw header
 * value (a latin1 string as kept in the frame head); every malformed value throws an `MsrpError` with code
 * `MSRP_ERR_BAD_HEADER_VALUE` and status 400. To-Path, From-Path and Use-Path live in uri.ts.
 */
import { createError, ErrorCodes, type MsrpError } from '../errors.js';

/** A Byte-Range value `start-end/total`; octets are numbered from 1, `*` means unknown. */
export interface ByteRange {
  /** Number of the first octet of this chunk, at least 1. */
  start: number;
  /** Number of the last octet, or `*` when the sender does not know it (interruptible chunk). */
  end: number | '*';
  /** Size of the whole message, or `*` when unknown. */
  total: number | '*';
}

/** The value of a REPORT's Status header: `namespace SP code [SP comment]`. */
export interface ReportStatus {
  /** Three digits; `000` means the code is read like a transaction response code. */
  namespace: string;
  /** Three-digit status code, e.g. 200 or 408. */
  code: number;
  /** Reason text after the code, '' when absent. */
  comment: string;
}

/** Value of a Success-Report header. */
export type SuccessReport = 'yes' | 'no';

/** Value of a Failure-Report header. */
export type FailureReport = 'yes' | 'no' | 'partial';

const ZERO = 0x30;
const NINE = 0x39;
const SP = 0x20;
const HTAB = 0x09;
const DEL = 0x7f;
/** Digits in Number.MAX_SAFE_INTEGER; longer digit runs are rejected before any arithmetic. */
const MAX_SAFE_DIGITS = 16;

/** The error every malformed header value raises; the value is quoted (and cut) so logs stay one line. */
function badValue(header: string, value: string, reason: string): MsrpError {
  const shown = value.length > 100 ? `${value.slice(0, 100)}...` : value;
  return createError(
    ErrorCodes.BAD_HEADER_VALUE,
    `invalid ${header} value ${JSON.stringify(shown)}: ${reason}`,
    400,
  );
}

/** The decimal number in `v[start, end)` (1*DIGIT), or -1 when empty, not all digits, or above 2^53-1. */
function parseDigits(v: string, start: number, end: number): number {
  if (end <= start || end - start > MAX_SAFE_DIGITS) return -1;
  let n = 0;
  for (let i = start; i < end; i++) {
    const c = v.charCodeAt(i);
    if (c < ZERO || c > NINE) return -1;
    n = n * 10 + (c - ZERO);
  }
  return n <= Number.MAX_SAFE_INTEGER ? n : -1;
}

/** Parses `v[start, end)` as `1*DIGIT / "*"`; -1 when it is neither. */
function parseDigitsOrStar(v: string, start: number, end: number): number | '*' {
  if (end - start === 1 && v.charCodeAt(start) === 0x2a) return '*';
  return parseDigits(v, start, end);
}

/**
 * Parses a Byte-Range value. Besides the grammar, checks the numbers make sense: start ≥ 1, end ≥ start,
 * end ≤ total and start ≤ total; the one empty range allowed is the empty message, `1-0/0`.
 */
export function parseByteRange(v: string): ByteRange {
  // Byte-Range = range-start "-" range-end "/" total; range-start = 1*DIGIT;
  // range-end = 1*DIGIT / "*"; total = 1*DIGIT / "*"
  const dash = v.indexOf('-');
  const slash = dash === -1 ? -1 : v.indexOf('/', dash + 1);
  if (slash === -1) throw badValue('Byte-Range', v, 'expected start-end/total');
  const start = parseDigits(v, 0, dash);
  const end = parseDigitsOrStar(v, dash + 1, slash);
  const total = parseDigitsOrStar(v, slash + 1, v.length);
  if (start === -1 || end === -1 || total === -1) {
    throw badValue('Byte-Range', v, 'expected digits or * in start-end/total');
  }
  // RFC 4975 (digest §1.7): octets are numbered from 1; `1-0/0` is the empty message.
  if (start < 1) throw badValue('Byte-Range', v, 'range-start must be at least 1');
  const empty = start === 1 && total === 0;
  if (end !== '*' && end < start && !(empty && end === 0)) {
    throw badValue('Byte-Range', v, 'range-end before range-start');
  }
  if (total !== '*') {
    if (end !== '*' && end > total) throw badValue('Byte-Range', v, 'range-end beyond total');
    if (start > total && !empty) throw badValue('Byte-Range', v, 'range-start beyond total');
  }
  return { start, end, total };
}

/** Serialises a {@link ByteRange} as `start-end/total`. */
export function formatByteRange(r: ByteRange): string {
  return `${r.start}-${r.end}/${r.total}`;
}

/** True when `c` may appear in `utf8text` (HTAB, printable ASCII, or a UTF-8 octet kept as latin1). */
function isTextChar(c: number): boolean {
  return c === HTAB || (c >= SP && c !== DEL);
}

/** True when the three characters of `v` at `i` are digits. */
function isThreeDigits(v: string, i: number): boolean {
  for (let k = i; k < i + 3; k++) {
    const c = v.charCodeAt(k);
    if (!(c >= ZERO && c <= NINE)) return false;
  }
  return true;
}

/** Parses a Status header value `namespace SP status-code [SP comment]` (RFC 4975 §9). */
export function parseStatus(v: string): ReportStatus {
  // Status = namespace SP status-code [SP comment]; namespace = 3DIGIT; status-code = 3DIGIT
  if (v.length < 7 || !isThreeDigits(v, 0) || v.charCodeAt(3) !== SP || !isThreeDigits(v, 4)) {
    throw badValue('Status', v, 'expected 3-digit namespace, SP, 3-digit code');
  }
  let comment = '';
  if (v.length > 7) {
    if (v.charCodeAt(7) !== SP) throw badValue('Status', v, 'expected SP before the comment');
    for (let i = 8; i < v.length; i++) {
      if (!isTextChar(v.charCodeAt(i))) throw badValue('Status', v, 'control character in comment');
    }
    comment = v.slice(8);
  }
  return { namespace: v.slice(0, 3), code: parseDigits(v, 4, 7), comment };
}

/** Serialises a {@link ReportStatus}: `000 200 OK`, or `000 200` when the comment is empty. */
export function formatStatus(s: ReportStatus): string {
  const code = String(s.code).padStart(3, '0');
  return s.comment === '' ? `${s.namespace} ${code}` : `${s.namespace} ${code} ${s.comment}`;
}

/** Parses a Success-Report value; absent means `no` (RFC 4975, digest §1.5). Any letter case is accepted. */
export function parseSuccessReport(v: string | undefined): SuccessReport {
  if (v === undefined) return 'no';
  if (v.length <= 3) {
    const lower = v.toLowerCase();
    if (lower === 'yes' || lower === 'no') return lower;
  }
  throw badValue('Success-Report', v, 'expected yes or no');
}

/** Parses a Failure-Report value; absent means `yes` (RFC 4975, digest §1.5). Any letter case is accepted. */
export function parseFailureReport(v: string | undefined): FailureReport {
  if (v === undefined) return 'yes';
  if (v.length <= 7) {
    const lower = v.toLowerCase();
    if (lower === 'yes' || lower === 'no' || lower === 'partial') return lower;
  }
  throw badValue('Failure-Report', v, 'expected yes, no or partial');
}

/**
 * Parses an Expires, Min-Expires or Max-Expires value: whole seconds, `1*DIGIT` (RFC 4976 §7). `header`
 * names the header in the error message.
 */
export function parseExpires(v: string, header = 'Expires'): number {
  const n = parseDigits(v, 0, v.length);
  if (n === -1) throw badValue(header, v, 'expected whole seconds (digits only)');
  return n;
}

// ident-char = ALPHANUM / "." / "-" / "+" / "%" / "="
const ALNUM = 1;
const IDENT = 2;
const IDENT_CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const alnum = (c >= ZERO && c <= NINE) || (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  if (alnum) IDENT_CHARS[c] = ALNUM | IDENT;
  else if (c === 0x2e || c === 0x2d || c === 0x2b || c === 0x25 || c === 0x3d) IDENT_CHARS[c] = IDENT;
}

/**
 * True when `s` is an RFC 4975 `ident` (transaction id, Message-ID): 4 to 32 characters, the first
 * alphanumeric, the rest alphanumeric or `. - + % =`.
 */
export function isIdent(s: string): boolean {
  // ident = ALPHANUM 3*31ident-char
  const len = s.length;
  if (len < 4 || len > 32) return false;
  const first = s.charCodeAt(0);
  if (first >= 128 || (IDENT_CHARS[first]! & ALNUM) === 0) return false;
  for (let i = 1; i < len; i++) {
    const c = s.charCodeAt(i);
    if (c >= 128 || (IDENT_CHARS[c]! & IDENT) === 0) return false;
  }
  return true;
}

/** Validates a Message-ID value (an RFC 4975 `ident`) and returns it unchanged. */
export function parseMessageId(v: string): string {
  if (!isIdent(v))
    throw badValue('Message-ID', v, 'expected 4-32 characters, alphanumeric first, then ALPHANUM . - + % =');
  return v;
}
