/**
 * The message tracker: for each message travelling toward a local recipient (keyed by a session key and
 * the MSRP Message-ID) it records which octets the relay has received and which the next hop has
 * acknowledged, and copies the first bytes of the body for CPIM inspection. It is fed synchronously from
 * the relay's hot path and decides nothing about reports: it tells a {@link TrackerHandler} (the report
 * policy) when the head is readable, when the message is whole, complete or failed.
 *
 * ```
 *  begin(chunk head) ─► TrackedChunk ─ data(piece)* ─► end(flag) ─► received ∪= [start, last octet]
 *                          └─ octets 1..headBytes copied ─► onHead(prefix) ─► 'more' | 'keep' | 'drop'
 *  acked(sub-chunk answered 200) ─────────────────────────────────► acked ∪= [start, end]
 *  received ⊇ 1..total ─► onWhole          received and acked ⊇ 1..total ─► onComplete
 *  fail(code) ─► onFailed                  '#', idle, holes, caps ─► onDropped / onUntracked
 * ```
 *
 * Memory is bounded: at most `maxMessages` messages (and `maxMessagesPerOwner` per sending connection),
 * at most `maxHeadBytes` of CPIM heads reserved (and `maxHeadBytesPerOwner` per connection), at most
 * `maxIntervals` holes per message; a finished message leaves a tombstone for one idle period so late or
 * repeated chunks do not start it again — except a message that came whole in one chunk (`1-N/N` ended
 * by `$`), which has no later chunks: the common single-chunk IM costs no remembered key.
 *
 * The hot path is the single-chunk IM whose CPIM head is in its first body piece: the head is read in
 * place from that piece (nothing copied, nothing allocated for it); only a head split over pieces or
 * chunks is copied into a per-message buffer.
 */
import { CR, DEFAULTS, LF, type ContinuationFlag } from '../constants.js';
import type { ByteRange } from '../msrp/headers.js';
import { ExpiringKeys } from './expiring-keys.js';
import type { ReportRequest } from './report-request.js';
import { StringMap } from '../util/string-map.js';

/**
 * A set of octet numbers kept as sorted, disjoint, non-adjacent inclusive intervals. Adding in order
 * (the common case) extends the last interval in O(1).
 */
export class IntervalSet {
  /**
   * The only interval while there is at most one (every in-order message): no array. `hi < lo` when
   * empty. Unused once {@link r} exists.
   */
  private lo = 1;
  private hi = 0;
  /** Flat `[start0, end0, start1, end1, ...]` once a second disjoint interval appears. */
  private r: number[] | null = null;

  /** Number of disjoint intervals. */
  get count(): number {
    return this.r === null ? (this.hi < this.lo ? 0 : 1) : this.r.length >> 1;
  }

  /** Octets in the set. */
  get octets(): number {
    const r = this.r;
    if (r === null) return this.hi < this.lo ? 0 : this.hi - this.lo + 1;
    let n = 0;
    for (let i = 0; i < r.length; i += 2) n += r[i + 1]! - r[i]! + 1;
    return n;
  }

  /** Adds the octets `start..end` (inclusive); nothing when `end < start`. */
  add(start: number, end: number): void {
    if (end < start) return;
    if (this.r === null) {
      if (this.hi < this.lo) {
        this.lo = start;
        this.hi = end;
        return;
      }
      if (start <= this.hi + 1 && end >= this.lo - 1) {
        // Overlaps or touches the one interval.
        if (start < this.lo) this.lo = start;
        if (end > this.hi) this.hi = end;
        return;
      }
      this.r = [this.lo, this.hi];
    }
    const r = this.r;
    const n = r.length;
    // Fast paths for in-order octets: after every interval, or extending the last one.
    if (n === 0 || start > r[n - 1]! + 1) {
      r.push(start, end);
      return;
    }
    if (start >= r[n - 2]!) {
      if (end > r[n - 1]!) r[n - 1] = end;
      return;
    }
    // General case: merge every interval that overlaps or touches [start, end].
    let i = 0;
    while (i < n && r[i + 1]! < start - 1) i += 2;
    let j = i;
    while (j < n && r[j]! <= end + 1) j += 2;
    if (i === j) {
      r.splice(i, 0, start, end);
      return;
    }
    r.splice(i, j - i, Math.min(start, r[i]!), Math.max(end, r[j - 1]!));
  }

