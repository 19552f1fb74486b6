/**
 * The transaction table against a plain model (Maps and arrays): random adds, answers, wrong-connection
 * answers, open chunks, expiries and closed connections, in numbers that make its index grow, probe,
 * shift entries back on removal and shrink again.
 */
import { expect } from 'chai';
import { rng } from '../helpers/random.js';
import { TransactionTable, type ForwardedTransaction } from '../../lib/relay/transactions.js';

type Tx = ForwardedTransaction<string>;

function tx(tid: string, dest: string, deadline: number): Tx {
  return {
    tid,
    dest,
    source: 'src',
    sourceTid: 'in' + tid,
    method: 'SEND',
    failureReport: 'yes',
    messageId: undefined,
    rangeStart: 1,
    rangeEnd: 1,
    total: 1,
    reportTo: 'msrp://a.example:1/x;tcp',
    ourUri: 'msrp://r.example:2/y;tcp',
    hops: 0,
    deadline,
    outAt: 0,
    open: false,
    stream: null,
    earlyOk: false,
    prevAll: null,
    nextAll: null,
    prevDest: null,
    nextDest: null,
  };
}

const tids = (list: readonly Tx[]): string[] => list.map((t) => t.tid).sort();

describe('TransactionTable', () => {
  for (const seed of [1, 2, 3]) {
    it(`agrees with a plain model over 40,000 random operations (seed ${seed})`, () => {
      const random = rng(seed);
      const table = new TransactionTable<string>();
      const waiting = new Map<string, Tx>(); // the model: tid -> transaction, in deadline order
      const open = new Map<string, Tx>(); // dest -> its open chunk
      const dests = ['d0', 'd1', 'd2', 'd3', 'd4'];
      let now = 0;
      let n = 0;
      let largest = 0;
      for (let step = 0; step < 40_000; step++) {
        const r = random();
        // Bursts: the first half of each 4,000 steps mostly adds (thousands waiting), the rest removes.
        const adding = step % 4000 < 2000 ? r < 0.85 : r < 0.2;
        const dest = dests[Math.floor(random() * dests.length)]!;
        if (adding) {
          const t = tx(`t${(n++).toString(36)}x${Math.floor(random() * 1e6)}`, dest, now + 5000);
          table.add(t);
          waiting.set(t.tid, t);
        } else if (r < 0.8 && waiting.size > 0) {
          // The answer to a waiting transaction, sometimes on the wrong connection (not taken).
          const keys = [...waiting.keys()];
          const t = waiting.get(keys[Math.floor(random() * keys.length)]!)!;
          const wrong = random() < 0.1;
          const got = table.take(t.tid, wrong ? t.dest + '?' : t.dest);
          expect(got).to.equal(wrong ? undefined : t);
          if (!wrong) waiting.delete(t.tid);
        } else if (r < 0.85) {
          expect(table.take(`unknown${step}`, dest)).to.equal(undefined);
        } else if (r < 0.9) {
          // A chunk's head goes out; its end-line follows now or later, or its connection goes first.
          const t = tx(`o${(n++).toString(36)}`, dest, 0);
          const before = open.get(dest);
          if (before !== undefined) {
            table.close(before, 5, now + 5000);
            waiting.set(before.tid, before);
          }
          table.addOpen(t);
          open.set(dest, t);
        } else if (r < 0.95) {
          now += 1 + Math.floor(random() * 20);
          const expired = table.takeExpired(now);
          const want = [...waiting.values()].filter((t) => t.deadline <= now);
          expect(tids(expired)).to.deep.equal(tids(want));
          for (const t of want) waiting.delete(t.tid);
        } else if (r < 0.96) {
          const all = table.takeAllTo(dest);
          const want = [...waiting.values()].filter((t) => t.dest === dest);
          expect(tids(all)).to.deep.equal(tids(want)); // open chunks' senders have not ended: not returned
          for (const t of want) waiting.delete(t.tid);
          open.delete(dest);
        }
        expect(table.size).to.equal(waiting.size + open.size);
        largest = Math.max(largest, table.size);
      }
      expect(largest, 'the index doubled at least twice from its first 256 slots').to.be.greaterThan(512);
      // Everything left is still found by its id, and only there.
      for (const t of waiting.values()) expect(table.take(t.tid, t.dest)).to.equal(t);
      for (const t of open.values()) expect(table.take(t.tid, t.dest)).to.equal(t);
      expect(table.size).to.equal(0);
    });
  }

  it('returns expired transactions oldest first and keeps the rest', () => {
    const table = new TransactionTable<string>();
    const a = tx('aaaa1', 'd', 10);
    const b = tx('bbbb2', 'd', 20);
    const c = tx('cccc3', 'e', 30);
    for (const t of [a, b, c]) table.add(t);
    expect(table.takeExpired(25)).to.deep.equal([a, b]);
    expect(table.size).to.equal(1);
    expect(table.take('cccc3', 'e')).to.equal(c);
  });

  it("finds a destination's oldest transaction that owes an answer, past `partial` ones and open chunks", () => {
    const table = new TransactionTable<string>();
    const partial = { ...tx('part1', 'd', 10), failureReport: 'partial' as const };
    const owed = tx('owed2', 'd', 20);
    const later = tx('owed3', 'd', 30);
    for (const t of [partial, owed, later]) table.add(t);
    table.addOpen(tx('open4', 'e', 0)); // its end-line not out: no timer, owes nothing yet
    expect([table.oldestOwedTo('d'), table.oldestOwedTo('e'), table.oldestOwedTo('f')]).to.deep.equal([
      owed,
      undefined,
      undefined,
    ]);
    table.take('owed2', 'd');
    expect(table.oldestOwedTo('d')).to.equal(later);
  });

  it('answers an open chunk early, and does not start its timer afterwards', () => {
    const table = new TransactionTable<string>();
    const t = tx('open1', 'd', 0);
    table.addOpen(t);
    expect(table.size).to.equal(1);
    expect(table.take('open1', 'd')).to.equal(t);
    expect(table.close(t, 10, 100)).to.equal(false);
    expect(table.size).to.equal(0);
  });
});
