/**
 * The SEND the relay injects as a report (DESIGN.md "The injected SEND"), built two ways that give the same
 * octets. {@link reportFrame} writes it from scratch: the CPIM report text, then the MSRP frame around it.
 * {@link ReportFrames} keeps, per recipient session, that same frame cut around its per-message parts —
 * transaction id, Message-ID, Byte-Range, DateTime, the report's imdn.Message-ID and the IM's message-id and
 * datetime it echoes — so the next report of the session is one buffer filled from constant bytes and a few
 * short ASCII values. A template is made by {@link reportFrame} itself, fed random marker values that are then
 * found and cut out: the two ways cannot drift apart.
 *
 * ```
 *  first report of a session:  reportFrame(markers) ─► find markers ─► constant bytes + slots ─► cache
 *  every report:               cache hit, same paths/From/To/routes/outcome ─► fill slots ─► Buffer
 *                              anything else (non-ASCII or XML-special echo) ─► reportFrame
 * ```
 */
import type { MsrpError } from '../errors.js';
import { END_LINE_PREFIX } from '../constants.js';
import { frameTail, randomId, serializeRequest } from '../msrp/serializer.js';
import { cpimDateTime, deliveryReportText } from './imdn.js';
import type { ReportRequest } from './report-request.js';

/** What a report says: the outcome of the IM it is about. */
export type ReportOutcomeKind = 'delivered' | 'failed' | 'processed';

/** Everything a report depends on besides the clock and its fresh identifiers. */
export interface ReportFrameInput {
  req: ReportRequest;
  outcome: ReportOutcomeKind;
  /** The recipient's failure code of a `failed` report (legacy `<status>`). */
  failureCode?: number;
  /** The report's To-Path: the IM's From-Path as it reached this relay, trimmed. */
  toPath: string;
  /** The report's From-Path: the IM's To-Path as it reached this relay, trimmed. */
  fromPath: string;
}

/**
 * The injected SEND from scratch. Identifiers are drawn from `newId` in a fixed order: the report's
 * imdn.Message-ID, the transaction id, the MSRP Message-ID. Throws an `MsrpError` when the IM lacks what
 * the report must echo, or echoes a value XML cannot carry.
 */
export function reportFrame(input: ReportFrameInput, now: number, newId: () => string): Buffer {
  return frame(input, now, newId, undefined, undefined);
}

function frame(
  input: ReportFrameInput,
  now: number,
  newId: () => string,
  dateTimeText: string | undefined,
  byteRange: string | undefined,
): Buffer {
  const body = deliveryReportText(input.req, input.outcome, {
    now: new Date(now),
    messageId: newId(),
    failureCode: input.failureCode,
    dateTimeText,
  });
  const transactionId = newId();
  const length = Buffer.byteLength(body, 'utf8');
  return serializeRequest({
    transactionId,
    method: 'SEND',
    toPath: input.toPath,
    fromPath: input.fromPath,
    headers: [
      ['Message-ID', newId()],
      ['Failure-Report', 'no'],
      ['Success-Report', 'no'],
      ['Byte-Range', byteRange ?? `1-${length}/${length}`],
    ],
    contentType: 'message/cpim',
    body,
  });
}

/** What starts an end-line: CRLF and the seven dashes. */
const END_LINE_START = '\r\n' + END_LINE_PREFIX;

/** The per-message parts of a report, as template slots. */
const IMDN_ID = 0;
const TRANSACTION_ID = 1;
const MESSAGE_ID = 2;
const BYTE_RANGE = 3;
const DATE_TIME = 4;
const IM_MESSAGE_ID = 5;
const IM_DATE_TIME = 6;
const SLOTS = 7;

/**
 * True when `s` is written as it is in every place a report echoes it (CPIM value, XML text, MSRP head)
 * and is one byte per character: printable ASCII without `&`, `<`, `>`. A value with a line end could make
 * the body hold an end-line; one with anything else goes the scratch way.
 */
function plain(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x26 || c === 0x3c || c === 0x3e) return false;
  }
  return true;
}

/**
 * True for an identifier written the same in every place (CPIM escapes only controls and the backslash):
 * {@link randomId}'s always are; the option to give others exists for tests.
 */
function plainId(s: string): boolean {
  return s !== '' && plain(s) && !s.includes('\\');
}