  /** True when every octet `start..end` is in the set (always true when `end < start`). */
  covers(start: number, end: number): boolean {
    if (end < start) return true;
    const r = this.r;
    if (r === null) return this.lo <= start && this.hi >= end;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i]! > start) return false;
      if (r[i + 1]! >= start) return r[i + 1]! >= end;
    }
    return false;
  }

  /** True when every octet `start..end` is in the set or in `extraStart..extraEnd`. */
  coversWith(start: number, end: number, extraStart: number, extraEnd: number): boolean {
    if (extraEnd < extraStart) return this.covers(start, end);
    return (
      this.covers(start, Math.min(end, extraStart - 1)) && this.covers(Math.max(start, extraEnd + 1), end)
    );
  }

  /** The last octet of the run starting at octet 1, 0 when octet 1 is missing. */
  prefixEnd(): number {
    const r = this.r;
    if (r === null) return this.lo === 1 && this.hi >= 1 ? this.hi : 0;
    return r.length > 0 && r[0] === 1 ? r[1]! : 0;
  }

  /** The intervals as `[start, end]` pairs, in order. */
  toArray(): Array<[number, number]> {
    const r = this.r;
    if (r === null) return this.hi < this.lo ? [] : [[this.lo, this.hi]];
    const out: Array<[number, number]> = [];
    for (let i = 0; i < r.length; i += 2) out.push([r[i]!, r[i + 1]!]);
    return out;
  }
}

/** What a handler answers to a CPIM head: wait for more bytes, keep tracking, or stop tracking. */
export type HeadVerdict = 'more' | 'keep' | 'drop';

/** Why a tracked message was dropped without completing or failing. */
export type DropReason =
  /** A chunk ended with `#` (the sender abandoned the message). */
  | 'aborted'
  /** No chunk or acknowledgement for `idleTimeoutMs` before the relay held every octet. */
  | 'timeout'
  /** More than `maxIntervals` holes in the received or acknowledged octets. */
  | 'holes'
  /** The handler has nothing more to wait for (head answered `drop`, or `onWhole` returned false). */
  | 'settled'
  /** {@link MessageTracker.dropOwner}: the sending connection went away. */
  | 'owner-closed'
  /** A later chunk's meta ({@link TrackerOptions.metaBytes}) would have passed the head-byte caps. */
  | 'caps';

/** Why {@link MessageTracker.begin} did not track a chunk. */
export type UntrackedReason =
  | 'messages'
  | 'owner-messages'
  | 'head-bytes'
  | 'owner-head-bytes'
  /** The message already finished (a late, repeated or post-failure chunk). */
  | 'finished';

/** Receives the tracker's events; every call is synchronous, from inside a tracker method. */
export interface TrackerHandler<O, M> {
  /**
   * The first bytes of the body, once they hold two blank lines (a complete CPIM head) or when no more
   * can come (`final`: the cap is reached or the message is whole). `prefix` is only valid during the
   * call. `'more'` waits for more bytes (treated as `'drop'` when final), `'keep'` ends inspection and
   * frees the bytes, `'drop'` stops tracking the message.
   */
  onHead(msg: TrackedMessage<O, M>, prefix: Buffer, final: boolean): HeadVerdict;
  /** The relay holds every octet of the message. Return false when there is nothing more to wait for. */
  onWhole(msg: TrackedMessage<O, M>): boolean;
  /** Every octet is received and acknowledged; the message is forgotten after this call. */
  onComplete(msg: TrackedMessage<O, M>): void;
  /** {@link MessageTracker.fail} was called, or the message timed out whole but unacknowledged (408). */
  onFailed(msg: TrackedMessage<O, M>, code: number): void;
  /** The message was forgotten without an outcome. */
  onDropped?(msg: TrackedMessage<O, M>, reason: DropReason): void;
  /** A chunk was not tracked. */
  onUntracked?(owner: O, reason: UntrackedReason): void;
}

/** Options of a {@link MessageTracker}; defaults from `DEFAULTS` in constants.ts. */
export interface TrackerOptions<O = unknown, M = unknown> {
  /** Octets at the start of a body kept for CPIM inspection (8 KiB). */
  headBytes?: number;
  /** A message without chunk or acknowledgement for this long is dropped by {@link MessageTracker.sweep}. */
  idleTimeoutMs?: number;
  /** Messages tracked at once, all owners together. */
  maxMessages?: number;
  /** Messages tracked at once per owner (sending connection). */
  maxMessagesPerOwner?: number;
  /** CPIM head bytes reserved at once, all owners together. */
  maxHeadBytes?: number;
  /** CPIM head bytes reserved at once per owner. */
  maxHeadBytesPerOwner?: number;
  /** Holes a message's received or acknowledged octets may have. */
  maxIntervals?: number;
  /** Milliseconds clock (tests). */
  now?: () => number;
  /**
   * A string naming the owner (the sending connection) in message keys (default: `String` of a
   * primitive, a number drawn once per object for an object). A Message-ID
   * is its sender's (RFC 4975 §7.1): two senders using one toward the same recipient session are two
   * messages, and one must not complete or fail the other's.
   */
  ownerKey?: (owner: O) => string;
  /**
   * The group of a message by its latest meta (the relay: the connection it goes to), for
   * {@link MessageTracker.failGroup}; undefined: in no group.
   */
  groupOf?: (meta: M) => unknown;
  /**
   * Octets a message's meta keeps (the relay: its paths), charged against the head-byte caps from its
   * first chunk until it ends (memory audit: paths of 15 KB on messages reserving 200 octets of head
   * passed every cap: 459 MiB from 30 connections).
   */
  metaBytes?: (meta: M) => number;
  /**
   * How many times the per-owner caps an owner gets (default 1): the relay gives another relay's link,
   * which carries many clients' messages, {@link DEFAULTS.reportRelayLinkFactor}. Asked only when an
   * owner would pass the plain caps.
   */
  ownerCapFactor?: (owner: O) => number;
  /**
   * True while the caller has stopped reading `owner` (backpressure): its chunk in progress carries no
   * octets through no fault of its sender, so {@link MessageTracker.sweep} does not take it for idle.
   */
  ownerPaused?: (owner: O) => boolean;
}

