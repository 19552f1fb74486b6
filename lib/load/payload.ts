/**
 * What the sessions send and how reports are read: the size mix, message bodies cut from one shared pool
 * (so a 1 GiB message costs no 1 GiB buffer on the sending side), the message/cpim wrapper with its
 * imdn headers (RFC 3862, RFC 5438 §6), the IMDN a receiver sends with `--receiver-imdn`, and the
 * parsing of delivery reports that come back to the sender.
 */
import { randomFillSync } from 'node:crypto';
import { formatCpim, parseCpimHead } from '../reports/cpim.js';
import {
  buildDeliveryReport,
  detectReportRequest,
  parseAggregatedImdn,
  readImdn,
  type ImdnStatus,
} from '../reports/imdn.js';
import { mimeToken, payloadKind, type ReportPayloadKind } from '../reports/report-request.js';
import { bytesEqualIgnoringAsciiCase } from '../msrp/ascii.js';
import { randomId } from '../msrp/serializer.js';
import { NAMECHAR, readReportPayload } from '../reports/report-scan.js';
import type { ReportDialect, RequestedReport, SizeWeight } from './options.js';

/**
 * Picks sizes from a weighted mix by smooth weighted round-robin: over any `sum(weights)` consecutive
 * picks each size comes up in proportion to its weight, exactly, and the sizes are interleaved.
 */
export class SizePicker {
  private readonly sizes: number[];
  private readonly weights: number[];
  private readonly current: number[];
  private readonly total: number;

  constructor(mix: readonly SizeWeight[]) {
    this.sizes = mix.map((m) => m.bytes);
    this.weights = mix.map((m) => m.weight);
    this.current = mix.map(() => 0);
    this.total = this.weights.reduce((a, b) => a + b, 0);
  }

  /** The next size, bytes. */
  next(): number {
    let best = 0;
    for (let i = 0; i < this.sizes.length; i++) {
      this.current[i]! += this.weights[i]!;
      if (this.current[i]! > this.current[best]!) best = i;
    }
    this.current[best]! -= this.total;
    return this.sizes[best]!;
  }
}

/** A message body that is never materialised whole: chunks are views of a head and a repeating pool. */
export interface MessageBody {
  readonly length: number;
  /** Octets `[start, end)` (0-based); a view where possible, a copy only across a seam. */
  slice(start: number, end: number): Buffer;
}

/** Size of the shared random pool bodies are cut from. */
const POOL_BYTES = 1024 * 1024;

class PooledBody implements MessageBody {
  readonly length: number;

  constructor(
    private readonly pool: Buffer,
    private readonly head: Buffer,
    payloadBytes: number,
    private readonly offset: number,
  ) {
    this.length = head.length + payloadBytes;
  }

  slice(start: number, end: number): Buffer {
    const h = this.head.length;
    const parts: Buffer[] = [];
    if (start < h) parts.push(this.head.subarray(start, Math.min(end, h)));
    let p = Math.max(0, start - h);
    const pEnd = end - h;
    while (p < pEnd) {
      const at = (this.offset + p) % this.pool.length;
      const n = Math.min(pEnd - p, this.pool.length - at);
      parts.push(this.pool.subarray(at, at + n));
      p += n;
    }
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }
}

/** Cuts message bodies from one pool of random lower-case letters (no CR/LF, so no end-line in a body). */
export class PayloadSource {
  private readonly pool: Buffer;

  constructor(poolBytes = POOL_BYTES) {
    this.pool = randomFillSync(Buffer.alloc(poolBytes));
    for (let i = 0; i < this.pool.length; i++) this.pool[i] = 0x61 + (this.pool[i]! % 26);
  }

  /** A body of `head` followed by `payloadBytes` pool octets starting at a random offset. */
  body(payloadBytes: number, head: Buffer = EMPTY): MessageBody {
    const offset = Math.floor(Math.random() * this.pool.length);
    return new PooledBody(this.pool, head, payloadBytes, offset);
  }
}

const EMPTY = Buffer.alloc(0);
/** Octets of an IM searched for its CPIM head. */
const CPIM_HEAD_LIMIT = 16 * 1024;
/** Content-Type of the CPIM-wrapped payload. */
export const INNER_CONTENT_TYPE = 'text/plain';

