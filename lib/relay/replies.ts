/**
 * Frames the relay generates itself: transaction responses and failure REPORTs (RFC 4975 §7.2,
 * RFC 4976 §6.5). Paths are header values as received, so URIs go back out byte-identical.
 */
import type { Header, RequestHead } from '../msrp/message.js';
import { formatByteRange } from '../msrp/headers.js';
import { serializeRequest, serializeResponse } from '../msrp/serializer.js';

/** The first URI of a path header value. */
export function firstUri(path: string): string {
  const s = path.trimStart();
  const sp = s.indexOf(' ');
  return sp === -1 ? s.trimEnd() : s.slice(0, sp);
}

/** The URIs of a path header value. */
export function splitPath(path: string): string[] {
  const s = path.trim();
  // URIs apart by one space, as senders write them: a plain split, no regular expression.
  if (s.indexOf('\t') === -1 && s.indexOf('  ') === -1) return s.split(' ');
  return s.split(/[ \t]+/);
}

/**
 * A response to `head`. RFC 4975 §7.2: for SEND the To-Path is only the first From-Path URI (the
 * previous hop); for every other method it is the whole From-Path. From-Path is the URI the request
 * addressed here.
 */
export function transactionResponse(
  head: RequestHead,
  statusCode: number,
  comment: string | undefined,
  ourUri: string,
  headers?: Header[],
): Buffer {
  const from = head.headers[1]![1];
  return serializeResponse({
    transactionId: head.transactionId,
    statusCode,
    comment,
    toPath: head.method === 'SEND' ? firstUri(from) : from.trim(),
    fromPath: ourUri,
    headers,
  });
}

/** What a relay-generated failure REPORT says. */
export interface FailureReportSpec {
  /** The From-Path of the failed request as it arrived (the way back to its sender). */
  reportTo: string;
  /** The relay URI the request was addressed to. */
  ourUri: string;
  messageId: string | undefined;
  /** Octets of the affected chunk: start and total from the SEND, end as actually received. */
  start: number;
  end: number;
  total: number | '*';
  statusCode: number;
  comment: string;
}

/**
 * A failure REPORT toward the original sender (RFC 4976 §6.5): To-Path = the request's From-Path as it
 * arrived, From-Path = this relay's URI, Message-ID and Byte-Range of the affected chunk,
 * `Status: 000 <code> <comment>`. REPORTs carry no Success-/Failure-Report header and get no response.
 */
export function failureReport(spec: FailureReportSpec): Buffer {
  const headers: Header[] = [];
  if (spec.messageId !== undefined) headers.push(['Message-ID', spec.messageId]);
  headers.push(['Byte-Range', formatByteRange({ start: spec.start, end: spec.end, total: spec.total })]);
  headers.push(['Status', `000 ${spec.statusCode} ${spec.comment}`]);
  return serializeRequest({ method: 'REPORT', toPath: spec.reportTo.trim(), fromPath: spec.ourUri, headers });
}
