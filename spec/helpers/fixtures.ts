/**
 * Byte-exact wire fixtures (spec/fixtures/*.msrp, CRLF kept by .gitattributes `-text`), taken from the
 * wire examples of the spec digest (§1.16, §2.14, §3.8).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** spec/fixtures in the source tree (tests run from build/spec). */
export const FIXTURE_DIR = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  '..',
  'spec',
  'fixtures',
);

/** Every `.msrp` fixture as [name, bytes], sorted by name. */
export function wireFixtures(): Array<[string, Buffer]> {
  return readdirSync(FIXTURE_DIR)
    .filter((f) => f.endsWith('.msrp'))
    .sort()
    .map((f) => [f.replace(/\.msrp$/, ''), readFileSync(join(FIXTURE_DIR, f))]);
}

/** One fixture by name (e.g. `e1.6`). */
export function wireFixture(name: string): Buffer {
  return readFileSync(join(FIXTURE_DIR, `${name}.msrp`));
}

/** A small seeded PRNG (mulberry32) so random splits are reproducible. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Cuts `buf` into pieces at random points drawn from `rand`. */
export function randomSplit(buf: Buffer, rand: () => number, maxPiece = 64): Buffer[] {
  const out: Buffer[] = [];
  let pos = 0;
  while (pos < buf.length) {
    const n = 1 + Math.floor(rand() * maxPiece);
    out.push(buf.subarray(pos, pos + n));
    pos += n;
  }
  return out;
}
