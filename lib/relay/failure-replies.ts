/**
 * Telling a sender that its request failed at this relay: an error response or a failure REPORT when
 * a request is refused, a failure REPORT when a forwarded SEND fails downstream, and a response on the
 * relay's own behalf when a forwarded end-to-end request times out or loses its next hop
 * (RFC 4975 §7.1.1, RFC 4976 §6.5). Counts and logs each failure REPORT.
 */
import { getHeader, type RequestHead } from '../msrp/message.js';
import { parseByteRange, type ByteRange } from '../msrp/headers.js';
import { serializeResponse } from '../msrp/serializer.js';
import { failureReportOf } from './frame-utils.js';
import type { Logger } from './logger.js';
import type { Peer } from './peer.js';
import type { TrackedImMessage } from './relay-reports.js';
import { failureReport, transactionResponse } from './replies.js';
import { bump, type RelayCounters } from './stats.js';
import type { ForwardedTransaction } from './transactions.js';

/** Sends the relay's failure answers toward senders, counting failure REPORTs by status. */
export class FailureReplies {
  constructor(
    private readonly counters: RelayCounters,
    private readonly log: Logger,
  ) {}

  /**
   * Tells the sender a request was not forwarded. SEND: an error response when Failure-Report is yes,
   * a failure REPORT when partial, nothing when no (RFC 4975 §7.1.1). REPORT: never answered. Other
   * methods: an error response unless Failure-Report is no.
   */
  refuse(peer: Peer, head: RequestHead, statusCode: number, comment: string, ourUri: string): void {
    if (head.method === 'REPORT') return;
    const fr = failureReportOf(head);
    if (fr === 'no') return;
    if (head.method === 'SEND' && fr === 'partial') {
      let range: ByteRange = { start: 1, end: '*', total: '*' };
      try {
        const br = getHeader(head.headers, 'byte-range');
        if (br !== undefined) range = parseByteRange(br);
      } catch {
        /* the REPORT still says which message failed */
      }
      bump(this.counters.failureReports, String(statusCode));
      const messageId = getHeader(head.headers, 'message-id');
      const end = typeof range.end === 'number' ? range.end : range.start - 1;
      this.log.info(
        { conn: peer.id, messageId, status: statusCode, range: `${range.start}-${end}` },
        'failure REPORT',
      );
      peer.send(
        [
          failureReport({
            reportTo: head.headers[1]![1],
            ourUri,
            messageId,
            start: range.start,
            end,
            total: range.total,
            statusCode,
            comment,
          }),
        ],
        peer,
      );
      return;
    }
    peer.send([transactionResponse(head, statusCode, comment, ourUri)], peer);
  }

  /** A failure REPORT toward the sender of a forwarded SEND chunk (RFC 4976 §6.5), unless FR is no. */
  sendFailureReport(
    tx: ForwardedTransaction<Peer, TrackedImMessage>,
    statusCode: number,
    comment: string,
  ): void {
    if (tx.failureReport === 'no' || tx.source.isClosed) return;
    bump(this.counters.failureReports, String(statusCode));
    this.log.info(
      {
        conn: tx.source.id,
        messageId: tx.messageId,
        status: statusCode,
        range: `${tx.rangeStart}-${tx.rangeEnd}`,
      },
      'failure REPORT',
    );
    tx.source.send([
      failureReport({
        reportTo: tx.reportTo,
        ourUri: tx.ourUri,
        messageId: tx.messageId,
        start: tx.rangeStart,
        end: tx.rangeEnd,
        total: tx.total,
        statusCode,
        comment,
      }),
    ]);
  }

  /** Answers a forwarded end-to-end request upstream on the relay's own behalf (timeout, loss). */
  answerUpstream(
    tx: ForwardedTransaction<Peer, TrackedImMessage>,
    statusCode: number,
    comment: string,
  ): void {
    if (tx.failureReport === 'no' || tx.source.isClosed) return;
    tx.source.send([
      serializeResponse({
        transactionId: tx.sourceTid,
        statusCode,
        comment,
        toPath: tx.reportTo.trim(),
        fromPath: tx.ourUri,
      }),
    ]);
  }
}
