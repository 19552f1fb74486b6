/**
 * Drives a {@link MessageTracker} the way the relay does: a chunk's head (`begin`), its body in pieces
 * (`data`), its end-line (`end`). Shared by spec/reports/tracker.spec.ts and policy.spec.ts.
 */
import type { ContinuationFlag } from '../../lib/constants.js';
import { parseByteRange } from '../../lib/msrp/headers.js';
import type { MessageTracker, TrackedChunk } from '../../lib/reports/tracker.js';

/** One incoming chunk: its Byte-Range header value (null: none), body, end-line flag. */
export interface ChunkSpec {
  range: string | null;
  body: Buffer | string;
  flag: ContinuationFlag;
  /** Sizes of the body pieces handed to `data`; the rest goes in one last piece. Default: one piece. */
  pieces?: number[];
}

/** Begins a chunk and feeds its whole body, without ending it. */
export function openChunk<O, M>(
  tracker: MessageTracker<O, M>,
  owner: O,
  sessionKey: string,
  messageId: string,
  meta: M,
  spec: ChunkSpec,
): TrackedChunk<O, M> | null {
  const chunk = tracker.begin(
    owner,
    sessionKey,
    messageId,
    spec.range === null ? null : parseByteRange(spec.range),
    meta,
  );
  if (chunk === null) return null;
  const body = typeof spec.body === 'string' ? Buffer.from(spec.body, 'utf8') : spec.body;
  let at = 0;
  for (const size of spec.pieces ?? []) {
    tracker.data(chunk, body.subarray(at, at + size));
    at += size;
  }
  if (at < body.length) tracker.data(chunk, body.subarray(at));
  return chunk;
}

/** Begins, feeds and ends a chunk; returns its handle (null when not tracked). */
export function feedChunk<O, M>(
  tracker: MessageTracker<O, M>,
  owner: O,
  sessionKey: string,
  messageId: string,
  meta: M,
  spec: ChunkSpec,
): TrackedChunk<O, M> | null {
  const chunk = openChunk(tracker, owner, sessionKey, messageId, meta, spec);
  if (chunk !== null) tracker.end(chunk, spec.flag);
  return chunk;
}

/** Splits `body` into chunk specs of `size` octets with exact Byte-Ranges, the last one `$`. */
export function chunksOf(body: Buffer | string, size: number): ChunkSpec[] {
  const buf = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const out: ChunkSpec[] = [];
  for (let at = 0; at < buf.length; at += size) {
    const end = Math.min(buf.length, at + size);
    out.push({
      range: `${at + 1}-${end}/${buf.length}`,
      body: buf.subarray(at, end),
      flag: end === buf.length ? '$' : '+',
    });
  }
  return out;
}