/** What the CPIM head of one message says. */
export interface CpimHeadSpec {
  /** CPIM From / To URIs (`sip:alice@example.com`). */
  from: string;
  to: string;
  /** imdn.Message-ID (RFC 5438 §6.3). */
  imdnId: string;
  /** Reports to request; none: no imdn.Disposition-Notification. */
  reports: readonly RequestedReport[];
  /**
   * `legacy`: the draft-khartabil-simple-im-report form, `Message-ID` and `Receipt-Request` without a
   * namespace (digest §6), instead of RFC 5438's. Default `imdn`.
   */
  dialect?: ReportDialect;
  /** DateTime value (default: now, ISO 8601). */
  dateTime?: string;
}

/** The CPIM message headers, blank line, content headers and blank line that precede the payload. */
export function cpimHead(spec: CpimHeadSpec): Buffer {
  const headers: Array<[string, string]> = [
    ['From', `<${spec.from}>`],
    ['To', `<${spec.to}>`],
    ['DateTime', spec.dateTime ?? new Date().toISOString()],
  ];
  const requested = spec.reports.join(', ');
  if (spec.dialect === 'legacy') {
    headers.push(['Message-ID', spec.imdnId]);
    if (spec.reports.length > 0) headers.push(['Receipt-Request', requested]);
  } else {
    headers.push(['NS', 'imdn <urn:ietf:params:imdn>'], ['imdn.Message-ID', spec.imdnId]);
    if (spec.reports.length > 0) headers.push(['imdn.Disposition-Notification', requested]);
  }
  return formatCpim({ headers, contentHeaders: [['Content-Type', INNER_CONTENT_TYPE]], body: EMPTY });
}

/** Ids the template writes as they are: characters {@link formatCpim} never escapes. */
const PLAIN_ID = /^[A-Za-z0-9._~-]+$/;
/** Stand-ins {@link CpimHeadTemplate} cuts the head at (letters and digits: written unescaped). */
const DATE_MARK = 'D8q2Zx7Date4Mark';
const ID_MARK = 'I3v9Kp1Id6Mark';

/**
 * The CPIM heads of one session's IMs: built once with {@link cpimHead}, then only DateTime and the
 * imdn.Message-ID change per IM, so each head is three copies and two short writes (the load tester
 * makes one per message). An id with other characters, or a head the cut does not fit, is built whole.
 */
export class CpimHeadTemplate {
  private readonly parts: [Buffer, Buffer, Buffer] | null;
  private lastMs = -1;
  private lastDate = '';

  constructor(private readonly spec: Omit<CpimHeadSpec, 'imdnId' | 'dateTime'>) {
    const whole = cpimHead({ ...spec, imdnId: ID_MARK, dateTime: DATE_MARK }).toString('latin1');
    const d = whole.indexOf(DATE_MARK);
    const i = whole.indexOf(ID_MARK);
    const once =
      d !== -1 && i > d && whole.indexOf(DATE_MARK, d + 1) === -1 && whole.indexOf(ID_MARK, i + 1) === -1;
    this.parts = once
      ? [
          Buffer.from(whole.slice(0, d), 'latin1'),
          Buffer.from(whole.slice(d + DATE_MARK.length, i), 'latin1'),
          Buffer.from(whole.slice(i + ID_MARK.length), 'latin1'),
        ]
      : null;
  }

  /** The head of an IM whose imdn.Message-ID is `imdnId`, dated now. */
  head(imdnId: string, now = Date.now()): Buffer {
    if (now !== this.lastMs) {
      this.lastMs = now;
      this.lastDate = new Date(now).toISOString();
    }
    const p = this.parts;
    if (p === null || !PLAIN_ID.test(imdnId))
      return cpimHead({ ...this.spec, imdnId, dateTime: this.lastDate });
    const [a, b, c] = p;
    const out = Buffer.allocUnsafe(a.length + this.lastDate.length + b.length + imdnId.length + c.length);
    let o = a.copy(out, 0);
    o += out.write(this.lastDate, o, 'latin1');
    o += b.copy(out, o);
    o += out.write(imdnId, o, 'latin1');
    c.copy(out, o);
    return out;
  }
}

/** One delivery report found in a message that reached the sender. */
export interface IncomingReport {
  /** The imdn.Message-ID of the IM it is about. */
  imdnId: string;
  status: ImdnStatus;
}

/**
 * The delivery reports a message carries: an RFC 5438 IMDN, an aggregate of them, or a legacy status
 * report, inside message/cpim. Returns null for anything else (an IM, unparsable CPIM or XML).
 */
