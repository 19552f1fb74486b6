/**
 * MSRP serializer (RFC 4975 §7.1): requests, responses and REPORTs. {@link frameRequest} is pure and
 * returns the three parts of a frame (head, body, tail) so a sender can write a large body without
 * copying it; {@link serializeRequest} joins them for tests and small frames. Header values are latin1
 * "binary strings" (as the parser produces them), so a parsed frame re-serialises to the same octets.
 */
import { randomFillSync } from 'node:crypto';
import { END_LINE_PREFIX, type ContinuationFlag } from '../constants.js';
import type { Frame, FrameHead, Header } from './message.js';

const ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const POOL_SIZE = 4096;
const pool = Buffer.allocUnsafe(POOL_SIZE);
let poolOffset = POOL_SIZE;
const ID_CODES = Buffer.from(ID_ALPHABET, 'latin1');
const ID_SCRATCH = Buffer.alloc(64);

/**
 * A random RFC 4975 ident of `length` alphanumeric characters from a pooled CSPRNG (≈5.95 bits per
 * character: the default 16 gives ≈95 bits, above the 64 bits asked of transaction ids and the 80 bits
 * asked of session-ids).
 */
export function randomId(length = 16): string {
  // Characters are placed in a scratch buffer and read out as one string: no string per character.
  const out = length <= ID_SCRATCH.length ? ID_SCRATCH : Buffer.allocUnsafe(length);
  let n = 0;
  while (n < length) {
    if (poolOffset >= POOL_SIZE) {
      randomFillSync(pool);
      poolOffset = 0;
    }
    const b = pool[poolOffset++]!;
    if (b < 248) out[n++] = ID_CODES[b % 62]!; // 248 = 4 * 62: rejection keeps the draw unbiased
  }
  return out.toString('latin1', 0, length);
}

/** The end-line `-------<tid><flag>CRLF`. */
export function endLine(transactionId: string, flag: ContinuationFlag): string {
  return END_LINE_PREFIX + transactionId + flag + '\r\n';
}

/** What is needed to write a request. Paths are already-formatted header values. */
export interface RequestSpec {
  /** Drawn with {@link randomId} when omitted. */
  transactionId?: string;
  method: string;
  toPath: string;
  fromPath: string;
  /** Headers after From-Path (Message-ID, Byte-Range, ...), in order. */
  headers?: Header[];
  /** MIME headers other than Content-Type (Content-Disposition, ...), written before Content-Type. */
  mimeHeaders?: Header[];
  /** Required when `body` is not null; a body-less frame must not have one. */
  contentType?: string;
  /** null or undefined for a bodiless request; an empty buffer for an empty body. */
  body?: Buffer | string | null;
  /** End-line flag, `$` by default. */
  flag?: ContinuationFlag;
}

/** A frame cut into the parts a sender writes in turn. */
export interface FramedRequest {
  transactionId: string;
  head: Buffer;
  body: Buffer | null;
  tail: Buffer;
}

/**
 * Frames a request. When a body is given the transaction id is re-drawn until its end-line cannot occur
 * inside the body (RFC 4975 §7.1: the sender MUST make sure of this).
 */
export function frameRequest(spec: RequestSpec): FramedRequest {
  const body = spec.body === null || spec.body === undefined ? null : toBuffer(spec.body);
  let tid = spec.transactionId ?? randomId();
  if (body !== null) {
    while (body.includes('\r\n' + END_LINE_PREFIX + tid)) tid = randomId();
  }
  return {
    transactionId: tid,
    head: Buffer.from(requestHeadText(spec, tid, body !== null), 'latin1'),
    body,
    tail: Buffer.from(frameTail(tid, spec.flag ?? '$', body !== null), 'latin1'),
  };
}

/** The head of a request: start line, To-Path, From-Path, headers, MIME headers and Content-Type. */
function requestHeadText(spec: RequestSpec, tid: string, hasBody: boolean): string {
  let s = `MSRP ${tid} ${spec.method}\r\nTo-Path: ${spec.toPath}\r\nFrom-Path: ${spec.fromPath}\r\n`;
  if (spec.headers) s += headerLines(spec.headers);
  if (hasBody) {
    if (spec.mimeHeaders) s += headerLines(spec.mimeHeaders);
    s += `Content-Type: ${spec.contentType ?? 'application/octet-stream'}\r\n\r\n`;
  }
  return s;
}

