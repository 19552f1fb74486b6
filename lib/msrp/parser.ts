/**
 * Incremental MSRP frame parser (RFC 4975 §7.1, §9). Bytes go in through {@link MsrpParser.write} split at
 * any point; the parser calls its handler with the head of each frame, the body as it arrives (views into
 * the input, never decoded) and the end-line flag. Bodies have no length prefix: the end of a body is
 * found by scanning for the exact `CRLF -------<transaction-id>` needle followed by `+`, `$` or `#` and
 * CRLF (digest §1.4); look-alikes are body octets.
 *
 * Memory: besides the current input buffer the parser keeps at most one partial header line (bounded by
 * `maxHeadBytes`, in a store at most twice that) or a tail of at most `needle + 2` octets that could
 * begin an end-line.
 */
import { CR, DEFAULTS, END_LINE_PREFIX, LF, type ContinuationFlag } from '../constants.js';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import type { FrameHead, Header } from './message.js';
import { equalsIgnoringAsciiCase, startsWithIgnoringAsciiCase } from './ascii.js';

/** Receives what the parser finds; called synchronously from {@link MsrpParser.write}. */
export interface ParserHandler {
  /** A frame's start line and headers are complete. */
  onHead(head: FrameHead): void;
  /**
   * A piece of the current frame's body. The buffer is a view into the parser's input and is only valid
   * during the call: copy it to keep it.
   */
  onBody(piece: Buffer): void;
  /** The current frame's end-line was found. */
  onEnd(flag: ContinuationFlag): void;
  /**
   * A malformation. `context` says which transaction it concerns (null when the start line itself was
   * unreadable). After a non-fatal error the parser skips the rest of that frame silently (no `onEnd`);
   * after a fatal one it ignores all further input.
   */
  onError(err: MsrpError, context: ErrorContext | null): void;
}

/** What was known of a frame when it failed: enough to build an error response. */
export interface ErrorContext {
  readonly transactionId: string;
  /** Request method, or undefined for a response. */
  readonly method: string | undefined;
  /** Headers read before the error, in wire order. */
  readonly headers: Header[];
  /** True when `onHead` had already been called for this frame. */
  readonly headEmitted: boolean;
}

/** Limits applied by the parser; defaults from DESIGN.md. */
export interface ParserOptions {
  /** Start line plus headers, in bytes (default 16 KiB). Over it: fatal 400. */
  maxHeadBytes?: number;
  /** Header lines per frame (default 64). Over it: 400 for that frame. */
  maxHeaders?: number;
  /** Body of one SEND chunk (default 64 MiB). Over it: 413 for that frame, after the octets up to it. */
  maxChunkBytes?: number;
  /** Body of any other request (default 64 KiB). Over it: 413 for that frame. */
  maxOtherBodyBytes?: number;
}

const State = {
  START: 0,
  HEADERS: 1,
  BODY: 2,
  DISCARD_BODY: 3,
  FAILED: 4,
} as const;
type State = (typeof State)[keyof typeof State];

/** `ident = ALPHANUM 3*31ident-char` (RFC 4975 §9); ident-char adds `. - + % =`. */
const IDENT_CHAR = new Uint8Array(128);
for (let c = 0x30; c <= 0x39; c++) IDENT_CHAR[c] = 2;
for (let c = 0x41; c <= 0x5a; c++) IDENT_CHAR[c] = 2;
for (let c = 0x61; c <= 0x7a; c++) IDENT_CHAR[c] = 2;
for (const c of '.-+%=') IDENT_CHAR[c.charCodeAt(0)] = 1;

/** `token` characters of RFC 4975 §9 (header names). */
const TOKEN_CHAR = new Uint8Array(128);
for (let c = 0x21; c <= 0x7e; c++) TOKEN_CHAR[c] = 1;
for (const c of '"(),/:;<=>?@[\\]{}') TOKEN_CHAR[c.charCodeAt(0)] = 0;

