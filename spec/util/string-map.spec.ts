/**
 * StringMap against Map: random sets, replacements, deletes of present and absent keys, and clears, in
 * bursts that make the table double and shrink; keys that share hash slots exercise backward shifting.
 */
import { expect } from 'chai';
import { rng } from '../helpers/random.js';
import { StringMap } from '../../lib/util/string-map.js';

const ALPHA = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
const fnvStep = (h: number, s: string): number => {
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h;
};

/**
 * 2^k suffixes of [A-Za-z0-9] such that `prefix + suffix` all reach the same FNV-1a state from `h0`
 * (found in the eighth session's review): keys an attacker who knew `h0` could send as Message-IDs.
 */
function collidingSuffixes(h0: number, prefix: string, k: number): string[] {
  let h = fnvStep(h0, prefix);
  const stages: Array<[string, string]> = [];
  for (let s = 0; s < k; s++) {
    // Two 3-character blocks whose states agree above bit 6, then a 4th character each that cancels the rest.
    const seen = new Map<number, [string, number]>();
    let pair: [string, string] | null = null;
    search: for (const a of ALPHA)
      for (const b of ALPHA)
        for (const c of ALPHA) {
          const x = fnvStep(h, a + b + c);
          const o = seen.get(x >>> 7);
          if (o === undefined) {
            seen.set(x >>> 7, [a + b + c, x]);
            continue;
          }
          const d = (o[1] ^ x) & 127;
          for (const e of ALPHA) {
            const f = String.fromCharCode(e.charCodeAt(0) ^ d);
            if (!ALPHA.includes(f)) continue;
            pair = [o[0] + e, a + b + c + f];
            break search;
          }
        }
    stages.push(pair!);
    h = fnvStep(h, pair![0]);
  }
  return Array.from({ length: 1 << k }, (_, m) => stages.map((p, i) => p[(m >> i) & 1]).join(''));
}

/** The longest distance of an entry from its home slot. */
function longestRun(map: StringMap<unknown>): number {
  const inner = map as unknown as { keys: Array<string | null>; hashes: Int32Array; mask: number };
  let longest = 0;
  for (let i = 0; i < inner.keys.length; i++)
    if (inner.keys[i] !== null)
      longest = Math.max(longest, (i - (inner.hashes[i]! & inner.mask)) & inner.mask);
  return longest;
}

describe('StringMap', () => {
  it('keeps probe runs short for keys that share an unseeded FNV-1a hash', () => {
    const session = 'msrp://127.0.0.1:2855/abcdefghijklmnopqrst;tcp msrp://bob.invalid:1/s;tcp ';
    const map = new StringMap<number>();
    for (const id of collidingSuffixes(0x811c9dc5, session, 10)) map.set(session + id, 1);
    expect([map.size, longestRun(map) < 48]).to.deep.equal([1024, true]);
  });

  it('draws a new seed when keys share its hash, and still finds every key', () => {
    const map = new StringMap<number>();
    const seed = (map as unknown as { seed: number }).seed;
    // Keys that collide under this very seed (its FNV-1a start state), as if the seed had leaked.
    const keys = collidingSuffixes(0x811c9dc5 ^ seed, 'k', 8).map((s) => 'k' + s);
    keys.forEach((k, i) => map.set(k, i));
    expect((map as unknown as { seed: number }).seed).to.not.equal(seed);
    expect(longestRun(map)).to.be.lessThan(48);
    expect(keys.every((k, i) => map.get(k) === i)).to.equal(true);
  });

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