/**
 * One buffer holding a whole request (tests, small frames, injected reports). A string body is written
 * as UTF-8 straight into that buffer.
 */
export function serializeRequest(spec: RequestSpec): Buffer {
  if (typeof spec.body === 'string') {
    const text = spec.body;
    let tid = spec.transactionId ?? randomId();
    // The end-line is ASCII, and UTF-8 puts no ASCII byte inside a multi-byte character: searching the
    // string is searching its octets.
    while (text.includes('\r\n' + END_LINE_PREFIX + tid)) tid = randomId();
    const head = requestHeadText(spec, tid, true);
    const tail = frameTail(tid, spec.flag ?? '$', true);
    const bodyLength = Buffer.byteLength(text, 'utf8');
    const out = Buffer.allocUnsafe(head.length + bodyLength + tail.length);
    out.write(head, 0, 'latin1');
    out.write(text, head.length, 'utf8');
    out.write(tail, head.length + bodyLength, 'latin1');
    return out;
  }
  const f = frameRequest(spec);
  return f.body === null ? Buffer.concat([f.head, f.tail]) : Buffer.concat([f.head, f.body, f.tail]);
}

/** What is needed to write a response. */
export interface ResponseSpec {
  transactionId: string;
  statusCode: number;
  /** Defaults to the standard phrase for the code. */
  comment?: string;
  toPath: string;
  fromPath: string;
  headers?: Header[];
}

/** A response: no body, end-line flag `$` (RFC 4975 §7.2). */
export function serializeResponse(spec: ResponseSpec): Buffer {
  // One string, one buffer: every SEND a relay forwards is answered with one of these.
  const comment = spec.comment ?? STATUS_PHRASES[spec.statusCode] ?? '';
  let s =
    `MSRP ${spec.transactionId} ${spec.statusCode}` +
    (comment === '' ? '' : ' ' + comment) +
    `\r\nTo-Path: ${spec.toPath}\r\nFrom-Path: ${spec.fromPath}\r\n`;
  if (spec.headers) s += headerLines(spec.headers);
  return Buffer.from(s + endLine(spec.transactionId, '$'), 'latin1');
}

/**
 * Serialises a head exactly as given: start line, header lines, and when `hasBody` the empty line that
 * opens the body. Used to forward a parsed head after rewriting its paths.
 */
export function formatHead(startLine: string, headers: readonly Header[], hasBody: boolean): Buffer {
  return Buffer.from(startLine + '\r\n' + headerLines(headers) + (hasBody ? '\r\n' : ''), 'latin1');
}

/** `Name: value` CRLF for each header, in order. */
function headerLines(headers: readonly Header[]): string {
  let s = '';
  for (let i = 0; i < headers.length; i++) s += headers[i]![0] + ': ' + headers[i]![1] + '\r\n';
  return s;
}

/** The octets after a body (or after the last header of a bodiless frame). */
export function frameTail(transactionId: string, flag: ContinuationFlag, hasBody: boolean): string {
  return (hasBody ? '\r\n' : '') + endLine(transactionId, flag);
}

/** The start line of a parsed head, with `transactionId` substituted. */
export function startLine(head: FrameHead, transactionId = head.transactionId): string {
  if (head.kind === 'request') return `MSRP ${transactionId} ${head.method}`;
  return `MSRP ${transactionId} ${head.statusCode}` + (head.comment === '' ? '' : ' ' + head.comment);
}

/** Re-serialises a collected frame (the mirror of the parser). */
export function serializeFrame(frame: Frame): Buffer {
  const head = formatHead(startLine(frame), frame.headers, frame.body !== null);
  const tail = Buffer.from(frameTail(frame.transactionId, frame.flag, frame.body !== null), 'latin1');
  return frame.body === null ? Buffer.concat([head, tail]) : Buffer.concat([head, frame.body, tail]);
}

function toBuffer(body: Buffer | string): Buffer {
  return typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
}

/** Reason phrases written when a response is built without a comment. */
export const STATUS_PHRASES: Readonly<Record<number, string>> = {
  200: 'OK',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  408: 'Request Timeout',
  413: 'Message Too Large',
  415: 'Unsupported Media Type',
  423: 'Interval Out-of-Bounds',
  481: 'Session Does Not Exist',
  501: 'Not Implemented',
  506: 'Session Already Bound',
};