/** One message being tracked. Fields marked internal are the tracker's; handlers read the rest. */
export class TrackedMessage<O, M> {
  /** The owner's key, the session key and the Message-ID, space-separated. */
  readonly key: string;
  readonly sessionKey: string;
  /** MSRP Message-ID. */
  readonly messageId: string;
  /** The connection the message comes from (caps are counted per owner). */
  readonly owner: O;
  /** What the caller attached at the latest chunk (paths, destination, ...). */
  meta: M;
  /** Octets received (from chunks that ended with `+` or `$`). */
  readonly received = new IntervalSet();
  /** Octets the next hop acknowledged. */
  readonly acked = new IntervalSet();
  /** Size of the message: the Byte-Range total, or the last octet of the `$` chunk; -1 while unknown. */
  total = -1;
  /** The report request read from the CPIM head, set by the handler. */
  request: ReportRequest | null = null;
  /** Bits the handler may use (e.g. which reports it has sent). */
  flags = 0;
  /** True once the relay held every octet ({@link TrackerHandler.onWhole} was called). */
  wasWhole = false;
  /** True once the message is forgotten; further calls with it are ignored. */
  done = false;
  /** @internal Time of the last chunk or acknowledgement (ms). */
  lastActivity: number;
  /** @internal Chunks begun but not ended. */
  openChunks = 0;
  /**
   * @internal Body pieces seen, and their count at the last sweep: a chunk in progress that carried
   * octets since then is not idle ({@link MessageTracker.sweep}; `data` reads no clock).
   */
  pieces = 0;
  /** @internal */ piecesSwept = 0;
  /** @internal Chunks begun in all. */
  chunks = 0;
  /** @internal True when the message came whole in its only chunk (`1-N/N` ended by `$`): no tombstone. */
  oneShot = false;
  /** @internal The message finished while a chunk was open: its tombstone waits for that chunk's end. */
  tombstonePending = false;
  /**
   * @internal Dropped for a reason its IM is counted under already (settled at its head, too many holes,
   * caps): its tombstone keeps later chunks out without counting them `late`.
   */
  quietTombstone = false;
  /** @internal Neighbours in the owner's list of live messages. */
  ownerPrev: TrackedMessage<O, M> | null = null;
  /** @internal */ ownerNext: TrackedMessage<O, M> | null = null;
  /** @internal True while in the owner's list. */
  ownerLinked = true;
  /** @internal The group it is listed in ({@link TrackerOptions.groupOf}), and its neighbours there. */
  group: unknown = undefined;
  /** @internal */ groupPrev: TrackedMessage<O, M> | null = null;
  /** @internal */ groupNext: TrackedMessage<O, M> | null = null;
  /** @internal Neighbours in the tracker's list of live messages (oldest first). */
  allPrev: TrackedMessage<O, M> | null = null;
  /** @internal */ allNext: TrackedMessage<O, M> | null = null;
  /** @internal Octets reserved for the head; 0 once inspection is over. */
  headCap: number;
  /** @internal Octets charged for the meta ({@link TrackerOptions.metaBytes}) until the message ends. */
  metaCharge = 0;
  /** @internal */ headBuf: Buffer | null = null;
  /** @internal Which head octets arrived (they may come out of order). */
  headHave: IntervalSet | null = null;
  /** @internal Offset up to which the head prefix was scanned for blank lines. */
  headScan = 0;
  /** @internal Offset of the line being scanned. */
  headLineStart = 0;
  /** @internal Blank lines seen (the head is complete at two). */
  headBlanks = 0;

  constructor(
    key: string,
    sessionKey: string,
    messageId: string,
    owner: O,
    meta: M,
    headCap: number,
    now: number,
  ) {
    this.key = key;
    this.sessionKey = sessionKey;
    this.messageId = messageId;
    this.owner = owner;
    this.meta = meta;
    this.headCap = headCap;
    this.lastActivity = now;
  }

  /** True when the total is known and every octet 1..total was received. */
  isWhole(): boolean {
    return this.total >= 0 && this.received.covers(1, this.total);
  }

  /** True when the total is known and every octet 1..total was acknowledged. */
  isAcked(): boolean {
    return this.total >= 0 && this.acked.covers(1, this.total);
  }
}

/** One incoming chunk of a tracked message, from its head to its end-line. */
export class TrackedChunk<O, M> {
  readonly msg: TrackedMessage<O, M>;
  /** First octet number (the Byte-Range start, 1 without Byte-Range). */
  readonly start: number;
  /** Number of the next octet to arrive. */
  next: number;
  /** @internal */ ended = false;