/** One session's report frame with its per-message parts cut out. */
class ReportTemplate {
  /** The constant octets between the slots (views of one buffer): one more than {@link slots}. */
  private readonly parts: Buffer[];
  /** Their total length. */
  private readonly constBytes: number;
  /** The slot filled after each part, in order. */
  private readonly slots: number[];
  /** Whether each cut lies in the body (its value counts in Byte-Range). */
  private readonly inBody: boolean[];
  /** Constant octets of the body. */
  private readonly bodyBytes: number;
  private readonly values: string[] = new Array<string>(SLOTS).fill('');

  private constructor(
    readonly input: ReportFrameInput,
    bytes: Buffer,
    cuts: number[],
    slots: number[],
    inBody: boolean[],
    bodyBytes: number,
  ) {
    // Parts are written with TypedArray#set: Buffer#copy makes a view object per call.
    this.parts = [];
    let from = 0;
    for (const cut of cuts) {
      this.parts.push(bytes.subarray(from, cut));
      from = cut;
    }
    this.parts.push(bytes.subarray(from));
    this.constBytes = bytes.length;
    this.slots = slots;
    this.inBody = inBody;
    this.bodyBytes = bodyBytes;
  }

  /** The template of `input`'s reports; null when the scratch builder refuses them. */
  static make(input: ReportFrameInput): ReportTemplate | null {
    const markers: string[] = [];
    for (let i = 0; i < SLOTS; i++) markers.push(randomId(24));
    const req: ReportRequest = { ...input.req, messageId: markers[IM_MESSAGE_ID]! };
    if (req.dateTime !== undefined) req.dateTime = markers[IM_DATE_TIME]!;
    let ids = 0;
    const order = [IMDN_ID, TRANSACTION_ID, MESSAGE_ID];
    let whole: Buffer;
    try {
      whole = frame(
        { ...input, req },
        0,
        () => markers[order[ids++]!]!,
        markers[DATE_TIME],
        markers[BYTE_RANGE],
      );
    } catch (err) {
      if ((err as MsrpError).code === undefined) throw err;
      return null;
    }
    const found: Array<[at: number, slot: number]> = [];
    markers.forEach((marker, slot) => {
      for (let at = whole.indexOf(marker); at !== -1; at = whole.indexOf(marker, at + marker.length)) {
        found.push([at, slot]);
      }
    });
    found.sort((a, b) => a[0] - b[0]);
    // serializeRequest: the head up to its blank line, the body, then the frame's tail (CRLF, end-line).
    const bodyStart = whole.indexOf('\r\n\r\n') + 4;
    const bodyEnd = whole.length - frameTail(markers[TRANSACTION_ID]!, '$', true).length;
    // RFC 4975 §7.1: the scratch builder re-draws a transaction id whose end-line occurs in the body. The
    // slot values hold no CR or LF, so only the constant octets could start one (an echoed value with a
    // raw line end): such a request is built from scratch each time.
    if (whole.indexOf(END_LINE_START) !== bodyEnd) return null;
    const parts: Buffer[] = [];
    const cuts: number[] = [];
    const slots: number[] = [];
    const inBody: boolean[] = [];
    let from = 0;
    let kept = 0;
    let bodyBytes = bodyEnd - bodyStart;
    for (const [at, slot] of found) {
      parts.push(whole.subarray(from, at));
      kept += at - from;
      cuts.push(kept);
      slots.push(slot);
      const body = at >= bodyStart && at < bodyEnd;
      inBody.push(body);
      if (body) bodyBytes -= markers[slot]!.length;
      from = at + markers[slot]!.length;
    }
    parts.push(whole.subarray(from));
    return new ReportTemplate(input, Buffer.concat(parts), cuts, slots, inBody, bodyBytes);
  }

  /** True when `input` gives reports of the same constant octets. */
  fits(input: ReportFrameInput): boolean {
    const a = this.input;
    const r = a.req;
    const s = input.req;
    if (
      a.outcome !== input.outcome ||
      // Only the legacy failed report writes the failure code (its <status>).
      (a.failureCode !== input.failureCode && s.dialect === 'legacy' && input.outcome === 'failed') ||
      a.toPath !== input.toPath ||
      a.fromPath !== input.fromPath ||
      r.dialect !== s.dialect ||
      r.from !== s.from ||
      r.to !== s.to ||
      r.originalTo !== s.originalTo ||
      (r.dateTime === undefined) !== (s.dateTime === undefined) ||
      r.recordRoutes.length !== s.recordRoutes.length
    ) {
      return false;
    }
    for (let i = 0; i < r.recordRoutes.length; i++) if (r.recordRoutes[i] !== s.recordRoutes[i]) return false;
    return true;
  }