const MSRP_PREFIX = Buffer.from('MSRP ', 'latin1');
const FLAG_PLUS = 0x2b;
const FLAG_DOLLAR = 0x24;
const FLAG_HASH = 0x23;

function isFlag(c: number | undefined): boolean {
  return c === FLAG_PLUS || c === FLAG_DOLLAR || c === FLAG_HASH;
}

/**
 * The status code of a response start line's rest (`NNN` or `NNN SP comment`, RFC 4975 §9) at
 * `start`..`end`, or -1 when it is not one: three digits, then nothing or a space and a comment without
 * a CR.
 */
function statusCodeAt(buf: Buffer, start: number, end: number): number {
  const len = end - start;
  if (len < 3) return -1;
  const a = buf[start]! - 0x30;
  const b = buf[start + 1]! - 0x30;
  const c = buf[start + 2]! - 0x30;
  if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  if (len > 3) {
    if (buf[start + 3] !== 0x20) return -1;
    const cr = buf.indexOf(CR, start + 4);
    if (cr !== -1 && cr < end) return -1;
  }
  return a * 100 + b * 10 + c;
}

/** True when `a[aStart..aStart+n)` equals `b[bStart..bStart+n)` (short runs: no native call). */
function bytesAt(a: Buffer, aStart: number, b: Buffer, bStart: number, n: number): boolean {
  for (let i = 0; i < n; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** True when `start`..`end` is a method name: one or more of A-Z. */
function isMethodAt(buf: Buffer, start: number, end: number): boolean {
  if (end <= start) return false;
  for (let i = start; i < end; i++) {
    const c = buf[i]!;
    if (c < 0x41 || c > 0x5a) return false;
  }
  return true;
}

/** A spelling to match octet for octet, and the one string that stands for it. */
type Interned = readonly [bytes: Buffer, text: string];

const interned = (names: readonly string[]): readonly Interned[] =>
  names.map((n) => [Buffer.from(n, 'latin1'), n] as const);

/** Methods read without a new string: SEND is on nearly every frame. */
const KNOWN_METHODS = interned(['SEND', 'REPORT', 'AUTH']);

/**
 * Header names as RFC 4975 and RFC 4976 spell them: a header written so is named by this shared string
 * instead of a new one (a frame has six to eight headers). Any other spelling is read as written.
 */
const KNOWN_NAMES = interned([
  'To-Path',
  'From-Path',
  'Message-ID',
  'Byte-Range',
  'Failure-Report',
  'Success-Report',
  'Content-Type',
  'Status',
  'Use-Path',
  'Expires',
  'Content-Disposition',
]);

/** The text at `start`..`end`: a shared string when `table` spells it exactly so, else a new one. */
function textAt(table: readonly Interned[], buf: Buffer, start: number, end: number): string {
  const len = end - start;
  for (let k = 0; k < table.length; k++) {
    const [bytes, text] = table[k]!;
    if (bytes.length !== len || bytes[0] !== buf[start]) continue;
    let i = 1;
    while (i < len && bytes[i] === buf[start + i]) i++;
    if (i === len) return text;
  }
  return buf.toString('latin1', start, end);
}

function isIdentAt(buf: Buffer, start: number, end: number): boolean {
  const len = end - start;
  if (len < 4 || len > 32) return false;
  if (IDENT_CHAR[buf[start]!] !== 2) return false;
  for (let i = start + 1; i < end; i++) {
    const c = buf[i]!;
    if (c > 127 || IDENT_CHAR[c] === 0) return false;
  }
  return true;
}

/**
 * Streaming MSRP frame parser. One instance per connection (or per WebSocket message stream).
 *
 * ```
 *  START ──start line──► HEADERS ──blank line──► BODY ──end-line──► START
 *                          │  └──────end-line (bodiless)──────────────┘
 *                          └─error (reported when the head ends)─► DISCARD_BODY ─► START
 *  any state ─fatal error─► FAILED
 * ```
 */
export class MsrpParser {
  private readonly handler: ParserHandler;
  private readonly maxHeadBytes: number;
  private readonly maxHeaders: number;
  private readonly maxChunkBytes: number;
  private readonly maxOtherBodyBytes: number;

  private state: State = State.START;
  /**
   * Partial line carried over from previous writes: its first {@link lineLen} octets (materialised copy).
   * The store grows by doubling, so a line that arrives in many small writes is copied in linear time
   * (it was copied whole at each write: a head sent an octet per read cost 16 KiB² / 2 of copying).
   */
  private lineBuf: Buffer | null = null;
  private lineLen = 0;
  /** Held-back body octets that may begin an end-line (materialised copy). */
  private tail: Buffer | null = null;

  // Current frame.
  private transactionId = '';
  private method: string | undefined = undefined;
  private statusCode = 0;
  private comment = '';
  private headers: Header[] = [];
  private headBytes = 0;
  private lastWasContentType = false;
  private sawMime = false;
  /**
   * `CRLF -------<transaction-id>`: the end-line searched for in the current frame's body, a view of
   * {@link needleBytes} rewritten in place at each start line (and re-made only when the id's length
   * changes), so a frame costs no new buffer.
   */
  private needle: Buffer = Buffer.alloc(0);
  private readonly needleBytes = Buffer.from('\r\n' + END_LINE_PREFIX + ' '.repeat(32), 'latin1');
  private bodyBytes = 0;
  private bodyLimit = 0;
  /** A non-fatal head error, reported once the head ends so that it carries every header. */
  private pendingError: MsrpError | null = null;

  constructor(handler: ParserHandler, options: ParserOptions = {}) {
    this.handler = handler;
    this.maxHeadBytes = options.maxHeadBytes ?? DEFAULTS.maxHeadBytes;
    this.maxHeaders = options.maxHeaders ?? DEFAULTS.maxHeaders;
    this.maxChunkBytes = options.maxChunkBytes ?? DEFAULTS.maxChunkBytes;
    this.maxOtherBodyBytes = options.maxOtherBodyBytes ?? DEFAULTS.maxOtherBodyBytes;
  }

  /** True after a fatal error: the stream can no longer be framed. */
  get failed(): boolean {
    return this.state === State.FAILED;
  }

  /** True when the parser is between frames (nothing partial held). */
  get idle(): boolean {
    return this.state === State.START && this.lineBuf === null;
  }

  /** Feeds bytes; any split point is fine. Never throws for bad input: errors go to `onError`. */
  write(chunk: Buffer): void {
    if (this.state === State.FAILED || chunk.length === 0) return;
    let buf = chunk;
    let pos = 0;
    if (this.tail !== null) {
      const t = this.tail;
      this.tail = null;
      if (chunk.length <= this.needle.length + 3) {
        // Small read: join it with the held-back tail and scan the (tiny) result.
        buf = Buffer.concat([t, chunk]);
      } else {
        pos = this.resumeBody(t, chunk);
      }
    }
    while (pos < buf.length) {
      const state = this.state;
      if (state === State.BODY || state === State.DISCARD_BODY) {
        pos = this.scanBody(buf, pos);
      } else if (this.failed) {
        return;
      } else {
        pos = this.readLine(buf, pos);
      }
    }
  }

  /** Drops any partial frame and starts afresh (used after a WebSocket message boundary). */
  reset(): void {
    this.state = State.START;
    this.lineBuf = null;
    this.lineLen = 0;
    this.tail = null;
    this.headers = [];
    this.headBytes = 0;
  }

  // ---- heads ---------------------------------------------------------------------------------------

  /** Appends `part` to the partial line held ({@link lineBuf}). */
  private holdLinePart(part: Buffer): void {
    const need = this.lineLen + part.length;
    let store = this.lineBuf;
    if (store === null || need > store.length) {
      const grown = Buffer.allocUnsafe(Math.max(need, 2 * (store?.length ?? 0), 128));
      if (store !== null) store.copy(grown, 0, 0, this.lineLen);
      this.lineBuf = store = grown;
    }
    part.copy(store, this.lineLen);
    this.lineLen = need;
  }

  /** Reads one CRLF-terminated line starting at `pos`; returns the position after it. */
  private readLine(buf: Buffer, pos: number): number {
    const lf = buf.indexOf(LF, pos);
    if (lf === -1) {
      const part = buf.subarray(pos);
      const held = this.lineLen;
      if (this.headBytes + held + part.length > this.maxHeadBytes) {
        this.fail(
          createError(ErrorCodes.HEAD_TOO_LARGE, 'start line and headers exceed the limit', 400, true),
        );
        return buf.length;
      }
      this.holdLinePart(part);
      return buf.length;
    }
    let line: Buffer;
    let start: number;
    let end: number; // index of LF
    if (this.lineBuf !== null) {
      line = Buffer.concat([this.lineBuf.subarray(0, this.lineLen), buf.subarray(pos, lf + 1)]);
      this.lineBuf = null;
      this.lineLen = 0;
      start = 0;
      end = line.length - 1;
    } else {
      line = buf;
      start = pos;
      end = lf;
    }
    const next = lf + 1;
    const lineBytes = end + 1 - start;
    if (this.state === State.START && lineBytes <= 2 && (lineBytes === 1 || line[start] === CR)) {
      return next; // blank line between frames: tolerated
    }
    this.headBytes += lineBytes;
    if (this.headBytes > this.maxHeadBytes) {
      this.fail(createError(ErrorCodes.HEAD_TOO_LARGE, 'start line and headers exceed the limit', 400, true));
      return buf.length;
    }
    if (end === start || line[end - 1] !== CR) {
      const err = createError(
        ErrorCodes.BAD_HEADER,
        'line not terminated by CRLF',
        400,
        this.state === State.START,
      );
      if (err.fatal) this.fail(err);
      else this.pendingError ??= err;
      return next;
    }
    if (this.state === State.START) this.onStartLine(line, start, end - 1);
    else this.onHeaderLine(line, start, end - 1);
    return next;
  }

  private onStartLine(line: Buffer, start: number, end: number): void {
    this.transactionId = '';
    this.pendingError = null;
    this.headers = [];
    this.lastWasContentType = false;
    this.sawMime = false;
    this.method = undefined;
    this.statusCode = 0;
    this.comment = '';
    if (end - start < MSRP_PREFIX.length || !bytesAt(line, start, MSRP_PREFIX, 0, MSRP_PREFIX.length)) {
      this.fail(createError(ErrorCodes.BAD_START_LINE, 'start line does not begin with "MSRP "', 400, true));
      return;
    }
    const tidStart = start + 5;
    const sp = line.indexOf(0x20, tidStart);
    if (sp === -1 || sp >= end) {
      this.fail(createError(ErrorCodes.BAD_START_LINE, 'start line lacks a method or status', 400, true));
      return;
    }
    if (!isIdentAt(line, tidStart, sp)) {
      this.fail(
        createError(ErrorCodes.BAD_TRANSACTION_ID, 'transaction id is not a 4-32 character ident', 400, true),
      );
      return;
    }
    this.transactionId = line.toString('latin1', tidStart, sp);
    this.setNeedle(line, tidStart, sp);
    const r = sp + 1;
    const status = statusCodeAt(line, r, end);
    if (status !== -1) {
      // `NNN` or `NNN SP comment`; the comment runs to the CR (one inside it makes the line bad).
      this.statusCode = status;
      this.comment = end - r > 4 ? line.toString('latin1', r + 4, end) : '';
    } else if (isMethodAt(line, r, end)) {
      this.method = textAt(KNOWN_METHODS, line, r, end);
    } else {
      // The transaction id is known, so the frame can still be skipped to its end-line.
      this.pendingError = createError(
        ErrorCodes.BAD_START_LINE,
        `bad method or status "${line.toString('latin1', r, end)}"`,
        400,
        false,
      );
    }
    this.state = State.HEADERS;
  }

  private onHeaderLine(line: Buffer, start: number, end: number): void {
    if (end === start) {
      this.onBlankLine();
      return;
    }
    if (line[start] === 0x2d && this.isEndLine(line, start, end)) {
      this.onBodilessEnd(line[end - 1]!);
      return;
    }
    // RFC 4975 §9: ext-header = hname ":" SP hval; hname = ALPHA *token.
    let colon = -1;
    for (let i = start; i < end; i++) {
      const c = line[i]!;
      if (c === 0x3a) {
        colon = i;
        break;
      }
      if (c > 127 || TOKEN_CHAR[c] === 0) break;
    }
    if (colon <= start) {
      this.pendingError ??= createError(
        ErrorCodes.BAD_HEADER,
        'header line is not "Name: value"',
        400,
        false,
      );
      // A line that is no header but ends in this frame's end-line (a peer that wrote junk with no CRLF
      // before the end-line: Kamailio 5.6.3's 423 does) ends the refused frame here, instead of every
      // later octet being read as more of its head until the 16 KiB limit closes the connection.
      if (this.endsInEndLine(line, start, end)) this.onBodilessEnd(line[end - 1]!);
      return;
    }
    // The same for a line of header shape whose value runs into the end-line (`X: junk-------tid$`).
    // One octet is looked at for every header line: a value rarely ends in `$`, `+` or `#`.
    if (isFlag(line[end - 1]) && this.endsInEndLine(line, colon + 1, end)) {
      this.pendingError ??= createError(ErrorCodes.BAD_HEADER, 'end-line inside a header line', 400, false);
      this.onBodilessEnd(line[end - 1]!);
      return;
    }
    let v = colon + 1;
    while (v < end && (line[v] === 0x20 || line[v] === 0x09)) v++;
    const name = textAt(KNOWN_NAMES, line, start, colon);
    const value = line.toString('latin1', v, end);
    const index = this.headers.length;
    if (index >= this.maxHeaders) {
      this.pendingError ??= createError(
        ErrorCodes.TOO_MANY_HEADERS,
        `more than ${this.maxHeaders} header lines`,
        400,
        false,
      );
      return;
    }
    this.headers.push([name, value]);
    if (this.pendingError !== null) return; // only collecting context for the error now
    // RFC 4975 §9: a header value holds no CR (lines split at LF here; one ending in CRLF may still hide a
    // bare CR): a relay forwarding it could give a next hop that splits at CR a header of the sender's
    // making (security review). To-Path and From-Path are left to the URI grammar, which refuses it.
    if (index >= 2 && value.includes('\r')) {
      this.pendingError = createError(ErrorCodes.BAD_HEADER_VALUE, 'CR inside a header value', 400, false);
      return;
    }
    // RFC 4975 §7.1: To-Path is the first header and From-Path the second, always.
    // Names spelled as the RFC spells them are the shared strings of KNOWN_NAMES: `===` settles those.
    if (index === 0 && name !== 'To-Path' && !equalsIgnoringAsciiCase(name, 'to-path')) {
      this.pendingError = createError(ErrorCodes.HEADER_ORDER, 'first header is not To-Path', 400, false);
    } else if (index === 1 && name !== 'From-Path' && !equalsIgnoringAsciiCase(name, 'from-path')) {
      this.pendingError = createError(ErrorCodes.HEADER_ORDER, 'second header is not From-Path', 400, false);
    } else if (this.lastWasContentType) {
      // RFC 4975 §7.1: Content-Type, when present, is the last header.
      this.pendingError = createError(
        ErrorCodes.HEADER_ORDER,
        'Content-Type is not the last header',
        400,
        false,
      );
    } else if (name === 'Content-Type') {
      this.sawMime = true;
      this.lastWasContentType = true;
    } else {
      const c0 = line[start]!;
      if (
        (c0 === 0x43 || c0 === 0x63) &&
        colon - start >= 8 &&
        startsWithIgnoringAsciiCase(name, 'content-')
      ) {
        this.sawMime = true;
        this.lastWasContentType = equalsIgnoringAsciiCase(name, 'content-type');
      }
    }
  }

  /** The empty line after the headers: a body follows (or the frame is malformed). */
  private onBlankLine(): void {
    let err = this.pendingError;
    if (err === null && this.headers.length < 2) {
      err = createError(ErrorCodes.MISSING_HEADER, 'To-Path and From-Path are required', 400, false);
    } else if (err === null && this.method === undefined) {
      // RFC 4975 §7.2: responses never carry a body.
      err = createError(ErrorCodes.BAD_BODY, 'a response cannot carry a body', 400, false);
    } else if (err === null && !this.lastWasContentType) {
      // RFC 4975 §7.1: a body is announced by Content-Type as the last header, then an empty line.
      err = createError(ErrorCodes.BAD_BODY, 'body without Content-Type as the last header', 400, false);
    }
    if (err !== null) {
      this.pendingError = null;
      this.state = State.DISCARD_BODY;
      this.report(err, false);
      return;
    }
    this.bodyBytes = 0;
    this.bodyLimit = this.method === 'SEND' ? this.maxChunkBytes : this.maxOtherBodyBytes;
    this.state = State.BODY;
    this.handler.onHead({
      kind: 'request',
      transactionId: this.transactionId,
      method: this.method!,
      headers: this.headers,
      hasBody: true,
    });
  }

  /** The end-line right after the headers: a frame without body. */
  private onBodilessEnd(flagByte: number): void {
    const flag = String.fromCharCode(flagByte) as ContinuationFlag;
    this.state = State.START;
    this.headBytes = 0;
    let err = this.pendingError;
    this.pendingError = null;
    if (err === null && this.headers.length < 2) {
      err = createError(ErrorCodes.MISSING_HEADER, 'To-Path and From-Path are required', 400, false);
    } else if (err === null && this.sawMime) {
      // RFC 4975 §7.1: MIME headers (Content-Type above all) only when there is a body.
      err = createError(ErrorCodes.BAD_BODY, 'Content-* header in a frame without body', 400, false);
    } else if (err === null && this.method === undefined && flag !== '$') {
      err = createError(ErrorCodes.BAD_END_LINE, 'a response must end with "$"', 400, false);
    }
    if (err !== null) {
      this.report(err, false);
      return;
    }
    if (this.method === undefined) {
      this.handler.onHead({
        kind: 'response',
        transactionId: this.transactionId,
        statusCode: this.statusCode,
        comment: this.comment,
        headers: this.headers,
        hasBody: false,
      });
    } else {
      this.handler.onHead({
        kind: 'request',
        transactionId: this.transactionId,
        method: this.method,
        headers: this.headers,
        hasBody: false,
      });
    }
    this.handler.onEnd(flag);
  }

  /** True when `line[start, end)` is `-------<tid><flag>` for the current transaction. */
  private isEndLine(line: Buffer, start: number, end: number): boolean {
    const n = this.needle.length - 2; // without the leading CRLF
    if (end - start !== n + 1 || !isFlag(line[end - 1])) return false;
    return bytesAt(line, start, this.needle, 2, n);
  }

  /** True when `line[start..end)` ends with this frame's end-line (flag included), after other octets. */
  private endsInEndLine(line: Buffer, start: number, end: number): boolean {
    const n = this.needle.length - 2; // without the leading CRLF
    if (end - start <= n + 1 || !isFlag(line[end - 1])) return false;
    return bytesAt(line, end - 1 - n, this.needle, 2, n);
  }

  /** Points {@link needle} at the end-line of the transaction id at `line[start..end)` (4-32 octets). */
  private setNeedle(line: Buffer, start: number, end: number): void {
    const at = 2 + END_LINE_PREFIX.length;
    const length = at + end - start;
    const bytes = this.needleBytes;
    for (let i = start; i < end; i++) bytes[at + i - start] = line[i]!;
    if (this.needle.length !== length) this.needle = bytes.subarray(0, length);
  }

  // ---- bodies --------------------------------------------------------------------------------------

  /** Scans body octets from `pos`; returns where scanning stopped (buf.length or after the end-line). */
  private scanBody(buf: Buffer, pos: number): number {
    const needle = this.needle;
    const n = needle.length;
    let from = pos;
    for (;;) {
      const idx = buf.indexOf(needle, from);
      if (idx === -1) {
        // Hold back what could be the start of a split end-line: at most needle + flag + CR.
        const keep = Math.min(buf.length - pos, n + 2);
        const safeEnd = buf.length - keep;
        this.emitBody(buf, pos, safeEnd);
        if (keep > 0) this.tail = Buffer.from(buf.subarray(safeEnd));
        return buf.length;
      }
      if (idx + n + 3 > buf.length) {
        this.emitBody(buf, pos, idx);
        this.tail = Buffer.from(buf.subarray(idx));
        return buf.length;
      }
      if (isFlag(buf[idx + n]) && buf[idx + n + 1] === CR && buf[idx + n + 2] === LF) {
        this.emitBody(buf, pos, idx);
        this.endBody(buf[idx + n]!);
        return idx + n + 3;
      }
      from = idx + 1; // a look-alike: body octets (digest §1.4 step 3)
    }
  }

  /**
   * Continues a body whose last read left a held-back tail `t`, given a new read `chunk` longer than an
   * end-line. Only matches that start inside `t` need the join; returns the offset in `chunk` to go on.
   */
  private resumeBody(t: Buffer, chunk: Buffer): number {
    const n = this.needle.length;
    const joined = Buffer.concat([t, chunk.subarray(0, n + 3)]);
    let from = 0;
    for (;;) {
      const idx = joined.indexOf(this.needle, from);
      if (idx === -1 || idx >= t.length) break;
      if (isFlag(joined[idx + n]) && joined[idx + n + 1] === CR && joined[idx + n + 2] === LF) {
        this.emitBody(joined, 0, idx);
        this.endBody(joined[idx + n]!);
        return idx + n + 3 - t.length;
      }
      from = idx + 1;
    }
    this.emitBody(joined, 0, t.length);
    return 0;
  }

  private emitBody(buf: Buffer, start: number, end: number): void {
    if (end <= start) return;
    if (this.state !== State.BODY) return; // DISCARD_BODY
    this.bodyBytes += end - start;
    if (this.bodyBytes > this.bodyLimit) {
      // The octets up to the limit still go out (a relay's report scan may need the head they carry).
      const room = this.bodyLimit - (this.bodyBytes - (end - start));
      if (room > 0) this.handler.onBody(buf.subarray(start, start + room));
      this.state = State.DISCARD_BODY;
      this.report(
        createError(ErrorCodes.BODY_TOO_LARGE, `body exceeds ${this.bodyLimit} bytes`, 413, false),
        true,
      );
      return;
    }
    this.handler.onBody(buf.subarray(start, end));
  }

  private endBody(flagByte: number): void {
    const emitted = this.state === State.BODY;
    this.state = State.START;
    this.headBytes = 0;
    if (emitted) this.handler.onEnd(String.fromCharCode(flagByte) as ContinuationFlag);
  }

  // ---- errors --------------------------------------------------------------------------------------

  private fail(err: MsrpError): void {
    // Before a start line was read, the frame has no transaction: the fields still hold the previous
    // frame's, which must not be answered a second time (or reported as failed) for this error.
    const known = this.state !== State.START && this.transactionId !== '';
    this.state = State.FAILED;
    this.lineBuf = null;
    this.lineLen = 0;
    this.tail = null;
    this.handler.onError(err, known ? this.context(false) : null);
  }

  private report(err: MsrpError, headEmitted: boolean): void {
    this.handler.onError(err, this.context(headEmitted));
  }

  private context(headEmitted: boolean): ErrorContext {
    return {
      transactionId: this.transactionId,
      method: this.method,
      headers: this.headers,
      headEmitted,
    };
  }
}