  constructor(msg: TrackedMessage<O, M>, start: number) {
    this.msg = msg;
    this.start = start;
    this.next = start;
  }

  /**
   * True when ending this chunk with `flag` would make its message whole (every octet held), so a
   * report can be injected before the end-line is forwarded. Changes nothing.
   */
  wouldBeWhole(flag: ContinuationFlag): boolean {
    const msg = this.msg;
    if (msg.done || msg.wasWhole || this.ended || flag === '#') return false;
    const last = this.next - 1;
    const total = flag === '$' ? last : msg.total;
    return total >= 0 && msg.received.coversWith(1, total, this.start, last);
  }
}

/** Per-owner accounting. */
interface OwnerRecord<O, M> {
  /**
   * The owner's live messages as a list threaded through them (`ownerPrev`/`ownerNext`): adding and
   * removing allocate nothing, where a Set of a few entries is rebuilt as it shrinks and grows.
   */
  first: TrackedMessage<O, M> | null;
  last: TrackedMessage<O, M> | null;
  count: number;
  headBytes: number;
}

/** The tag of a tombstone whose later chunks are not counted `late` ({@link TrackedMessage.quietTombstone}). */
const QUIET = 1;

const objectKeys = new WeakMap<object, string>();
let lastObjectKey = 0;

/** {@link TrackerOptions.ownerKey} by default: distinct objects get distinct keys (not `[object Object]`). */
function defaultOwnerKey(owner: unknown): string {
  if ((typeof owner !== 'object' || owner === null) && typeof owner !== 'function') return String(owner);
  let k = objectKeys.get(owner);
  if (k === undefined) objectKeys.set(owner, (k = `#${++lastObjectKey}`));
  return k;
}

/** Tracks messages' octets and CPIM heads (see the module comment); `O` is the owner, `M` the meta. */
export class MessageTracker<O, M> {
  private readonly handler: TrackerHandler<O, M>;
  private readonly headBytes: number;
  private readonly idleTimeoutMs: number;
  private readonly maxMessages: number;
  private readonly maxMessagesPerOwner: number;
  private readonly maxHeadBytes: number;
  private readonly maxHeadBytesPerOwner: number;
  private readonly maxIntervals: number;
  private readonly now: () => number;
  private readonly ownerKey: (owner: O) => string;
  /**
   * Live messages by key (a StringMap: one comes and goes per IM, see lib/util/string-map.ts), and in
   * the order they began, as a list threaded through them.
   */
  private readonly messages = new StringMap<TrackedMessage<O, M>>();
  private oldest: TrackedMessage<O, M> | null = null;
  private newest: TrackedMessage<O, M> | null = null;
  /** Keys of finished messages until their tombstone expires. */
  private readonly finished: ExpiringKeys;
  private readonly owners = new Map<O, OwnerRecord<O, M>>();
  /**
   * Live messages by group, each a list threaded through them: failing a group visits its own messages
   * only (a scan of every message at each connection close let a stranger who filled the tracker make
   * every close cost milliseconds: complexity audit). A group's entry stays, empty, until failGroup (the
   * relay calls it when the connection closes): a busy connection does not rebuild it per message.
   */
  private readonly groups = new Map<
    unknown,
    { first: TrackedMessage<O, M> | null; last: TrackedMessage<O, M> | null }
  >();
  private readonly groupOf: ((meta: M) => unknown) | undefined;
  private readonly metaBytes: ((meta: M) => number) | undefined;
  private readonly ownerCapFactor: ((owner: O) => number) | undefined;
  private readonly ownerPaused: ((owner: O) => boolean) | undefined;
  private reservedHeadBytes = 0;

  constructor(handler: TrackerHandler<O, M>, options: TrackerOptions<O, M> = {}) {
    this.handler = handler;
    this.headBytes = options.headBytes ?? DEFAULTS.cpimHeadBytes;
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULTS.reportIdleTimeoutMs;
    this.maxMessages = options.maxMessages ?? DEFAULTS.reportMaxMessages;
    this.maxMessagesPerOwner = options.maxMessagesPerOwner ?? DEFAULTS.reportMaxMessagesPerOwner;
    this.maxHeadBytes = options.maxHeadBytes ?? DEFAULTS.reportMaxHeadBytes;
    this.maxHeadBytesPerOwner = options.maxHeadBytesPerOwner ?? DEFAULTS.reportMaxHeadBytesPerOwner;
    this.maxIntervals = options.maxIntervals ?? DEFAULTS.reportMaxIntervals;
    this.now = options.now ?? Date.now;
    this.ownerKey = options.ownerKey ?? defaultOwnerKey;
    this.groupOf = options.groupOf;
    this.metaBytes = options.metaBytes;
    this.ownerCapFactor = options.ownerCapFactor;
    this.ownerPaused = options.ownerPaused;
    this.finished = new ExpiringKeys(this.maxMessages);
  }

  /** Messages tracked now. */
  get size(): number {
    return this.messages.size;
  }

  /** CPIM head bytes reserved now, all owners together. */
  get headBytesReserved(): number {
    return this.reservedHeadBytes;
  }

