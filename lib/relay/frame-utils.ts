/**
 * Small helpers over a forwarded frame's head: header lookup, the Failure-Report value, the path
 * rewrite, and the size a head takes on the wire (what a WebSocket message must leave room for).
 */
import { getHeader, type Header, type RequestHead } from '../msrp/message.js';
import { parseByteRange, parseFailureReport, type ByteRange } from '../msrp/headers.js';
import { equalsIgnoringAsciiCase } from '../msrp/ascii.js';

/** Octets of a WebSocket message kept for a forwarded chunk's head and end-line, at most. */
export const WS_HEAD_ROOM = 4096;

/**
 * Upper bound of the octets a forwarded chunk's head and end-line take besides its headers: start line
 * with a 32-character transaction id, blank line, end-line, and a Byte-Range rewritten to exact values.
 */
export const HEAD_OVERHEAD = 200;

/** Bytes a head with these headers takes on the wire, with margin (see {@link HEAD_OVERHEAD}). */
export function headBytes(headers: readonly Header[]): number {
  let n = HEAD_OVERHEAD;
  for (const [name, value] of headers) n += name.length + value.length + 4;
  return n;
}

/** Octets of a frame (or a body) given as parts. */
export function partsBytes(parts: readonly Buffer[]): number {
  let n = 0;
  for (const p of parts) n += p.length;
  return n;
}

/** Index of the first header named `lower` (lower case) after To-Path and From-Path, or -1. */
export function findHeader(headers: readonly Header[], lower: string): number {
  for (let i = 2; i < headers.length; i++) if (equalsIgnoringAsciiCase(headers[i]![0], lower)) return i;
  return -1;
}

/** The request's Failure-Report value; `yes` when absent or unreadable. */
export function failureReportOf(head: RequestHead): 'yes' | 'no' | 'partial' {
  try {
    return parseFailureReport(getHeader(head.headers, 'failure-report'));
  } catch {
    return 'yes';
  }
}

/**
 * The request's Byte-Range header (at `index`, found when not given): null when it has none, `bad` when
 * it does not parse (RFC 4975 §9).
 */
export function readByteRange(
  head: RequestHead,
  index = findHeader(head.headers, 'byte-range'),
): ByteRange | null | 'bad' {
  if (index < 0) return null;
  try {
    return parseByteRange(head.headers[index]![1]);
  } catch {
    return 'bad';
  }
}

/**
 * The request's Byte-Range for a failure REPORT, or `fallback` when it has none or it does not parse
 * (the REPORT still names the message).
 */
export function byteRangeOf(head: RequestHead, fallback: ByteRange): ByteRange {
  const range = readByteRange(head);
  return range === null || range === 'bad' ? fallback : range;
}

/** The headers with To-Path and From-Path replaced (they are always the first two). */
export function rewritePaths(headers: readonly Header[], toPath: string, fromPath: string): Header[] {
  const out = headers.slice();
  out[0] = [headers[0]![0], toPath];
  out[1] = [headers[1]![0], fromPath];
  return out;
}
