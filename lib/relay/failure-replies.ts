/**
 * Telling a sender that its request failed at this relay: an error response or a failure REPORT when
 * a request is refused, a failure REPORT when a forwarded SEND fails downstream, and a response on the
 * relay's own behalf when a forwarded end-to-end request times out or loses its next hop
 * (RFC 4975 §7.1.1, RFC 4976 §6.5). Counts and logs each failure REPORT.
 */
import { getHeader, type RequestHead } from '../msrp/message.js';
import { serializeResponse } from '../msrp/serializer.js';
import { byteRangeOf, failureReportOf } from './frame-utils.js';
import { clip, logWithin } from './log-budget.js';
import type { Logger } from './logger.js';
import type { Peer } from './peer.js';
import type { TrackedImMessage } from './relay-reports.js';
import { failureReport, firstUri, transactionResponse, type FailureReportSpec } from './replies.js';
import { bump, statusLabel, type RelayCounters } from './stats.js';
import type { ForwardedTransaction } from './transactions.js';

/** Sends the relay's failure answers toward senders, counting failure REPORTs by status. */
export class FailureReplies {
  /**
   * `relayRouteAfter`: where a REPORT toward a relay whose connection closed may go instead (the relay's
   * {@link Relay.relayRouteAfter}); absent, nowhere.
   */
  constructor(
    private readonly counters: RelayCounters,
    private readonly log: Logger,
    private readonly relayRouteAfter?: (gone: Peer, path: string) => Peer | null,
  ) {}

  /**
   * Tells the sender a request was not forwarded. SEND: an error response when Failure-Report is yes,
   * a failure REPORT when partial, nothing when no (RFC 4975 §7.1.1). REPORT: never answered. Other
   * methods: an error response unless Failure-Report is no. `received`: body octets of the chunk read,
   * which end the REPORT's Byte-Range when the SEND's range end was `*` (digest §1.10).
   */
  refuse(
    peer: Peer,
    head: RequestHead,
    statusCode: number,
    comment: string,
    ourUri: string,
    received = 0,
  ): void {
    bump(this.counters.refused, statusLabel(statusCode));
    this.log.debug(
      {
        conn: peer.id,
        tid: head.transactionId,
        method: clip(head.method),
        status: statusCode,
        comment: clip(comment),
      },
      'request refused',
    );
    if (head.method === 'REPORT') return;
    const fr = failureReportOf(head);
    if (fr === 'no') return;
    if (head.method === 'SEND' && fr === 'partial') {
      const range = byteRangeOf(head, { start: 1, end: '*', total: '*' });
      this.report(
        peer,
        {
          reportTo: head.headers[1]![1],
          ourUri,
          messageId: getHeader(head.headers, 'message-id'),
          start: range.start,
          // The octets read, within what the Byte-Range allowed (a chunk may be refused for overrunning).
          end:
            typeof range.end === 'number'
              ? range.end
              : Math.min(
                  range.start - 1 + received,
                  typeof range.total === 'number' ? range.total : Infinity,
                ),
          total: range.total,
          statusCode,
          comment,
        },
        peer,
      );
      return;
    }
    peer.send([transactionResponse(head, statusCode, comment, ourUri)], peer);
  }

  /**
   * A failure REPORT toward the sender of a forwarded SEND chunk (RFC 4976 §6.5), unless FR is no. It goes
   * back on the connection the chunk came on. When that connection has closed, the REPORT is counted and
   * logged as undeliverable: sending it elsewhere would mean trusting the From-Path, which the sender
   * alone wrote (docs/architecture.md); unless that connection was a relay's that proved with its
   * certificate that the From-Path's first host is its own: then another connection of that relay takes it.
   */
  sendFailureReport(
    tx: ForwardedTransaction<Peer, TrackedImMessage>,
    statusCode: number,
    comment: string,
  ): void {
    if (tx.failureReport === 'no') return;
    const to = tx.source.isClosed ? (this.relayRouteAfter?.(tx.source, tx.reportTo) ?? tx.source) : tx.source;
    if (to.isClosed) {
      this.counters.failureReportsUndeliverable++;
      const fields = {
        gone: tx.source.id,
        to: firstUri(tx.reportTo),
        messageId: tx.messageId,
        status: statusCode,
        range: `${tx.rangeStart}-${tx.rangeEnd}`,
      };
      const msg = "failure REPORT undeliverable: the sender's connection is gone";
      logWithin(tx.source.logBudget, this.log, 'warn', fields, msg);
      return;
    }
    this.report(to, {
      reportTo: tx.reportTo,
      ourUri: tx.ourUri,
      messageId: tx.messageId,
      start: tx.rangeStart,
      end: tx.rangeEnd,
      total: tx.total,
      statusCode,
      comment,
    });
  }

  /** Counts, logs and writes one failure REPORT toward `to`. */
  private report(to: Peer, spec: FailureReportSpec, producer?: Peer): void {
    bump(this.counters.failureReports, statusLabel(spec.statusCode));
    const fields = {
      conn: to.id,
      messageId: spec.messageId,
      status: spec.statusCode,
      range: `${spec.start}-${spec.end}`,
    };
    logWithin(to.logBudget, this.log, 'info', fields, 'failure REPORT');
    to.send([failureReport(spec)], producer);
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
        toPath: tx.method === 'SEND' ? firstUri(tx.reportTo) : tx.reportTo.trim(),
        fromPath: tx.ourUri,
      }),
    ]);
  }
}
