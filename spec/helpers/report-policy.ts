/**
 * A report policy and tracker as the relay next to Bob drives them, with the digest's IMs and IMDNs
 * (E5.1, E5.2, §6.5): shared by spec/reports/policy.spec.ts and mutation-gaps.spec.ts.
 */
import {
  ReportPolicy,
  type ReportMeta,
  type ReportOutcome,
  type ReportPolicyOptions,
} from '../../lib/reports/policy.js';
import { MessageTracker, type TrackedMessage, type TrackerOptions } from '../../lib/reports/tracker.js';
import { E5_2_HEAD } from './cpim-fixtures.js';
import { chunksOf, feedChunk } from './reports.js';

export interface Meta extends ReportMeta {
  dest: string;
}

/** The IM's paths as they arrive at the relay next to Bob (digest E5.1 through one relay). */
export const TO_PATH =
  'msrp://relay.example.com:2855/t0K3nQ9xLm;tcp msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
export const FROM_PATH = 'msrp://alice.example.org:7655/a1B2c3D4e5;tcp';
export const SESSION = 'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
/** 2024-05-06T10:15:31Z, the report's DateTime. */
export const NOW = Date.UTC(2024, 4, 6, 10, 15, 31);

/** An RFC 5438 IM (digest E5.1) with the given Disposition-Notification value (none when null). */
export function imdnIm(
  request: string | null,
  opts: { dateTime?: boolean | string; text?: string } = {},
): string {
  const dateTime =
    opts.dateTime === undefined || opts.dateTime === true ? '2024-05-06T10:15:30Z' : opts.dateTime;
  return (
    'From: <im:alice@example.org>\r\n' +
    'To: <im:bob@example.net>\r\n' +
    (dateTime === false ? '' : `DateTime: ${dateTime}\r\n`) +
    'NS: imdn <urn:ietf:params:imdn>\r\n' +
    'imdn.Message-ID: Qw8rT2zLk4\r\n' +
    (request === null ? '' : `imdn.Disposition-Notification: ${request}\r\n`) +
    '\r\n' +
    'Content-Type: text/plain; charset=utf-8\r\n' +
    '\r\n' +
    (opts.text ?? 'Hello Bob')
  );
}

/** A draft-khartabil-simple-im-report-00 IM (digest §6.5) with the given Receipt-Request value. */
export function legacyIm(request: string): string {
  return (
    'From: Alice <im:alice@example.org>\r\n' +
    'To: Bob <im:bob@example.net>\r\n' +
    'Message-ID: 7fGh2Kp9\r\n' +
    `Receipt-Request: ${request}\r\n` +
    '\r\n' +
    'Content-Type: text/plain\r\n' +
    '\r\n' +
    'Ping'
  );
}

const ELEMENTS = {
  delivered: 'delivery-notification',
  displayed: 'display-notification',
  processed: 'processing-notification',
} as const;

/** A delivery (display, processing) IMDN from Bob about Qw8rT2zLk4 (digest E5.2). */
export function recipientImdn(
  status: 'delivered' | 'displayed' | 'processed' = 'delivered',
  messageId = 'Qw8rT2zLk4',
): Buffer {
  const element = ELEMENTS[status];
  return Buffer.from(
    E5_2_HEAD +
      '<?xml version="1.0" encoding="UTF-8"?>\r\n' +
      '<imdn xmlns="urn:ietf:params:xml:ns:imdn">\r\n' +
      `<message-id>${messageId}</message-id>\r\n` +
      '<datetime>2024-05-06T10:15:30Z</datetime>\r\n' +
      '<recipient-uri>im:bob@example.net</recipient-uri>\r\n' +
      `<${element}><status><${status}/></status></${element}>\r\n` +
      '</imdn>',
  );
}

export interface Injected {
  owner: string;
  frame: Buffer;
  outcome: ReportOutcome;
}

export interface Harness {
  policy: ReportPolicy<string, Meta>;
  tracker: MessageTracker<string, Meta>;
  sent: Injected[];
  clock: { now: number };
}

export function setup(
  options: Partial<ReportPolicyOptions<string, Meta>> = {},
  trackerOptions: TrackerOptions = {},
): Harness {
  const sent: Injected[] = [];
  const clock = { now: NOW };
  let n = 0;
  const policy = new ReportPolicy<string, Meta>({
    inject: (msg, frame, outcome) => {
      sent.push({ owner: msg.owner, frame, outcome });
    },
    now: () => clock.now,
    newId: () => `id${String(++n).padStart(6, '0')}`,
    ...options,
  });
  const tracker = new MessageTracker<string, Meta>(policy, { now: () => clock.now, ...trackerOptions });
  return { policy, tracker, sent, clock };
}

/** Sends an IM through the tracker in chunks; returns its tracked message (null when not tracked). */
export function send(
  h: Harness,
  body: string,
  opts: { chunkSize?: number; lastHop?: boolean; messageId?: string } = {},
): TrackedMessage<string, Meta> | null {
  const buf = Buffer.from(body, 'utf8');
  const meta: Meta = { toPath: TO_PATH, fromPath: FROM_PATH, lastHop: opts.lastHop ?? true, dest: 'bob' };
  let msg: TrackedMessage<string, Meta> | null = null;
  for (const spec of chunksOf(buf, opts.chunkSize ?? buf.length)) {
    const chunk = feedChunk(h.tracker, 'alice', SESSION, opts.messageId ?? 'MsrpMsg01', meta, spec);
    if (chunk !== null) msg = chunk.msg;
  }
  return msg;
}

/** The outcomes injected so far, in order. */
export function outcomes(h: Harness): ReportOutcome[] {
  return h.sent.map((s) => s.outcome);
}
