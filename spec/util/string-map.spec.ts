/**
 * StringMap against Map: random sets, replacements, deletes of present and absent keys, and clears, in
 * bursts that make the table double and shrink; keys that share hash slots exercise backward shifting.
 */
import { expect } from 'chai';
import { StringMap } from '../../lib/util/string-map.js';

/** A deterministic generator (mulberry32), so a failure replays. */
function rng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

describe('StringMap', () => {
  for (const seed of [11, 12, 13]) {
    it(`behaves as a Map over 60,000 random operations (seed ${seed})`, () => {
      const random = rng(seed);
      const map = new StringMap<number>(8);
      const model = new Map<string, number>();
      let largest = 0;
      for (let step = 0; step < 60_000; step++) {
        const r = random();
        const filling = step % 6000 < 3000;
        // A small key space early in each burst makes replacements and deletes of present keys common.
        const key = `k${Math.floor(random() * (filling ? 5000 : 800))}`;
        if (r < (filling ? 0.6 : 0.25)) {
          map.set(key, step);
          model.set(key, step);
        } else if (r < 0.9) {
          expect(map.delete(key)).to.equal(model.delete(key));
        } else if (r < 0.999) {
          expect(map.get(key)).to.equal(model.get(key));
          expect(map.has(key)).to.equal(model.has(key));
        } else {
          map.clear();
          model.clear();
        }
        if (step % 500 === 0) map.shrink();
        expect(map.size).to.equal(model.size);
        largest = Math.max(largest, map.size);
      }
      expect(largest, 'the table doubled several times').to.be.greaterThan(500);
      expect(map.values().sort()).to.deep.equal([...model.values()].sort());
      for (const [k, v] of model) expect(map.get(k)).to.equal(v);
    });
  }

  it('finds every key after deletes inside long probe runs', () => {
    // 16 slots and 8 keys: runs wrap around the table's end; delete every other key, then check all.
    const map = new StringMap<string>(16);
    const keys = Array.from({ length: 8 }, (_, i) => `tid-${i * 7919}`);
    for (const k of keys) map.set(k, k.toUpperCase());
    for (let i = 0; i < keys.length; i += 2) expect(map.delete(keys[i]!)).to.equal(true);
    for (let i = 0; i < keys.length; i++)
      expect(map.get(keys[i]!)).to.equal(i % 2 === 0 ? undefined : keys[i]!.toUpperCase());
    expect(map.size).to.equal(4);
  });

  it('keeps what a set replaces once, and answers undefined for unknown keys', () => {
    const map = new StringMap<number>();
    map.set('a', 1).set('a', 2);
    expect([map.get('a'), map.size, map.get('b'), map.delete('b')]).to.deep.equal([2, 1, undefined, false]);
  });
});