  /** The live message `owner` sends with this Message-ID toward this session, if any. */
  get(owner: O, sessionKey: string, messageId: string): TrackedMessage<O, M> | undefined {
    return this.messages.get(this.ownerKey(owner) + ' ' + sessionKey + ' ' + messageId);
  }

  /**
   * A chunk's head arrived: starts (or continues) tracking its message and returns the chunk's handle, or
   * null when the message is not tracked (caps, or it already finished). `range` is the chunk's
   * Byte-Range, null when it had none (RFC 4975 §7.3.1: then it starts at octet 1). `meta` is the latest
   * chunk's: a sender that re-authenticated mid-message sends its later chunks on new paths, and a report
   * must go back on those (the old token may be gone).
   */
  begin(
    owner: O,
    sessionKey: string,
    messageId: string,
    range: ByteRange | null,
    meta: M,
  ): TrackedChunk<O, M> | null {
    const key = this.ownerKey(owner) + ' ' + sessionKey + ' ' + messageId;
    let msg = this.messages.get(key);
    const now = this.now();
    if (msg === undefined) {
      const tombstone = this.finished.tag(key);
      if (tombstone !== undefined) {
        // A late, repeated or post-failure chunk; the later chunks of a message settled at its head or left
        // untracked are ordinary ones of an IM counted already, not `late` (metrics audit).
        if (tombstone !== QUIET) this.handler.onUntracked?.(owner, 'finished');
        return null;
      }
      const total = range !== null && range.total !== '*' ? range.total : -1;
      const reserve = total >= 0 ? Math.min(total, this.headBytes) : this.headBytes;
      const charge = this.metaBytes?.(meta) ?? 0;
      const rec = this.owners.get(owner);
      const refused: UntrackedReason | null =
        this.messages.size >= this.maxMessages
          ? 'messages'
          : rec !== undefined && this.pastOwnerCap(owner, rec.count + 1, this.maxMessagesPerOwner)
            ? 'owner-messages'
            : this.overHeadCaps(owner, rec, reserve + charge);
      if (refused !== null) {
        // The tombstone keeps later chunks out: tracked from the middle, the message could never be whole.
        this.tombstone(key, now, true);
        this.handler.onUntracked?.(owner, refused);
        return null;
      }
      msg = new TrackedMessage(key, sessionKey, messageId, owner, meta, reserve, now);
      msg.total = total;
      msg.metaCharge = charge;
      this.messages.set(key, msg);
      msg.allPrev = this.newest;
      if (this.newest !== null) this.newest.allNext = msg;
      else this.oldest = msg;
      this.newest = msg;
      this.reservedHeadBytes += reserve + charge;
      const r = rec ?? { first: null, last: null, count: 0, headBytes: 0 };
      if (rec === undefined) this.owners.set(owner, r);
      msg.ownerPrev = r.last;
      if (r.last !== null) r.last.ownerNext = msg;
      else r.first = msg;
      r.last = msg;
      r.count++;
      r.headBytes += reserve + charge;
      this.joinGroup(msg);
    } else {
      if (msg.total < 0 && range !== null && range.total !== '*') msg.total = range.total;
      if (this.metaBytes !== undefined) {
        // Larger paths on a later chunk are charged like a first chunk's: within the caps, or the message
        // is no longer tracked (review: two steps, small paths then large ones, passed the caps).
        const charge = this.metaBytes(meta);
        const grow = charge - msg.metaCharge;
        if (grow > 0 && this.overHeadCaps(owner, this.owners.get(owner), grow) !== null) {
          this.forget(msg, 'caps', true);
          return null;
        }
        this.recharge(msg, charge);
      }
      msg.lastActivity = now;
      msg.meta = meta;
      if (this.groupOf !== undefined && this.groupOf(meta) !== msg.group) {
        this.leaveGroup(msg);
        this.joinGroup(msg);
      }
    }
    msg.openChunks++;
    msg.chunks++;
    return new TrackedChunk(msg, range?.start ?? 1);
  }

  /**
   * Body octets of the chunk, in order. The head is read in place when the first piece holds all of it;
   * otherwise the octets within the head cap are copied until it is complete.
   */
  data(chunk: TrackedChunk<O, M>, piece: Buffer): void {
    const off = chunk.next;
    chunk.next = off + piece.length;
    const msg = chunk.msg;
    msg.pieces++;
    if (msg.headCap === 0 || off > msg.headCap || msg.done || chunk.ended) return;
    const n = Math.min(piece.length, msg.headCap - off + 1);
    if (n <= 0) return;
    if (off === 1 && msg.headBuf === null) {
      const end = headEnd(piece, n);
      if (end !== -1) {
        const verdict = this.handler.onHead(msg, piece.subarray(0, end), false);
        // 'more' on a complete head: the octets are copied below and offered again later.
        if (verdict !== 'more') {
          this.settleHead(msg, verdict);
          return;
        }
      }
    }
    // Copied, so a 64 KiB read buffer is not pinned by the few head bytes kept (STYLE.md).
    const buf = msg.headBuf ?? (msg.headBuf = Buffer.allocUnsafe(msg.headCap));
    piece.copy(buf, off - 1, 0, n);
    (msg.headHave ??= new IntervalSet()).add(off, off + n - 1);
    const prefix = msg.headHave!.prefixEnd();
    if (prefix > msg.headScan) this.scanHead(msg, prefix);
  }

