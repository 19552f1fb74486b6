import { expect } from 'chai';
import fc from 'fast-check';
import { parseByteRange } from '../../lib/msrp/headers.js';
import {
  IntervalSet,
  MessageTracker,
  type DropReason,
  type HeadVerdict,
  type TrackedMessage,
  type TrackerHandler,
  type TrackerOptions,
  type UntrackedReason,
} from '../../lib/reports/tracker.js';
import { E5_1 } from '../helpers/cpim-fixtures.js';
import { seededRandom } from '../helpers/fixtures.js';
import { chunksOf, feedChunk, openChunk } from '../helpers/reports.js';

/** What the tests attach to a message. */
interface Meta {
  dest: string;
}

const META: Meta = { dest: 'bob-conn' };
const SESSION = 'msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';

/** Digest §5.7 E5.1 without its text: the CPIM head of an IM requesting IMDNs (254 octets). */
const HEAD = E5_1.slice(0, E5_1.lastIndexOf('\r\n\r\n') + 4);

/** A handler that records every event as a short string. */
class Recorder implements TrackerHandler<string, Meta> {
  readonly events: string[] = [];
  readonly heads: Array<{ id: string; prefix: string; final: boolean }> = [];
  verdict: HeadVerdict = 'keep';
  keepWhenWhole = true;

  onHead(msg: TrackedMessage<string, Meta>, prefix: Buffer, final: boolean): HeadVerdict {
    this.heads.push({ id: msg.messageId, prefix: prefix.toString('latin1'), final });
    this.events.push(`head:${msg.messageId}${final ? ':final' : ''}`);
    return this.verdict;
  }

  onWhole(msg: TrackedMessage<string, Meta>): boolean {
    this.events.push(`whole:${msg.messageId}`);
    return this.keepWhenWhole;
  }

  onComplete(msg: TrackedMessage<string, Meta>): void {
    this.events.push(`complete:${msg.messageId}`);
  }

  onFailed(msg: TrackedMessage<string, Meta>, code: number): void {
    this.events.push(`failed:${msg.messageId}:${code}`);
  }

  onDropped(msg: TrackedMessage<string, Meta>, reason: DropReason): void {
    this.events.push(`dropped:${msg.messageId}:${reason}`);
  }

  onUntracked(owner: string, reason: UntrackedReason): void {
    this.events.push(`untracked:${owner}:${reason}`);
  }
}

/** A tracker with a recorder and a settable clock. */
function setup(options: TrackerOptions<string, Meta> = {}): {
  tracker: MessageTracker<string, Meta>;
  rec: Recorder;
  clock: { now: number };
} {
  const rec = new Recorder();
  const clock = { now: 1_000_000 };
  const tracker = new MessageTracker<string, Meta>(rec, { now: () => clock.now, ...options });
  return { tracker, rec, clock };
}

describe('IntervalSet', () => {
  it('extends one interval when octets arrive in order', () => {
    const s = new IntervalSet();
    s.add(1, 100);
    s.add(101, 250);
    s.add(251, 251);
    expect(s.toArray()).to.deep.equal([[1, 251]]);
    expect(s.count).to.equal(1);
    expect(s.octets).to.equal(251);
  });

  it('keeps gaps as separate intervals', () => {
    const s = new IntervalSet();
    s.add(1, 10);
    s.add(21, 30);
    s.add(41, 50);
    expect(s.toArray()).to.deep.equal([
      [1, 10],
      [21, 30],
      [41, 50],
    ]);
    expect(s.covers(1, 10)).to.equal(true);
    expect(s.covers(1, 11)).to.equal(false);
    expect(s.covers(15, 15)).to.equal(false);
    expect(s.octets).to.equal(30);
  });

  it('fills a gap and merges the neighbours into one interval', () => {
    const s = new IntervalSet();
    s.add(1, 10);
    s.add(21, 30);
    s.add(11, 20);
    expect(s.toArray()).to.deep.equal([[1, 30]]);
  });

  it('merges overlapping intervals', () => {
    const s = new IntervalSet();
    s.add(10, 20);
    s.add(30, 40);
    s.add(15, 35);
    expect(s.toArray()).to.deep.equal([[10, 40]]);
    s.add(5, 50);
    expect(s.toArray()).to.deep.equal([[5, 50]]);
    s.add(12, 13);
    expect(s.toArray()).to.deep.equal([[5, 50]]);
  });

  it('inserts intervals that arrive out of order at their place', () => {
    const s = new IntervalSet();
    s.add(201, 300);
    s.add(1, 100);
    s.add(120, 130);
    expect(s.toArray()).to.deep.equal([
      [1, 100],
      [120, 130],
      [201, 300],
    ]);
    expect(s.prefixEnd()).to.equal(100);
  });

  it('ignores an empty range (end before start)', () => {
    const s = new IntervalSet();
    s.add(5, 4);
    expect(s.count).to.equal(0);
    expect(s.covers(1, 0)).to.equal(true);
    expect(s.prefixEnd()).to.equal(0);
  });

  it('answers coversWith for the set plus one extra range', () => {
    const s = new IntervalSet();
    s.add(1, 100);
    s.add(201, 300);
    expect(s.coversWith(1, 300, 101, 200)).to.equal(true);
    expect(s.coversWith(1, 300, 101, 199)).to.equal(false);
    expect(s.coversWith(1, 100, 500, 499)).to.equal(true);
  });

  it('agrees with a set of octets after any sequence of adds (fast-check)', () => {
    const range = fc.tuple(fc.integer({ min: 1, max: 40 }), fc.integer({ min: 0, max: 12 }));
    fc.assert(
      fc.property(fc.array(range, { maxLength: 12 }), fc.tuple(fc.nat(45), fc.nat(45)), (adds, [a, b]) => {
        const s = new IntervalSet();
        const model = new Set<number>();
        for (const [start, len] of adds) {
          s.add(start, start + len - 1);
          for (let o = start; o < start + len; o++) model.add(o);
        }
        const sorted = [...model].sort((x, y) => x - y);
        const runs: Array<[number, number]> = [];
        for (const o of sorted) {
          const last = runs[runs.length - 1];
          if (last !== undefined && last[1] === o - 1) last[1] = o;
          else runs.push([o, o]);
        }
        expect(s.toArray()).to.deep.equal(runs);
        expect(s.count).to.equal(runs.length);
        expect(s.octets).to.equal(model.size);
        expect(s.prefixEnd()).to.equal(runs[0]?.[0] === 1 ? runs[0][1] : 0);
        const [lo, hi] = a <= b ? [a, b] : [b, a];
        let all = true;
        for (let o = lo; o <= hi; o++) all &&= model.has(o);
        expect(s.covers(lo, hi)).to.equal(all);
      }),
      { numRuns: 500, seed: 4975 },
    );
  });

  it('handles octet numbers above 2^32 exactly', () => {
    const s = new IntervalSet();
    const big = 2 ** 40;
    s.add(1, big);
    s.add(big + 1, big + 5);
    expect(s.toArray()).to.deep.equal([[1, big + 5]]);
  });
});

