/**
 * Shapes of parsed MSRP frames. Headers are kept as an ordered list of `[name, value]` pairs exactly as
 * received (names in their original case, values as latin1 "binary strings" so that re-serialising them
 * gives back the same octets); typed values are parsed lazily by lib/msrp/headers.ts.
 */
import type { ContinuationFlag } from '../constants.js';
import { equalsIgnoringAsciiCase } from './ascii.js';

/** One header line: the name as it appeared and the value after `: `. */
export type Header = [name: string, value: string];

/** The start line and headers of a request; the body follows as `onBody` pieces. */
export interface RequestHead {
  readonly kind: 'request';
  /** Transaction id from the start line (RFC 4975 `ident`). */
  readonly transactionId: string;
  /** Method in upper case: `SEND`, `REPORT`, `AUTH` or an extension. */
  readonly method: string;
  /** All header lines in wire order, To-Path and From-Path first. */
  readonly headers: Header[];
  /** True when a Content-Type and an empty line announced a body (possibly zero octets). */
  readonly hasBody: boolean;
}

/** The start line and headers of a response (responses never carry a body). */
export interface ResponseHead {
  readonly kind: 'response';
  readonly transactionId: string;
  /** Three-digit status code. */
  readonly statusCode: number;
  /** The comment after the code, '' when absent. */
  readonly comment: string;
  readonly headers: Header[];
  readonly hasBody: false;
}

/** A request or response head. */
export type FrameHead = RequestHead | ResponseHead;

/** A whole frame with its body collected; used by tests, the client and small non-SEND requests. */
export type Frame = FrameHead & {
  /** Body octets, or null when the frame has no body. */
  readonly body: Buffer | null;
  /** The end-line continuation flag. */
  readonly flag: ContinuationFlag;
};

/** Value of the first header named `name` (case-insensitive), or undefined. */
export function getHeader(headers: readonly Header[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i]!;
    if (equalsIgnoringAsciiCase(h[0], name)) return h[1];
  }
  return undefined;
}

/** Values of every header named `name` (case-insensitive), in order. */
export function getHeaders(headers: readonly Header[], name: string): string[] {
  const out: string[] = [];
  for (const h of headers) if (equalsIgnoringAsciiCase(h[0], name)) out.push(h[1]);
  return out;
}