export function readReports(contentType: string | undefined, body: Buffer): IncomingReport[] | null {
  if (mimeToken(contentType) !== 'message/cpim') return null;
  try {
    // The plain heads relays and endpoints write are read in place; anything else by the CPIM parser.
    const plain = plainReportPayload(body);
    const found = plain === null ? readReportPayload(body) : plain;
    if (found === null || found === 'incomplete' || found === 'im') return null;
    const payload = body.subarray(found.bodyOffset);
    const docs =
      found.kind === 'aggregate' ? parseAggregatedImdn(found.contentType, payload) : [readImdn(payload)];
    const out: IncomingReport[] = [];
    for (const d of docs)
      if (d.notification === 'delivery') out.push({ imdnId: d.messageId, status: d.status });
    return out;
  } catch {
    return null;
  }
}

/**
 * Where the payload of a report in the plain shape relays write starts, without the CPIM scan: a CPIM
 * head of `Name: value` lines, a blank line, MIME header lines (Content-Type, Content-Disposition, ...)
 * without folding, a blank line (RFC 3862 §3.1); one pass over the octets. Null for anything else (the
 * caller then scans the head properly), or `'im'` for a plain message whose MIME type carries no report.
 * The load tester reads one report per message at full rate, and this is most of what the scan cost it.
 * @internal Exported for tests.
 */
export function plainReportPayload(
  body: Buffer,
): { kind: ReportPayloadKind; bodyOffset: number; contentType: string } | 'im' | null {
  let lineStart = 0;
  let colon = -1;
  let inMime = false;
  let mimeStart = -1;
  let contentType: string | undefined;
  let disposition: string | undefined;
  let dot = -1;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    // Octets past ASCII are decoded as UTF-8 by the scan: such a head is its to read.
    if (c >= 0x80) return null;
    if (c !== 0x0a) {
      if (colon !== -1) continue;
      if (c === 0x3a) colon = i;
      // RFC 3862 §3.1, §3.6: a CPIM name is `[prefix.]Name` of NAMECHARs (a MIME name has no prefix);
      // a CR only as the blank line's. Anything else is left to the scan.
      else if (c === 0x2e && dot === -1 && !inMime) dot = i;
      else if (NAMECHAR[c] !== 1 && !(c === 0x0d && i === lineStart && body[i + 1] === 0x0a)) return null;
      continue;
    }
    if (body[i - 1] !== 0x0d) return null; // bare LF: the scan decides
    if (i === lineStart + 1) {
      // A blank line: the end of the CPIM head, then of the MIME head. Neither may be empty.
      if (lineStart === 0 || lineStart === mimeStart) return null;
      if (!inMime) {
        inMime = true;
        lineStart = mimeStart = i + 1;
        colon = -1;
        dot = -1;
        continue;
      }
      const kind = payloadKind(contentType, disposition);
      return kind === null ? 'im' : { kind, bodyOffset: i + 1, contentType: contentType ?? '' };
    }
    // `Name: value`: a name, a colon, a space, a value.
    if (colon <= lineStart || colon + 2 >= i || body[colon + 1] !== 0x20) return null;
    if (dot === lineStart || dot === colon - 1) return null; // an empty prefix or name
    if (inMime) {
      if (contentType === undefined && bytesEqualIgnoringAsciiCase(body, lineStart, colon, 'Content-Type'))
        contentType = body.toString('latin1', colon + 2, i - 1).trim();
      else if (
        disposition === undefined &&
        bytesEqualIgnoringAsciiCase(body, lineStart, colon, 'Content-Disposition')
      )
        disposition = body.toString('latin1', colon + 2, i - 1).trim();
    }
    lineStart = i + 1;
    colon = -1;
    dot = -1;
  }
  return null;
}

/**
 * The IMDN a receiving endpoint sends for an IM it got (`--receiver-imdn`): a `delivered` notification
 * when the IM asked for positive-delivery, else null. The body is a complete message/cpim.
 */
export function receiverImdn(contentType: string | undefined, body: Buffer): Buffer | null {
  if (mimeToken(contentType) !== 'message/cpim') return null;
  try {
    // Only the head matters here; a large IM is not scanned past its first octets.
    const head = parseCpimHead(body.subarray(0, CPIM_HEAD_LIMIT), { lenient: true });
    if (head === 'incomplete') return null;
    const req = detectReportRequest(head);
    if (req === null || !req.kinds.has('positive-delivery')) return null;
    return buildDeliveryReport(req, 'delivered', { now: new Date(), messageId: randomId(16) }).body;
  } catch {
    return null;
  }
}