  /**
   * The chunk's end-line arrived with `flag`. `+` and `$` add the octets actually carried (RFC 4975
   * §7.3.1: the actual length counts, not the declared range-end); `$` fixes the total as the last octet
   * of this chunk; `#` abandons the message. May call the handler (whole, complete, head).
   */
  end(chunk: TrackedChunk<O, M>, flag: ContinuationFlag): void {
    if (chunk.ended) return;
    chunk.ended = true;
    const msg = chunk.msg;
    msg.openChunks--;
    if (msg.chunks === 1 && chunk.start === 1 && flag === '$') msg.oneShot = true;
    if (msg.done) {
      // Settled while this chunk streamed: remembered now unless the chunk carried the whole message.
      if (msg.openChunks === 0) this.settlePendingTombstone(msg, this.now());
      return;
    }
    if (flag === '#') {
      // RFC 4975 §7.3.1: `#` means no more chunks of this message will be sent.
      this.forget(msg, 'aborted');
      return;
    }
    const last = chunk.next - 1;
    msg.received.add(chunk.start, last);
    if (flag === '$') msg.total = last;
    if (msg.received.count > this.maxIntervals) {
      this.forget(msg, 'holes', true);
      return;
    }
    msg.lastActivity = this.now();
    this.check(msg);
  }

  /** The next hop acknowledged octets `start..end` of the message (its 200 to a forwarded sub-chunk). */
  acked(msg: TrackedMessage<O, M>, start: number, end: number): void {
    if (msg.done || end < start) return;
    msg.acked.add(start, end);
    if (msg.acked.count > this.maxIntervals) {
      this.forget(msg, 'holes', true);
      return;
    }
    msg.lastActivity = this.now();
    if (msg.wasWhole && msg.isAcked()) this.complete(msg);
  }

  /** {@link acked} by key; ignored when the message is not tracked. */
  ackedByKey(owner: O, sessionKey: string, messageId: string, start: number, end: number): void {
    const msg = this.get(owner, sessionKey, messageId);
    if (msg !== undefined) this.acked(msg, start, end);
  }

  /** The message failed with `code` (non-200, 408, 481, 413): the handler is told and it is forgotten. */
  fail(msg: TrackedMessage<O, M>, code: number): void {
    if (msg.done) return;
    this.remove(msg, this.now());
    this.handler.onFailed(msg, code);
  }

  /** {@link fail} by key: false, and nothing done, when the message is not tracked. */
  failByKey(owner: O, sessionKey: string, messageId: string, code: number): boolean {
    const msg = this.get(owner, sessionKey, messageId);
    if (msg === undefined) return false;
    this.fail(msg, code);
    return true;
  }

  /**
   * Fails every live message of `group` ({@link TrackerOptions.groupOf}) and forgets the group (its
   * connection is gone); returns how many failed.
   */
  failGroup(group: unknown, code: number): number {
    const hit: Array<TrackedMessage<O, M>> = [];
    for (let msg = this.groups.get(group)?.first ?? null; msg !== null; msg = msg.groupNext) hit.push(msg);
    for (const msg of hit) this.fail(msg, code);
    this.groups.delete(group);
    return hit.length;
  }

  /** Fails every live message `match` selects (e.g. those toward a connection that was lost). */
  failWhere(match: (msg: TrackedMessage<O, M>) => boolean, code: number): number {
    const hit: Array<TrackedMessage<O, M>> = [];
    for (let msg = this.oldest; msg !== null; msg = msg.allNext) if (match(msg)) hit.push(msg);
    for (const msg of hit) this.fail(msg, code);
    return hit.length;
  }

  /**
   * Forgets every message of `owner` (its connection closed: nobody is left to report to), but those
   * `keep` selects: they lose their owner's accounting and stay live under the tracker's own caps and
   * idle timeout, for an outcome that has another way back. Returns how many it held.
   */
  dropOwner(owner: O, keep?: (msg: TrackedMessage<O, M>) => boolean): number {
    const rec = this.owners.get(owner);
    if (rec === undefined) return 0;
    this.owners.delete(owner);
    // Unlinked before any handler runs: one that begins a message for the same owner gets a fresh list.
    const msgs: Array<TrackedMessage<O, M>> = [];
    for (let m = rec.first; m !== null;) {
      const next = m.ownerNext;
      m.ownerLinked = false;
      m.ownerPrev = m.ownerNext = null;
      msgs.push(m);
      m = next;
    }
    const now = this.now();
    for (const msg of msgs) {
      if (keep?.(msg) === true) continue;
      this.forget(msg, 'owner-closed');
      // Its open chunk can no longer end: the tombstone it waited for is due now.
      this.settlePendingTombstone(msg, now);
    }
    return msgs.length;
  }

