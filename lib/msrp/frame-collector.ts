/**
 * Collects whole frames out of an {@link MsrpParser}: heads with their bodies joined. For the client,
 * tests and small non-SEND requests; the relay itself streams bodies instead.
 */
import type { ContinuationFlag } from '../constants.js';
import type { MsrpError } from '../errors.js';
import type { Frame, FrameHead } from './message.js';
import { MsrpParser, type ErrorContext, type ParserHandler, type ParserOptions } from './parser.js';

/** A parse error with the context the parser gave. */
export interface CollectedError {
  error: MsrpError;
  context: ErrorContext | null;
}

/** Parser handler that turns the event stream into {@link Frame} objects. */
export class FrameCollector implements ParserHandler {
  private head: FrameHead | null = null;
  private pieces: Buffer[] = [];
  private readonly onFrame: (frame: Frame) => void;
  private readonly onFail: (e: CollectedError) => void;

  constructor(onFrame: (frame: Frame) => void, onError: (e: CollectedError) => void) {
    this.onFrame = onFrame;
    this.onFail = onError;
  }

  onHead(head: FrameHead): void {
    this.head = head;
    this.pieces.length = 0;
  }

  onBody(piece: Buffer): void {
    // A view is enough: the parser's input buffers are not reused (socket reads are fresh buffers and
    // the parser copies what it holds back), so the body is copied once, in onEnd, or not at all.
    this.pieces.push(piece);
  }

  onEnd(flag: ContinuationFlag): void {
    const head = this.head!;
    this.head = null;
    const body = !head.hasBody
      ? null
      : this.pieces.length === 1
        ? this.pieces[0]!
        : Buffer.concat(this.pieces);
    this.pieces.length = 0;
    // The head is the parser's fresh object for this frame only: completed in place, not copied.
    const frame = head as FrameHead & { body: Buffer | null; flag: ContinuationFlag };
    frame.body = body;
    frame.flag = flag;
    this.onFrame(frame);
  }

  onError(error: MsrpError, context: ErrorContext | null): void {
    this.head = null;
    this.pieces.length = 0;
    this.onFail({ error, context });
  }
}

/** Parses a complete byte sequence (given whole or in pieces) into frames and errors. */
export function parseFrames(
  input: Buffer | readonly Buffer[],
  options?: ParserOptions,
): { frames: Frame[]; errors: CollectedError[] } {
  const frames: Frame[] = [];
  const errors: CollectedError[] = [];
  const parser = new MsrpParser(
    new FrameCollector(
      (f) => frames.push(f),
      (e) => errors.push(e),
    ),
    options,
  );
  for (const b of Buffer.isBuffer(input) ? [input] : input) parser.write(b);
  return { frames, errors };
}