  /**
   * The report for `req` (which {@link fits} and whose echoed values are {@link plain}); null when an
   * identifier `newId` gave is not one the scratch builder writes as it is (then `drawn` holds the three).
   */
  render(req: ReportRequest, now: number, newId: () => string, drawn: string[]): Buffer | null {
    const v = this.values;
    v[IMDN_ID] = newId();
    v[TRANSACTION_ID] = newId();
    v[MESSAGE_ID] = newId();
    if (!plainId(v[IMDN_ID]) || !plainId(v[TRANSACTION_ID]) || !plainId(v[MESSAGE_ID])) {
      drawn.push(v[IMDN_ID], v[TRANSACTION_ID], v[MESSAGE_ID]);
      return null;
    }
    v[DATE_TIME] = cpimDateTime(now);
    v[IM_MESSAGE_ID] = req.messageId;
    v[IM_DATE_TIME] = req.dateTime ?? '';
    v[BYTE_RANGE] = '';
    const { parts, slots, inBody } = this;
    let body = this.bodyBytes;
    for (let k = 0; k < slots.length; k++) if (inBody[k]) body += v[slots[k]!]!.length;
    v[BYTE_RANGE] = `1-${body}/${body}`;
    let total = this.constBytes;
    for (let k = 0; k < slots.length; k++) total += v[slots[k]!]!.length;
    const out = Buffer.allocUnsafe(total);
    let at = 0;
    for (let k = 0; k < slots.length; k++) {
      const part = parts[k]!;
      out.set(part, at);
      at += part.length;
      // Short ASCII values: a loop beats a native write call per value.
      const value = v[slots[k]!]!;
      for (let c = 0; c < value.length; c++) out[at++] = value.charCodeAt(c);
    }
    out.set(parts[slots.length]!, at);
    return out;
  }
}

/** Index of each outcome in a session's templates. */
const OUTCOME_INDEX: Record<ReportOutcomeKind, number> = { delivered: 0, failed: 1, processed: 2 };

/**
 * Report frames by recipient session: a template per session and outcome (an IM may get `processed`, then
 * `delivered`), remade when a report differs in a constant part, all dropped when `max` sessions are held.
 * {@link build} gives the same octets as {@link reportFrame} (spec/reports/report-frame.spec.ts compares
 * them).
 */
export class ReportFrames {
  private readonly templates = new Map<string, Array<ReportTemplate | undefined>>();
  /** @internal Templates made so far (tests). */
  made = 0;

  constructor(private readonly max: number) {}

  /** The report of `input` in session `sessionKey`; throws as {@link reportFrame} does. */
  build(sessionKey: string, input: ReportFrameInput, now: number, newId: () => string): Buffer {
    const req = input.req;
    // Only what the template writes as it is: the scratch builder escapes, refuses or re-draws the rest.
    if (!plain(req.messageId) || (req.dateTime !== undefined && !plain(req.dateTime))) {
      return reportFrame(input, now, newId);
    }
    let session = this.templates.get(sessionKey);
    const k = OUTCOME_INDEX[input.outcome];
    let t = session?.[k];
    if (t === undefined || !t.fits(input)) {
      // No template for a request the scratch builder refuses, or whose constant octets could start an
      // end-line: it is built from scratch (and refused and counted) each time.
      const made = ReportTemplate.make(input);
      if (made === null) return reportFrame(input, now, newId);
      this.made++;
      if (session === undefined) {
        if (this.templates.size >= this.max) this.templates.clear();
        session = [];
        this.templates.set(sessionKey, session);
      }
      session[k] = made;
      t = made;
    }
    const drawn: string[] = [];
    const frame = t.render(req, now, newId, drawn);
    if (frame !== null) return frame;
    let i = 0;
    return reportFrame(input, now, () => (i < drawn.length ? drawn[i++]! : newId()));
  }
}