  /**
   * Drops messages idle for `idleTimeoutMs`: no chunk, acknowledgement, or octets of a chunk in
   * progress. One the relay held whole but the next hop never fully acknowledged fails with 408; one
   * still missing octets is dropped ('timeout'), also when its sender stopped in the middle of a chunk
   * and kept its connection open (an audit found such a message tracked until the connection closed).
   * A chunk in progress counts as active at the sweep that sees its octets, so call this often (the
   * relay's tick, every second). Also expires tombstones.
   */
  sweep(now = this.now()): void {
    const cutoff = now - this.idleTimeoutMs;
    const expired: Array<TrackedMessage<O, M>> = [];
    for (let msg = this.oldest; msg !== null; msg = msg.allNext) {
      if (msg.openChunks > 0 && (msg.pieces !== msg.piecesSwept || this.ownerPaused?.(msg.owner) === true)) {
        // Octets came since the last sweep, or the caller is not reading them (review: a sender paused
        // for a full queue toward its recipient looked stalled, and its message expired unreported).
        msg.piecesSwept = msg.pieces;
        if (msg.lastActivity < now) msg.lastActivity = now;
      } else if (msg.lastActivity <= cutoff) expired.push(msg);
    }
    for (const msg of expired) {
      if (msg.wasWhole) this.fail(msg, 408);
      else this.forget(msg, 'timeout');
    }
    this.messages.shrink();
    this.finished.expire(now);
  }

  // ---- internals -----------------------------------------------------------------------------------

  /** Whole → onWhole (after a last look at the head); whole and acknowledged → onComplete. */
  private check(msg: TrackedMessage<O, M>): void {
    if (!msg.wasWhole) {
      if (!msg.isWhole()) return;
      msg.wasWhole = true;
      if (msg.headCap > 0) {
        this.offerHead(msg, this.headPrefix(msg, msg.headHave?.prefixEnd() ?? 0), true);
        if (msg.done) return;
      }
      if (!this.handler.onWhole(msg)) {
        this.forget(msg, 'settled');
        return;
      }
      if (msg.done) return;
    }
    if (msg.isAcked()) this.complete(msg);
  }

  /**
   * Scans the contiguous head prefix for the two blank lines that end a CPIM head (message headers,
   * MIME headers). A line is blank when it is empty or a lone CR before its LF, as the lenient CPIM
   * parser reads it.
   */
  private scanHead(msg: TrackedMessage<O, M>, prefix: number): void {
    const buf = msg.headBuf!;
    for (let i = msg.headScan; i < prefix; i++) {
      if (buf[i] !== LF) continue;
      const ls = msg.headLineStart;
      if ((i === ls || (i === ls + 1 && buf[ls] === CR)) && ++msg.headBlanks === 2) {
        msg.headScan = i + 1;
        this.offerHead(msg, buf.subarray(0, i + 1), false);
        return;
      }
      msg.headLineStart = i + 1;
    }
    msg.headScan = prefix;
    // The cap is reached without a complete head: the last chance (DESIGN.md: inspection stops there).
    if (prefix === msg.headCap) this.offerHead(msg, buf.subarray(0, prefix), true);
  }

  /** The first `length` copied head octets. */
  private headPrefix(msg: TrackedMessage<O, M>, length: number): Buffer {
    return msg.headBuf === null ? EMPTY : msg.headBuf.subarray(0, length);
  }

  private offerHead(msg: TrackedMessage<O, M>, prefix: Buffer, final: boolean): void {
    const verdict = this.handler.onHead(msg, prefix, final);
    if (verdict === 'more' && !final) return;
    this.settleHead(msg, verdict);
  }

  /** Inspection is over: the head reservation is freed, and the message dropped unless kept. */
  private settleHead(msg: TrackedMessage<O, M>, verdict: HeadVerdict): void {
    this.releaseHead(msg);
    if (verdict !== 'keep') this.forget(msg, 'settled', true);
  }

  /** The head-byte cap `more` octets would pass, all owners' or `owner`'s own (`rec`); null for none. */
  private overHeadCaps(
    owner: O,
    rec: OwnerRecord<O, M> | undefined,
    more: number,
  ): 'head-bytes' | 'owner-head-bytes' | null {
    if (this.reservedHeadBytes + more > this.maxHeadBytes) return 'head-bytes';
    if (this.pastOwnerCap(owner, (rec?.headBytes ?? 0) + more, this.maxHeadBytesPerOwner))
      return 'owner-head-bytes';
    return null;
  }

  /**
   * True when `held` passes `owner`'s share of the per-owner cap `plain` (times its factor, which is asked
   * only past `plain`).
   */
  private pastOwnerCap(owner: O, held: number, plain: number): boolean {
    return held > plain && (this.ownerCapFactor === undefined || held > plain * this.ownerCapFactor(owner));
  }

