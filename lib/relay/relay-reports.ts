/**
 * Where the relay meets the reports layer (DESIGN.md "Report policy"): SEND chunks toward a local
 * recipient are tracked while they stream through, the next hop's responses, timeouts and connection
 * losses are fed back, and the policy injects delivery reports toward the sender. Every call is
 * synchronous and cheap when reports are off or a chunk is not tracked (`null` handles).
 */
import { DEFAULTS, type ContinuationFlag } from '../constants.js';
import type { RequestHead } from '../msrp/message.js';
import type { ByteRange, FailureReport } from '../msrp/headers.js';
import { getHeader } from '../msrp/message.js';
import {
  acknowledgedOnSend,
  recipientSessionKey,
  ReportPolicy,
  type ReportCounters,
  type ReportMeta,
  type ReportMode,
  type UntrackedCap,
} from '../reports/policy.js';
import { MessageTracker, type TrackedChunk, type TrackedMessage } from '../reports/tracker.js';
import type { Logger } from './logger.js';
import type { Peer } from './peer.js';

/**
 * Each {@link UntrackedCap} as the log and `msrp_relay_reports_untracked_total{cap}` name it: the
 * tracker's "owner" is the sending connection.
 */
export const UNTRACKED_CAP_NAMES: Readonly<Record<UntrackedCap, string>> = {
  messages: 'messages',
  'owner-messages': 'connection_messages',
  'head-bytes': 'head_bytes',
  'owner-head-bytes': 'connection_head_bytes',
  holes: 'holes',
  paths: 'paths',
};

/** At most one `report tracking cap reached` line per connection in this long, ms. */
const UNTRACKED_LOG_MS = 60_000;

/** What the relay keeps about a tracked message: the report's paths and where the IM went. */
export interface ImMeta extends ReportMeta {
  /**
   * The connection the IM was forwarded on (the recipient's); null for a chunk the relay refused, which
   * went nowhere: its refusal, not a connection's fate, decides its outcome.
   */
  dest: Peer | null;
}

/** A tracked chunk as the relay holds it. */
export type TrackedIm = TrackedChunk<Peer, ImMeta>;
/** A tracked message as a forwarded transaction refers to it. */
export type TrackedImMessage = TrackedMessage<Peer, ImMeta>;

/** Options of {@link RelayReports} (the `--reports*` flags). */
export interface RelayReportsOptions {
  mode: ReportMode;
  dedupe: boolean;
  dedupeEntries?: number;
  processing: boolean;
  log: Logger;
  /** Largest WebSocket message sent (`--ws-max-message`): a report toward a WebSocket sender fits it. */
  wsMaxMessageBytes: number;
  /**
   * Where a report goes when the connection its IM came on has closed (the relay's `relayRouteAfter`:
   * another connection of the relay that connection's certificate proved, or null). Absent: nowhere.
   */
  relayRouteAfter?: (gone: Peer, path: string) => Peer | null;
  /** True for a connection of a relay proven as `--relay-ca` says (the relay's `isRelay` rule). */
  provenRelay?: (peer: Peer) => boolean;
  /**
   * True for another relay's connection (the relay's `isRelayLink` rule): its messages are tracked under
   * {@link DEFAULTS.reportRelayLinkFactor} times a client's caps. Absent: every connection a client's.
   */
  relayLink?: (peer: Peer) => boolean;
}

/** The report tracker and policy, wired to the relay's events. */
export class RelayReports {
  readonly policy: ReportPolicy<Peer, ImMeta>;
  readonly tracker: MessageTracker<Peer, ImMeta>;
  private readonly off: boolean;
  private readonly provenRelay: ((peer: Peer) => boolean) | undefined;
  private readonly relayLink: ((peer: Peer) => boolean) | undefined;
  private readonly log: Logger;
  /** When each connection's last `report tracking cap reached` line was written. */
  private readonly untrackedLogged = new WeakMap<Peer, number>();

  constructor(options: RelayReportsOptions) {
    this.off = options.mode === 'off';
    this.provenRelay = options.provenRelay;
    this.relayLink = options.relayLink;
    this.log = options.log;
    this.policy = new ReportPolicy<Peer, ImMeta>({
      mode: options.mode,
      dedupe: options.dedupe,
      ...(options.dedupeEntries === undefined ? {} : { dedupeEntries: options.dedupeEntries }),
      processing: options.processing,
      maxFrameBytes: (peer) => (peer.conn.messageFramed ? options.wsMaxMessageBytes : Infinity),
      onUntracked: (peer, cap) => this.untracked(peer, cap),
      inject: (msg, frame, outcome) => {
        let to: Peer | null = msg.owner;
        if (to.isClosed) to = options.relayRouteAfter?.(to, msg.meta.fromPath) ?? null;
        if (to === null) return false;
        options.log.debug({ conn: to.id, messageId: msg.messageId, outcome }, 'report injected');
        to.send([frame]);
        return true;
      },
    });
    this.tracker = new MessageTracker<Peer, ImMeta>(this.policy, {
      ownerKey: (p) => String(p.id),
      groupOf: (meta) => meta.dest ?? undefined,
      metaBytes: (meta) => meta.toPath.length + meta.fromPath.length,
      ownerPaused: (p) => p.isPaused,
      ...(options.relayLink === undefined
        ? {}
        : {
            ownerCapFactor: (p: Peer) => (this.relayLink!(p) ? DEFAULTS.reportRelayLinkFactor : 1),
          }),
    });
  }