describe('MessageTracker', () => {
  describe('received octets', () => {
    it('makes a one-chunk message whole at its `$` end-line', () => {
      const { tracker, rec } = setup();
      const chunk = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-9/9',
        body: 'Hello Bob',
        flag: '$',
      });
      const msg = chunk!.msg;
      expect(msg.total).to.equal(9);
      expect(msg.received.toArray()).to.deep.equal([[1, 9]]);
      expect(msg.isWhole()).to.equal(true);
      expect(msg.isAcked()).to.equal(false);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1']);
    });

    it('is not whole while a gap remains, and whole once it is filled', () => {
      const { tracker, rec } = setup();
      rec.verdict = 'keep';
      const body = 'a'.repeat(300);
      const [c1, c2, c3] = chunksOf(body, 100);
      const first = feedChunk(tracker, 'alice', SESSION, 'm1', META, c1!)!;
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c3!);
      expect(first.msg.received.toArray()).to.deep.equal([
        [1, 100],
        [201, 300],
      ]);
      expect(first.msg.isWhole()).to.equal(false);
      expect(rec.events).to.deep.equal([]);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c2!);
      expect(first.msg.received.toArray()).to.deep.equal([[1, 300]]);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1']);
    });

    it('tracks chunks that arrive out of order, the `$` chunk first', () => {
      const { tracker, rec } = setup();
      rec.keepWhenWhole = true;
      const [c1, c2] = chunksOf('x'.repeat(4000), 2048);
      const last = feedChunk(tracker, 'alice', SESSION, 'm1', META, c2!)!;
      expect(last.msg.total).to.equal(4000);
      expect(last.msg.isWhole()).to.equal(false);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c1!);
      expect(last.msg.isWhole()).to.equal(true);
      expect(rec.events.filter((e) => e.startsWith('whole'))).to.deep.equal(['whole:m1']);
    });

    it('counts overlapping octets once', () => {
      const { tracker } = setup();
      const buf = Buffer.from('y'.repeat(200));
      const a = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-120/200',
        body: buf.subarray(0, 120),
        flag: '+',
      })!;
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '81-150/200',
        body: buf.subarray(80, 150),
        flag: '+',
      });
      expect(a.msg.received.toArray()).to.deep.equal([[1, 150]]);
      expect(a.msg.received.octets).to.equal(150);
    });

    it('keeps interleaved messages of one session apart', () => {
      const { tracker } = setup();
      const a = chunksOf('A'.repeat(300), 100);
      const b = chunksOf('B'.repeat(200), 100);
      const ma = feedChunk(tracker, 'alice', SESSION, 'ma', META, a[0]!)!.msg;
      const mb = feedChunk(tracker, 'alice', SESSION, 'mb', META, b[0]!)!.msg;
      feedChunk(tracker, 'alice', SESSION, 'ma', META, a[1]!);
      feedChunk(tracker, 'alice', SESSION, 'mb', META, b[1]!);
      expect(ma.received.toArray()).to.deep.equal([[1, 200]]);
      expect(ma.isWhole()).to.equal(false);
      expect(mb.isWhole()).to.equal(true);
      expect(ma.total).to.equal(300);
      expect(mb.total).to.equal(200);
    });

    it('keeps the same Message-ID in two sessions apart', () => {
      const { tracker } = setup();
      const one = feedChunk(tracker, 'alice', 'msrp://h:1/s1;tcp', 'm1', META, {
        range: '1-*/*',
        body: 'abc',
        flag: '+',
      })!.msg;
      const two = feedChunk(tracker, 'carol', 'msrp://h:1/s2;tcp', 'm1', META, {
        range: '1-*/*',
        body: 'abcdef',
        flag: '+',
      })!.msg;
      expect(one).to.not.equal(two);
      expect(one.received.toArray()).to.deep.equal([[1, 3]]);
      expect(two.received.toArray()).to.deep.equal([[1, 6]]);
      expect(tracker.size).to.equal(2);
    });

    it('resolves `*` ends and totals from the octets actually carried and the `$` chunk', () => {
      const { tracker } = setup();
      const c1 = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-*/*',
        body: 'z'.repeat(3000),
        flag: '+',
      })!;
      expect(c1.msg.total).to.equal(-1);
      expect(c1.msg.isWhole()).to.equal(false);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '3001-*/*',
        body: 'z'.repeat(17),
        flag: '$',
      });
      expect(c1.msg.total).to.equal(3017);
      expect(c1.msg.received.toArray()).to.deep.equal([[1, 3017]]);
      expect(c1.msg.isWhole()).to.equal(true);
    });

    it('uses the octets actually carried by an interrupted chunk, not its declared end', () => {
      const { tracker } = setup();
      const c1 = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-*/500',
        body: 'q'.repeat(120),
        flag: '+',
      })!;
      expect(c1.msg.received.toArray()).to.deep.equal([[1, 120]]);
      expect(c1.msg.total).to.equal(500);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '121-500/500',
        body: 'q'.repeat(380),
        flag: '$',
      });
      expect(c1.msg.isWhole()).to.equal(true);
    });

    it('treats a chunk without Byte-Range as starting at octet 1', () => {
      const { tracker } = setup();
      const c = feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: null, body: 'hello', flag: '$' })!;
      expect(c.start).to.equal(1);
      expect(c.msg.total).to.equal(5);
      expect(c.msg.isWhole()).to.equal(true);
    });

    it('makes the empty message 1-0/0 whole (and trivially acknowledged) with total 0', () => {
      const { tracker, rec } = setup();
      const c = feedChunk(tracker, 'alice', SESSION, 'm0', META, { range: '1-0/0', body: '', flag: '$' })!;
      expect(c.msg.total).to.equal(0);
      expect(c.msg.received.count).to.equal(0);
      expect(c.msg.isWhole()).to.equal(true);
      expect(c.msg.isAcked()).to.equal(true);
      expect(rec.events).to.deep.equal(['whole:m0', 'complete:m0']);
    });

    it('drops a message whose chunk ends with `#` and does not track its later chunks', () => {
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'abc', flag: '#' });
      expect(tracker.size).to.equal(0);
      const late = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '4-6/6',
        body: 'def',
        flag: '$',
      });
      expect(late).to.equal(null);
      expect(rec.events).to.deep.equal(['dropped:m1:aborted', 'untracked:alice:finished']);
    });

    it('drops a message with more holes than maxIntervals', () => {
      const { tracker, rec } = setup({ maxIntervals: 3 });
      for (const start of [1, 11, 21]) {
        feedChunk(tracker, 'alice', SESSION, 'm1', META, {
          range: `${start}-${start}/100`,
          body: 'x',
          flag: '+',
        });
      }
      expect(tracker.size).to.equal(1);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '31-31/100', body: 'x', flag: '+' });
      expect(tracker.size).to.equal(0);
      expect(rec.events).to.deep.equal(['dropped:m1:holes']);
    });

    it('tells whether ending a chunk would make the message whole', () => {
      const { tracker } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-100/150',
        body: 'x'.repeat(100),
        flag: '+',
      });
      const c = openChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '101-150/150',
        body: 'x'.repeat(50),
        flag: '$',
      })!;
      expect(c.wouldBeWhole('$')).to.equal(true);
      expect(c.wouldBeWhole('#')).to.equal(false);
      const partial = openChunk(tracker, 'alice', SESSION, 'm2', META, {
        range: '1-*/*',
        body: 'x'.repeat(10),
        flag: '+',
      })!;
      expect(partial.wouldBeWhole('+')).to.equal(false);
      expect(partial.wouldBeWhole('$')).to.equal(true);
    });
  });

  describe('acknowledged octets', () => {
    it('completes once every octet is received and acknowledged', () => {
      const { tracker, rec } = setup();
      const chunks = chunksOf('k'.repeat(250), 100);
      const msg = feedChunk(tracker, 'alice', SESSION, 'm1', META, chunks[0]!)!.msg;
      tracker.acked(msg, 1, 100);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, chunks[1]!);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, chunks[2]!);
      expect(msg.isWhole()).to.equal(true);
      tracker.acked(msg, 201, 250);
      expect(msg.acked.toArray()).to.deep.equal([
        [1, 100],
        [201, 250],
      ]);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1']);
      tracker.acked(msg, 101, 200);
      expect(msg.isAcked()).to.equal(true);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1', 'complete:m1']);
      expect(tracker.size).to.equal(0);
    });

    it('completes at the end-line when the acknowledgements came first', () => {
      const { tracker, rec } = setup();
      const c = openChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-*/*',
        body: 'abcdef',
        flag: '$',
      })!;
      tracker.acked(c.msg, 1, 3);
      tracker.acked(c.msg, 4, 6);
      expect(rec.events).to.deep.equal([]);
      tracker.end(c, '$');
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1', 'complete:m1']);
    });

    it("keeps two senders' messages apart when they use one Message-ID toward one session", () => {
      // RFC 4975 §7.1: a Message-ID is its sender's. Carol's chunk must not complete, nor fail, Alice's.
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-4/8', body: 'abcd', flag: '+' });
      const carols = feedChunk(tracker, 'carol', SESSION, 'm1', META, {
        range: '5-8/8',
        body: 'ZZZZ',
        flag: '$',
      });
      tracker.ackedByKey('alice', SESSION, 'm1', 1, 4);
      tracker.ackedByKey('carol', SESSION, 'm1', 5, 8);
      tracker.failByKey('carol', SESSION, 'm1', 413);
      // Carol's message failed; Alice's is still tracked with her own 4 octets, none acknowledged twice.
      expect(rec.events).to.deep.equal(['failed:m1:413']);
      expect(carols!.msg.owner).to.equal('carol');
      expect(tracker.get('alice', SESSION, 'm1')!.received.octets).to.equal(4);
      expect(tracker.size).to.equal(1);
    });

    it('acknowledges by key and ignores unknown keys', () => {
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-4/4', body: 'abcd', flag: '$' });
      tracker.ackedByKey('alice', SESSION, 'nope', 1, 4);
      tracker.ackedByKey('alice', SESSION, 'm1', 1, 4);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1', 'complete:m1']);
    });

    it('stops tracking when onWhole returns false', () => {
      const { tracker, rec } = setup();
      rec.keepWhenWhole = false;
      const msg = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-4/4',
        body: 'abcd',
        flag: '$',
      })!.msg;
      tracker.acked(msg, 1, 4);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1', 'dropped:m1:settled']);
    });
  });

  describe('failures', () => {
    it('reports a failure once and forgets the message', () => {
      const { tracker, rec } = setup();
      const msg = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-*/*',
        body: 'ab',
        flag: '+',
      })!.msg;
      tracker.fail(msg, 403);
      tracker.fail(msg, 408);
      tracker.acked(msg, 1, 2);
      expect(rec.events).to.deep.equal(['failed:m1:403']);
      expect(tracker.size).to.equal(0);
    });

    it('does not track chunks that arrive after a failure', () => {
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'ab', flag: '+' });
      tracker.failByKey('alice', SESSION, 'm1', 413);
      const c = feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '3-4/4', body: 'cd', flag: '$' });
      expect(c).to.equal(null);
      expect(rec.events).to.deep.equal(['failed:m1:413', 'untracked:alice:finished']);
    });

    it('fails every message toward a lost connection with failWhere', () => {
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', { dest: 'bob' }, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm2', { dest: 'carol' }, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'dave', SESSION, 'm3', { dest: 'bob' }, { range: '1-*/*', body: 'a', flag: '+' });
      expect(tracker.failWhere((m) => m.meta.dest === 'bob', 481)).to.equal(2);
      expect(rec.events).to.deep.equal(['failed:m1:481', 'failed:m3:481']);
      expect(tracker.size).to.equal(1);
    });

    it('fails a group with failGroup, visiting only its messages, which leave it as they finish', () => {
      // Complexity audit: every connection close scanned all tracked messages (failWhere).
      const { tracker, rec } = setup({ groupOf: (m) => m.dest });
      const open = (owner: string, id: string, dest: string, flag: '+' | '$' = '+'): void => {
        feedChunk(tracker, owner, SESSION, id, { dest }, { range: '1-*/*', body: 'a', flag });
      };
      open('alice', 'm1', 'bob');
      open('alice', 'm2', 'carol');
      open('dave', 'm3', 'bob');
      open('dave', 'm4', 'bob');
      tracker.failByKey('dave', SESSION, 'm3', 413); // left bob's group as it finished
      open('alice', 'm2', 'bob'); // its later chunk goes to bob: it moves to bob's group
      expect(tracker.failGroup('bob', 481)).to.equal(3);
      expect(rec.events).to.deep.equal(['failed:m3:413', 'failed:m1:481', 'failed:m4:481', 'failed:m2:481']);
      expect([tracker.size, tracker.failGroup('bob', 481), tracker.failGroup('carol', 481)]).to.deep.equal([
        0, 0, 0,
      ]);
    });

    it('forgets every message of an owner whose connection closed', () => {
      const { tracker, rec } = setup();
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'dave', SESSION, 'm3', META, { range: '1-*/*', body: 'a', flag: '+' });
      expect(tracker.dropOwner('alice')).to.equal(2);
      expect(rec.events).to.deep.equal(['dropped:m1:owner-closed', 'dropped:m2:owner-closed']);
      expect(tracker.size).to.equal(1);
    });
  });

  describe('CPIM head', () => {
    it('reads a head that is whole in the first piece in place, without copying it', () => {
      const body = Buffer.from(HEAD + 'hello');
      const seen: Buffer[] = [];
      const rec = new (class extends Recorder {
        override onHead(msg: TrackedMessage<string, Meta>, prefix: Buffer, final: boolean): HeadVerdict {
          seen.push(prefix);
          return super.onHead(msg, prefix, final);
        }
      })();
      const tracker = new MessageTracker<string, Meta>(rec);
      const split = new MessageTracker<string, Meta>(rec);
      const range = `1-${body.length}/${body.length}`;
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range, body, flag: '$' });
      feedChunk(split, 'alice', SESSION, 'm2', META, { range, body, flag: '$', pieces: [100] });
      expect(rec.heads.map((h) => h.prefix)).to.deep.equal([HEAD, HEAD]);
      // The whole-in-one-piece head is a view of the read buffer; the split one had to be copied.
      const view = (b: Buffer): boolean => b.buffer === body.buffer && b.byteOffset === body.byteOffset;
      expect([view(seen[0]!), view(seen[1]!)]).to.deep.equal([true, false]);
    });

    it('keeps the head of a 3-chunk message whose head spans the first two chunks', () => {
      const { tracker, rec } = setup();
      const body = HEAD + 'b'.repeat(300);
      expect(Buffer.byteLength(HEAD)).to.equal(254);
      const [c1, c2, c3] = chunksOf(body, 200);
      const first = feedChunk(tracker, 'alice', SESSION, 'm1', META, c1!)!;
      expect(rec.heads).to.deep.equal([]);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c2!);
      expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: HEAD, final: false }]);
      expect(tracker.headBytesReserved).to.equal(0);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c3!);
      expect(rec.heads.length).to.equal(1);
      expect(first.msg.isWhole()).to.equal(true);
    });

    it('collects head octets that arrive out of order', () => {
      const { tracker, rec } = setup();
      const body = Buffer.from(HEAD + 'b'.repeat(100));
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: `101-${body.length}/${body.length}`,
        body: body.subarray(100),
        flag: '$',
      });
      expect(rec.heads).to.deep.equal([]);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: `1-100/${body.length}`,
        body: body.subarray(0, 100),
        flag: '+',
      });
      expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: HEAD, final: false }]);
    });

    it('finds the head when the body arrives one octet at a time', () => {
      const { tracker, rec } = setup();
      const body = HEAD + 'Hello Bob';
      const pieces = Array.from({ length: Buffer.byteLength(body) }, () => 1);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-263/263', body, flag: '$', pieces });
      expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: HEAD, final: false }]);
    });

    it('copies the head octets, so reusing the read buffer does not change them', () => {
      const { tracker, rec } = setup();
      rec.verdict = 'more';
      const read = Buffer.from('From: <im:a@x>\r\n');
      const c = tracker.begin('alice', SESSION, 'm1', parseByteRange('1-*/*'), META)!;
      tracker.data(c, read);
      read.fill(0x41);
      tracker.data(c, Buffer.from('\r\nContent-Type: text/plain\r\n\r\nhi'));
      expect(rec.heads[0]!.prefix).to.equal('From: <im:a@x>\r\n\r\nContent-Type: text/plain\r\n\r\n');
    });

    it('asks again when the handler wants more, and gives up at the head cap', () => {
      const { tracker, rec } = setup({ headBytes: 64 });
      rec.verdict = 'more';
      const body = 'X-Long: ' + 'v'.repeat(200);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body, flag: '+', pieces: [30, 30] });
      expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: body.slice(0, 64), final: true }]);
      expect(rec.events).to.deep.equal(['head:m1:final', 'dropped:m1:settled']);
    });

    it('offers a head without blank lines one last time when the message is whole', () => {
      const { tracker, rec } = setup();
      rec.verdict = 'more';
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'no head here', flag: '$' });
      expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: 'no head here', final: true }]);
    });

    it('finds the head exactly once under random seeded chunking, piece splits and chunk order', () => {
      const random = seededRandom(4975);
      const body = Buffer.from(HEAD + 'r'.repeat(700));
      for (let run = 0; run < 200; run++) {
        const { tracker, rec } = setup();
        const chunks = [];
        for (let at = 0; at < body.length;) {
          const size = 1 + Math.floor(random() * 300);
          const end = Math.min(body.length, at + size);
          chunks.push({
            range: `${at + 1}-${end}/${body.length}`,
            body: body.subarray(at, end),
            flag: (end === body.length ? '$' : '+') as '$' | '+',
            pieces: [Math.floor(random() * (end - at))],
          });
          at = end;
        }
        for (let i = chunks.length - 1; i > 0; i--) {
          const j = Math.floor(random() * (i + 1));
          [chunks[i], chunks[j]] = [chunks[j]!, chunks[i]!];
        }
        let msg: TrackedMessage<string, Meta> | undefined;
        for (const c of chunks) msg = feedChunk(tracker, 'alice', SESSION, 'm1', META, c)!.msg;
        expect(rec.heads).to.deep.equal([{ id: 'm1', prefix: HEAD, final: false }]);
        expect(rec.events.filter((e) => e === 'whole:m1').length).to.equal(1);
        expect(msg!.received.toArray()).to.deep.equal([[1, body.length]]);
      }
    });

    it('reserves only the message size for a head when the total is smaller than the cap', () => {
      const { tracker } = setup();
      openChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-40/40', body: '', flag: '+' });
      expect(tracker.headBytesReserved).to.equal(40);
      openChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-*/*', body: '', flag: '+' });
      expect(tracker.headBytesReserved).to.equal(40 + 8192);
    });
  });

  describe('caps', () => {
    it("counts each owner's live messages exactly through random begins, completions and failures", () => {
      const rand = seededRandom(4976);
      const { tracker, rec } = setup({ maxMessagesPerOwner: 4 });
      const live = new Map<string, Array<TrackedMessage<string, Meta>>>([
        ['alice', []],
        ['dave', []],
      ]);
      let n = 0;
      for (let step = 0; step < 3000; step++) {
        const owner = rand() < 0.5 ? 'alice' : 'dave';
        const mine = live.get(owner)!;
        const r = rand();
        if (r < 0.5) {
          const chunk = feedChunk(tracker, owner, SESSION, `m${n++}`, META, {
            range: '1-*/*',
            body: 'a',
            flag: '+',
          });
          // Tracked exactly while the owner has fewer than 4 live messages.
          expect(chunk !== null, `step ${step}`).to.equal(mine.length < 4);
          if (chunk !== null) mine.push(chunk.msg);
        } else if (mine.length > 0) {
          const i = Math.floor(rand() * mine.length);
          const [msg] = mine.splice(i, 1);
          if (r < 0.8) tracker.fail(msg!, 408);
          else {
            // A later chunk ending with `#` abandons the message.
            const c = feedChunk(tracker, owner, SESSION, msg!.messageId, META, {
              range: '2-2/*',
              body: 'b',
              flag: '#',
            });
            expect(c).to.not.equal(null);
          }
        }
      }
      rec.events.length = 0;
      tracker.dropOwner('alice');
      const dropped = rec.events.filter((e) => e.startsWith('dropped:')).map((e) => e.split(':')[1]);
      expect(dropped).to.deep.equal(live.get('alice')!.map((m) => m.messageId));
    });

    it('does not track a new message past maxMessagesPerOwner, and counts it', () => {
      const { tracker, rec } = setup({ maxMessagesPerOwner: 2 });
      for (const id of ['m1', 'm2', 'm3']) {
        feedChunk(tracker, 'alice', SESSION, id, META, { range: '1-*/*', body: 'a', flag: '+' });
      }
      const other = feedChunk(tracker, 'dave', SESSION, 'm4', META, { range: '1-*/*', body: 'a', flag: '+' });
      expect(other).to.not.equal(null);
      expect(tracker.size).to.equal(3);
      expect(rec.events).to.deep.equal(['untracked:alice:owner-messages']);
    });

    it('gives an owner ownerCapFactor times the per-owner caps, asking only past the plain ones', () => {
      // The relay: another relay's link carries many clients' messages (soak, twentieth session).
      const asked: string[] = [];
      const factor = (owner: string): number => {
        asked.push(owner);
        return owner === 'relay' ? 3 : 1;
      };
      const m = setup({ maxMessagesPerOwner: 2, ownerCapFactor: factor });
      for (let i = 0; i < 7; i++)
        feedChunk(m.tracker, 'relay', SESSION, `r${i}`, META, { range: '1-10/10', body: 'a', flag: '+' });
      for (let i = 0; i < 3; i++)
        feedChunk(m.tracker, 'alice', SESSION, `a${i}`, META, { range: '1-10/10', body: 'a', flag: '+' });
      expect([m.tracker.size, m.rec.events]).to.deep.equal([
        6 + 2,
        ['untracked:relay:owner-messages', 'untracked:alice:owner-messages'],
      ]);
      expect(asked.filter((o) => o === 'alice')).to.deep.equal(['alice']); // her third message only
      // Head bytes: 1,000 reserved per message, 7,500 for the relay's link, 2,500 for alice.
      const b = setup({ headBytes: 1000, maxHeadBytesPerOwner: 2500, ownerCapFactor: factor });
      for (let i = 0; i < 8; i++)
        feedChunk(b.tracker, 'relay', SESSION, `r${i}`, META, { range: '1-*/*', body: 'a', flag: '+' });
      for (let i = 0; i < 3; i++)
        feedChunk(b.tracker, 'alice', SESSION, `a${i}`, META, { range: '1-*/*', body: 'a', flag: '+' });
      expect([b.tracker.size, b.rec.events]).to.deep.equal([
        7 + 2,
        ['untracked:relay:owner-head-bytes', 'untracked:alice:owner-head-bytes'],
      ]);
    });

    it('keeps an untracked message untracked for its later chunks', () => {
      const { tracker, rec } = setup({ maxMessagesPerOwner: 1 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      tracker.dropOwner('alice');
      const later = feedChunk(tracker, 'alice', SESSION, 'm2', META, {
        range: '2-2/2',
        body: 'b',
        flag: '$',
      });
      expect(later).to.equal(null);
      // Its IM was counted untracked once: the later chunk is not also a `finished` (late) one.
      expect(rec.events).to.deep.equal(['untracked:alice:owner-messages', 'dropped:m1:owner-closed']);
    });

    it('does not track a new message past maxHeadBytesPerOwner', () => {
      const { tracker, rec } = setup({ headBytes: 1000, maxHeadBytesPerOwner: 2500 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm3', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'alice', SESSION, 'm4', META, { range: '1-400/400', body: 'a', flag: '+' });
      expect(tracker.size).to.equal(3);
      expect(tracker.headBytesReserved).to.equal(2400);
      expect(rec.events).to.deep.equal(['untracked:alice:owner-head-bytes']);
    });

    it('charges what the meta keeps (metaBytes) against the head-byte caps until the message ends', () => {
      // Memory audit: 15 KB paths on messages reserving ~200 octets of head passed every cap.
      const { tracker, rec } = setup({
        maxHeadBytesPerOwner: 10_000,
        metaBytes: (m) => m.dest.length,
      });
      const big = { dest: 'x'.repeat(3000) };
      const range = '1-10/10';
      for (const id of ['m1', 'm2', 'm3', 'm4'])
        feedChunk(tracker, 'alice', SESSION, id, big, { range, body: 'a', flag: '+' });
      expect([tracker.size, tracker.headBytesReserved]).to.deep.equal([3, 3 * 3010]);
      expect(rec.events).to.deep.equal(['untracked:alice:owner-head-bytes']);
      // A later chunk's meta replaces the charge; an ended message gives it back.
      feedChunk(tracker, 'alice', SESSION, 'm1', { dest: 'y' }, { range: '2-2/10', body: 'b', flag: '+' });
      expect(tracker.headBytesReserved).to.equal(2 * 3010 + 10 + 1);
      // Larger again past the cap: no longer tracked (review: small paths first, then large ones).
      const bigger = { dest: 'x'.repeat(5000) };
      const c = feedChunk(tracker, 'alice', SESSION, 'm1', bigger, { range: '3-3/10', body: 'c', flag: '+' });
      expect([c, tracker.size, rec.events.at(-1)]).to.deep.equal([null, 2, 'dropped:m1:caps']);
      tracker.failByKey('alice', SESSION, 'm2', 481);
      tracker.failByKey('alice', SESSION, 'm3', 481);
      expect(tracker.headBytesReserved).to.equal(0);
    });

    it('does not track a new message past maxMessages for all owners together', () => {
      const { tracker, rec } = setup({ maxMessages: 2 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'dave', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'erin', SESSION, 'm3', META, { range: '1-*/*', body: 'a', flag: '+' });
      expect(rec.events).to.deep.equal(['untracked:erin:messages']);
    });

    it('does not track a new message past maxHeadBytes for all owners together', () => {
      const { tracker, rec } = setup({ headBytes: 1000, maxHeadBytes: 1500 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      feedChunk(tracker, 'dave', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      expect(rec.events).to.deep.equal(['untracked:dave:head-bytes']);
    });

    it('frees an owner slot when a message finishes', () => {
      const { tracker } = setup({ maxMessagesPerOwner: 1 });
      const m1 = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-1/1',
        body: 'a',
        flag: '$',
      })!.msg;
      tracker.acked(m1, 1, 1);
      const m2 = feedChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-1/1', body: 'a', flag: '$' });
      expect(m2).to.not.equal(null);
    });
  });

  describe('tombstones', () => {
    const BODY = HEAD + 'hello';
    const WHOLE = `1-${BODY.length}/${BODY.length}`;
    /** The whole message in one chunk. */
    const ONE_CHUNK = { range: WHOLE, body: BODY, flag: '$' } as const;
    /** The head alone, interrupted with `+` (or never ended). */
    const HEAD_PART = { range: WHOLE, body: HEAD, flag: '+' } as const;
    /** The octets after the head, as a chunk of their own. */
    const REST = {
      range: `${HEAD.length + 1}-${BODY.length}/${BODY.length}`,
      body: 'hello',
      flag: '$',
    } as const;

    it('leaves none for a message that came whole in one chunk: a repeat is tracked again', () => {
      const { tracker, rec } = setup();
      const m = feedChunk(tracker, 'alice', SESSION, 'm1', META, ONE_CHUNK)!.msg;
      tracker.acked(m, 1, BODY.length);
      const again = feedChunk(tracker, 'alice', SESSION, 'm1', META, ONE_CHUNK);
      expect(again).to.not.equal(null);
      expect(rec.events).to.deep.equal(['head:m1', 'whole:m1', 'complete:m1', 'head:m1', 'whole:m1']);
    });

    it('leaves one for a message dropped at its head whose chunk then ends with `+`', () => {
      const { tracker, rec } = setup();
      rec.verdict = 'drop';
      const c = openChunk(tracker, 'alice', SESSION, 'm1', META, HEAD_PART)!;
      expect(tracker.size).to.equal(0);
      tracker.end(c, '+'); // interrupted: the rest comes in another chunk
      const rest = feedChunk(tracker, 'alice', SESSION, 'm1', META, REST);
      expect(rest).to.equal(null);
      // Settled at its head, counted under its reason there: its later chunk is no `finished` (late) one.
      expect(rec.events).to.deep.equal(['head:m1', 'dropped:m1:settled']);
    });

    it('still reports a chunk after a failure or a completion as finished (late)', () => {
      const { tracker, rec } = setup();
      const a = openChunk(tracker, 'alice', SESSION, 'm1', META, HEAD_PART)!;
      tracker.fail(a.msg, 486);
      tracker.end(a, '+');
      expect(feedChunk(tracker, 'alice', SESSION, 'm1', META, REST)).to.equal(null);
      expect(rec.events.slice(-1)).to.deep.equal(['untracked:alice:finished']);
    });

    it('leaves none for a message dropped at its head whose only chunk ends with `$`', () => {
      const { tracker, rec } = setup();
      rec.verdict = 'drop';
      feedChunk(tracker, 'alice', SESSION, 'm1', META, ONE_CHUNK);
      expect(feedChunk(tracker, 'alice', SESSION, 'm1', META, ONE_CHUNK)).to.not.equal(null);
    });

    it('leaves one for a message whose sender closed mid-chunk, and forgets the sender', () => {
      const { tracker, rec } = setup();
      const c = openChunk(tracker, 'alice', SESSION, 'm1', META, HEAD_PART)!;
      expect(c.msg.done).to.equal(false);
      tracker.dropOwner('alice'); // the connection closed; this chunk never ends
      const rest = feedChunk(tracker, 'alice', SESSION, 'm1', META, REST);
      expect(rest).to.equal(null);
      expect(rec.events).to.deep.equal(['head:m1', 'dropped:m1:owner-closed', 'untracked:alice:finished']);
      tracker.dropOwner('alice');
      expect((tracker as unknown as { owners: Map<string, unknown> }).owners.size).to.equal(0);
    });

    it('keeps a new owner list whole when a handler begins a message while the old ones are dropped', () => {
      const rec = new (class extends Recorder {
        tracker: MessageTracker<string, Meta> | null = null;
        override onDropped(msg: TrackedMessage<string, Meta>, reason: DropReason): void {
          super.onDropped(msg, reason);
          if (msg.messageId === 'a')
            this.tracker!.begin('alice', SESSION, 'd', parseByteRange('1-*/*'), META);
        }
      })();
      const tracker = new MessageTracker<string, Meta>(rec, { maxMessagesPerOwner: 3 });
      rec.tracker = tracker;
      for (const id of ['a', 'b', 'c'])
        feedChunk(tracker, 'alice', SESSION, id, META, { range: '1-*/*', body: 'x', flag: '+' });
      tracker.dropOwner('alice');
      // 'd' is alice's only live message: two more fit under the cap of 3, the next is refused.
      const more = ['e', 'f', 'g'].map((id) =>
        feedChunk(tracker, 'alice', SESSION, id, META, { range: '1-*/*', body: 'x', flag: '+' }),
      );
      expect(more.map((c) => c !== null)).to.deep.equal([true, true, false]);
      rec.events.length = 0;
      tracker.dropOwner('alice');
      expect(rec.events.filter((e) => e.startsWith('dropped:'))).to.deep.equal([
        'dropped:d:owner-closed',
        'dropped:e:owner-closed',
        'dropped:f:owner-closed',
      ]);
    });

    it('leaves one for a message of several chunks', () => {
      const { tracker, rec } = setup();
      const [c1, c2] = chunksOf(BODY, 200);
      feedChunk(tracker, 'alice', SESSION, 'm1', META, c1!);
      const m = feedChunk(tracker, 'alice', SESSION, 'm1', META, c2!)!.msg;
      tracker.acked(m, 1, BODY.length);
      expect(feedChunk(tracker, 'alice', SESSION, 'm1', META, c2!)).to.equal(null);
      expect(rec.events.at(-1)).to.equal('untracked:alice:finished');
    });
  });

  describe('sweep', () => {
    it('drops a message idle for idleTimeoutMs, not a millisecond earlier', () => {
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 120_000 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' });
      tracker.sweep(clock.now + 119_999);
      expect(tracker.size).to.equal(1);
      tracker.sweep(clock.now + 120_000);
      expect(tracker.size).to.equal(0);
      expect(rec.events).to.deep.equal(['dropped:m1:timeout']);
    });

    it('uses the last chunk or acknowledgement as the activity time', () => {
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 1000 });
      const msg = feedChunk(tracker, 'alice', SESSION, 'm1', META, {
        range: '1-*/*',
        body: 'a',
        flag: '+',
      })!.msg;
      feedChunk(tracker, 'alice', SESSION, 'm2', META, { range: '1-*/*', body: 'a', flag: '+' });
      clock.now += 800;
      tracker.acked(msg, 1, 1);
      tracker.sweep(clock.now + 200);
      expect(rec.events).to.deep.equal(['dropped:m2:timeout']);
      tracker.sweep(clock.now + 1000);
      expect(rec.events).to.deep.equal(['dropped:m2:timeout', 'dropped:m1:timeout']);
    });

    it('keeps a chunk in progress while it carries octets, and drops it once they stop for idleTimeoutMs', () => {
      // Audit: a sender stalled mid-chunk with its connection open was tracked until the connection closed.
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 1000 });
      const t0 = clock.now;
      const one = { range: '1-*/*', body: 'a', flag: '$' } as const;
      const c1 = openChunk(tracker, 'alice', SESSION, 'm1', META, one)!;
      openChunk(tracker, 'alice', SESSION, 'm2', META, one);
      tracker.sweep(t0 + 500); // both have carried octets since they began
      clock.now = t0 + 900;
      tracker.data(c1, Buffer.from('b'));
      tracker.sweep(t0 + 1499); // sees m1's octets: active from here; m2 idle since t0 + 500
      expect(rec.events).to.deep.equal([]);
      tracker.sweep(t0 + 1500);
      expect(rec.events).to.deep.equal(['dropped:m2:timeout']);
      tracker.sweep(t0 + 2498);
      expect(tracker.size).to.equal(1);
      tracker.sweep(t0 + 2499);
      expect(rec.events).to.deep.equal(['dropped:m2:timeout', 'dropped:m1:timeout']);
      // The stalled chunk may still go on and end: nothing more happens, and its later chunks stay untracked.
      tracker.data(c1, Buffer.from('c'));
      tracker.end(c1, '+');
      expect(
        openChunk(tracker, 'alice', SESSION, 'm1', META, { range: '3-3/3', body: 'd', flag: '$' }),
      ).to.equal(null);
      expect(rec.events).to.deep.equal([
        'dropped:m2:timeout',
        'dropped:m1:timeout',
        'untracked:alice:finished',
      ]);
      expect(tracker.size).to.equal(0);
    });

    it('does not take a chunk in progress for idle while its owner is paused (ownerPaused)', () => {
      // Review: a sender the relay stopped reading (a full queue toward its recipient) looked stalled.
      let paused = true;
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 1000, ownerPaused: () => paused });
      openChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '$' });
      tracker.sweep(clock.now + 500);
      tracker.sweep(clock.now + 5000);
      expect(tracker.size).to.equal(1);
      paused = false;
      tracker.sweep(clock.now + 5999);
      expect(tracker.size).to.equal(1);
      tracker.sweep(clock.now + 6000);
      expect(rec.events).to.deep.equal(['dropped:m1:timeout']);
    });

    it('fails with 408 a message held whole but never fully acknowledged', () => {
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 1000 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-2/2', body: 'ab', flag: '$' });
      tracker.sweep(clock.now + 1000);
      expect(rec.events).to.deep.equal(['head:m1:final', 'whole:m1', 'failed:m1:408']);
    });

    it('tracks a finished key again once its tombstone expired', () => {
      const { tracker, rec, clock } = setup({ idleTimeoutMs: 1000 });
      feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '#' });
      tracker.sweep(clock.now + 999);
      expect(
        feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' }),
      ).to.equal(null);
      tracker.sweep(clock.now + 1000);
      expect(
        feedChunk(tracker, 'alice', SESSION, 'm1', META, { range: '1-*/*', body: 'a', flag: '+' }),
      ).to.not.equal(null);
      expect(rec.events).to.deep.equal(['dropped:m1:aborted', 'untracked:alice:finished']);
    });
  });
});
