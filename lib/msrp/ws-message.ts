/**
 * The frame boundary of one WebSocket message (RFC 7977 §5.1: exactly one MSRP frame per message).
 * {@link classifyWsMessage} tells, before anything of the message is acted on, whether it holds one
 * whole frame, less, or more; {@link firstFrameHead} reads the head of its first frame so that a refused
 * message can still be answered. Both follow the parser's framing rules (RFC 4975 §7.1, digest §1.4):
 * a frame ends at the first `CRLF -------<transaction-id>` followed by `+`, `$` or `#` and CRLF.
 */
import { CR, END_LINE_PREFIX, LF } from '../constants.js';
import type { MsrpError } from '../errors.js';
import type { FrameHead } from './message.js';
import { MsrpParser, type ErrorContext, type ParserHandler } from './parser.js';

/**
 * What a WebSocket message holds: `one` whole frame; a `partial` frame (its end-line is missing); or
 * `several` (bytes follow the first frame's end-line); `unframed` when it does not start with an MSRP
 * start line at all (the parser then reports the malformation itself).
 */
export type WsMessageShape = 'one' | 'partial' | 'several' | 'unframed';

const MSRP_PREFIX = Buffer.from('MSRP ', 'latin1');

function isFlag(c: number | undefined): boolean {
  return c === 0x2b || c === 0x24 || c === 0x23;
}

/** Skips CRLF / LF pairs, as the parser tolerates blank lines between frames. */
function skipBlankLines(buf: Buffer, pos: number): number {
  for (;;) {
    if (buf[pos] === LF) pos += 1;
    else if (buf[pos] === CR && buf[pos + 1] === LF) pos += 2;
    else return pos;
  }
}

/** Classifies one WebSocket message by its MSRP frame boundaries; see {@link WsMessageShape}. */
export function classifyWsMessage(message: Buffer): WsMessageShape {
  const start = skipBlankLines(message, 0);
  if (start === message.length) return 'partial';
  const lf = message.indexOf(LF, start);
  if (lf === -1) return 'partial';
  if (message.compare(MSRP_PREFIX, 0, 5, start, Math.min(start + 5, lf)) !== 0) return 'unframed';
  const sp = message.indexOf(0x20, start + 5);
  if (sp === -1 || sp > lf || sp - (start + 5) < 4 || sp - (start + 5) > 32) return 'unframed';
  const needle = Buffer.concat([
    Buffer.from('\r\n' + END_LINE_PREFIX, 'latin1'),
    message.subarray(start + 5, sp),
  ]);
  const n = needle.length;
  // The start line's own CRLF may begin the end-line (a bodiless frame without headers).
  let from = lf - 1;
  for (;;) {
    const idx = message.indexOf(needle, from);
    if (idx === -1 || idx + n + 3 > message.length) return 'partial';
    if (isFlag(message[idx + n]) && message[idx + n + 1] === CR && message[idx + n + 2] === LF) {
      return skipBlankLines(message, idx + n + 3) === message.length ? 'one' : 'several';
    }
    from = idx + 1; // a look-alike inside the body
  }
}

/**
 * The head of the message's first frame as far as it can be read (enough to answer it), or null when
 * not even its start line and paths are there. Runs a throwaway parser: only for refused messages.
 */
export function firstFrameHead(message: Buffer): ErrorContext | null {
  let found: ErrorContext | null = null;
  const handler: ParserHandler = {
    onHead(head: FrameHead): void {
      found ??= {
        transactionId: head.transactionId,
        method: head.kind === 'request' ? head.method : undefined,
        headers: head.headers,
        headEmitted: true,
      };
    },
    onBody(): void {},
    onEnd(): void {},
    onError(_err: MsrpError, context: ErrorContext | null): void {
      found ??= context;
    },
  };
  new MsrpParser(handler).write(message);
  return found;
}