  /**
   * A message of `peer`'s got no tracking, so no report: said in the log (a warning at most once a minute
   * per connection; every one is counted), or an operator sees reports go missing with nothing to say why
   * (soak, twentieth session).
   */
  private untracked(peer: Peer, cap: UntrackedCap): void {
    const now = Date.now();
    const last = this.untrackedLogged.get(peer);
    if (last !== undefined && now - last < UNTRACKED_LOG_MS) return;
    this.untrackedLogged.set(peer, now);
    const relayLink = this.relayLink?.(peer) === true;
    this.log.warn(
      {
        conn: peer.id,
        remote: peer.conn.remote,
        cap: UNTRACKED_CAP_NAMES[cap],
        relayLink,
        tracked: this.tracker.size,
      },
      'report tracking cap reached: messages get no delivery report',
    );
  }

  /** Counters for the metrics layer. */
  get counters(): ReportCounters {
    return this.policy.counters;
  }

  /**
   * A SEND chunk's head, routed to `dest` with To-Path `toPath` after this relay (`dest` null: refused
   * here, forwarded nowhere): starts tracking when this relay is the last before the recipient and the
   * body is CPIM. Returns the chunk's handle or null.
   */
  begin(
    source: Peer,
    head: RequestHead,
    toPath: string,
    range: ByteRange | null,
    dest: Peer | null,
  ): TrackedIm | null {
    if (this.off) return null;
    // DESIGN.md: only the relay whose next hop is the recipient endpoint injects.
    const lastHop = toPath.trim().indexOf(' ') === -1;
    if (!this.policy.shouldTrack(getHeader(head.headers, 'content-type'), lastHop)) return null;
    const messageId = getHeader(head.headers, 'message-id');
    // RFC 4975 §9: a Message-ID is at most 32 characters; longer keys are not tracked (bounded memory).
    if (messageId === undefined || messageId.length > 64) return null;
    const session = recipientSessionKey(toPath);
    if (session.length > 512) return null;
    return this.tracker.begin(source, session, messageId, range, {
      toPath: head.headers[0]![1],
      fromPath: head.headers[1]![1],
      lastHop,
      dest,
    });
  }

  /** Body octets of a tracked chunk. */
  data(chunk: TrackedIm, piece: Buffer): void {
    this.tracker.data(chunk, piece);
  }

  /** A tracked chunk's end-line; call before the chunk's end-line is forwarded (`on-receipt`). */
  end(chunk: TrackedIm | null, flag: ContinuationFlag): void {
    if (chunk !== null) this.tracker.end(chunk, flag);
  }

  /**
   * A sub-chunk of a tracked chunk was written to the recipient. With Failure-Report `no`/`partial` no
   * 200 will come, so the octets count as acknowledged now; otherwise the transaction carries the message
   * until its response. With `partial` it carries it too: a non-200 (RFC 4975 §7.1.1: the only response
   * `partial` allows) still fails the message when it comes before the message is complete.
   */
  sent(chunk: TrackedIm, fr: FailureReport, start: number, end: number): void {
    if (acknowledgedOnSend(fr)) this.tracker.acked(chunk.msg, start, end);
  }

  /** The recipient answered a forwarded sub-chunk of `msg`. */
  answered(msg: TrackedImMessage, statusCode: number, start: number, end: number): void {
    if (statusCode === 200) this.tracker.acked(msg, start, end);
    else this.tracker.fail(msg, statusCode);
  }

  /** A forwarded sub-chunk of `msg` failed without a response (408 timeout, 481 connection lost). */
  failed(msg: TrackedImMessage, code: number): void {
    this.tracker.fail(msg, code);
  }

  /**
   * A chunk of `source`'s was refused before forwarding (413, 400): true when it was a later chunk of a
   * message being tracked, which has now failed.
   */
  refused(source: Peer, toPath: string, messageId: string | undefined, code: number): boolean {
    if (this.off || messageId === undefined) return false;
    return this.tracker.failByKey(source, recipientSessionKey(toPath), messageId, code);
  }

  /**
   * True when a SEND from a recipient should be held whole (not cut through) so a duplicate delivery
   * IMDN can be dropped (`--reports-dedupe`).
   */
  holdForDedupe(head: RequestHead, range: ByteRange | null): boolean {
    if (this.off) return false;
    // Only a session the relay reported to can send a duplicate: keyed by the sender's own URI.
    const session = recipientSessionKey(head.headers[1]![1]);
    return this.policy.isImdnCandidate(getHeader(head.headers, 'content-type'), range, session);
  }

  /** Octets of a SEND without Byte-Range held for dedupe before it is forwarded as usual. */
  get holdLimit(): number {
    return this.policy.holdLimit;
  }

  /** True when a held SEND is the recipient's own delivery IMDN for a message already reported. */
  isDuplicate(head: RequestHead, body: Buffer): boolean {
    return this.policy.isDuplicateImdnBody(recipientSessionKey(head.headers[1]![1]), body);
  }

  /** A connection closed: messages toward it failed (481), messages from it are forgotten. */
  peerClosed(peer: Peer): void {
    if (this.off) return;
    this.tracker.failGroup(peer, 481);
    // An IM held whole from a relay its client certificate proved keeps waiting for its outcome: the
    // report can take another connection of that relay (docs/operations.md, --relay-ca).
    const proven = this.provenRelay?.(peer) === true;
    this.tracker.dropOwner(peer, proven ? (msg) => msg.wasWhole && this.policy.owesDelivery(msg) : undefined);
  }

  /** Periodic housekeeping. */
  sweep(now: number): void {
    if (this.off) return;
    this.tracker.sweep(now);
    this.policy.sweep(now);
  }
}