  /** Charges `msg`'s meta at `charge` octets from now on (a later chunk's paths replace the first's). */
  private recharge(msg: TrackedMessage<O, M>, charge: number): void {
    const delta = charge - msg.metaCharge;
    if (delta === 0) return;
    msg.metaCharge = charge;
    this.reservedHeadBytes += delta;
    const rec = this.owners.get(msg.owner);
    if (rec !== undefined && msg.ownerLinked) rec.headBytes += delta;
  }

  private releaseHead(msg: TrackedMessage<O, M>): void {
    if (msg.headCap === 0) return;
    this.reservedHeadBytes -= msg.headCap;
    const rec = this.owners.get(msg.owner);
    if (rec !== undefined && msg.ownerLinked) rec.headBytes -= msg.headCap;
    msg.headCap = 0;
    msg.headBuf = null;
    msg.headHave = null;
  }

  private complete(msg: TrackedMessage<O, M>): void {
    this.remove(msg, this.now());
    this.handler.onComplete(msg);
  }

  /** Drops `msg` for `reason`; `quiet`: its later chunks will not count `late` (see quietTombstone). */
  private forget(msg: TrackedMessage<O, M>, reason: DropReason, quiet = false): void {
    if (msg.done) return;
    msg.quietTombstone = quiet;
    this.remove(msg, this.now());
    this.handler.onDropped?.(msg, reason);
  }

  private remove(msg: TrackedMessage<O, M>, now: number): void {
    msg.done = true;
    this.releaseHead(msg);
    this.recharge(msg, 0);
    this.leaveGroup(msg);
    this.messages.delete(msg.key);
    if (msg.allPrev !== null) msg.allPrev.allNext = msg.allNext;
    else this.oldest = msg.allNext;
    if (msg.allNext !== null) msg.allNext.allPrev = msg.allPrev;
    else this.newest = msg.allPrev;
    msg.allPrev = msg.allNext = null;
    const rec = this.owners.get(msg.owner);
    // The owner's record stays, empty, until dropOwner: a busy connection does not rebuild it per message.
    if (rec !== undefined && msg.ownerLinked) {
      if (msg.ownerPrev !== null) msg.ownerPrev.ownerNext = msg.ownerNext;
      else rec.first = msg.ownerNext;
      if (msg.ownerNext !== null) msg.ownerNext.ownerPrev = msg.ownerPrev;
      else rec.last = msg.ownerPrev;
      msg.ownerPrev = msg.ownerNext = null;
      rec.count--;
    }
    msg.ownerLinked = false;
    if (msg.openChunks > 0) msg.tombstonePending = true;
    else this.tombstoneFinished(msg, now);
  }

  /** Lists `msg` in the group of its meta, last. */
  private joinGroup(msg: TrackedMessage<O, M>): void {
    const g = this.groupOf?.(msg.meta);
    if (g === undefined) return;
    let rec = this.groups.get(g);
    if (rec === undefined) this.groups.set(g, (rec = { first: null, last: null }));
    msg.group = g;
    msg.groupPrev = rec.last;
    msg.groupNext = null;
    if (rec.last !== null) rec.last.groupNext = msg;
    else rec.first = msg;
    rec.last = msg;
  }

  /** Takes `msg` out of its group's list. */
  private leaveGroup(msg: TrackedMessage<O, M>): void {
    if (msg.group === undefined) return;
    const rec = this.groups.get(msg.group);
    if (msg.groupPrev !== null) msg.groupPrev.groupNext = msg.groupNext;
    else if (rec !== undefined) rec.first = msg.groupNext;
    if (msg.groupNext !== null) msg.groupNext.groupPrev = msg.groupPrev;
    else if (rec !== undefined) rec.last = msg.groupPrev;
    msg.group = undefined;
    msg.groupPrev = msg.groupNext = null;
  }

  /** Writes the tombstone a finished message put off while its chunk was open. */
  private settlePendingTombstone(msg: TrackedMessage<O, M>, now: number): void {
    if (!msg.tombstonePending) return;
    msg.tombstonePending = false;
    this.tombstoneFinished(msg, now);
  }

  /** A finished message's tombstone, unless it came whole in one chunk (no later chunks can follow). */
  private tombstoneFinished(msg: TrackedMessage<O, M>, now: number): void {
    if (!msg.oneShot) this.tombstone(msg.key, now, msg.quietTombstone);
  }

  /** Remembers a finished key for one idle period, so its late chunks are not tracked again. */
  private tombstone(key: string, now: number, quiet = false): void {
    this.finished.add(key, now + this.idleTimeoutMs, quiet ? QUIET : 0);
  }
}

const EMPTY = Buffer.alloc(0);

/**
 * The length of the CPIM head at the start of `buf` (through the second blank line, as
 * `MessageTracker.scanHead` counts them), or -1 when the first `limit` octets do not hold it.
 */
function headEnd(buf: Buffer, limit: number): number {
  let blanks = 0;
  let lineStart = 0;
  for (;;) {
    const lf = buf.indexOf(LF, lineStart);
    if (lf === -1 || lf >= limit) return -1;
    if ((lf === lineStart || (lf === lineStart + 1 && buf[lineStart] === CR)) && ++blanks === 2)
      return lf + 1;
    lineStart = lf + 1;
  }
}
