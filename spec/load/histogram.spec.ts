import { expect } from 'chai';
import {
  bucketIndex,
  bucketUpperBound,
  LatencyHistogram,
  MAX_RECORDABLE_NS,
} from '../../lib/load/histogram.js';

/** A deterministic pseudo-random sequence (LCG), so failures reproduce. */
function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Latencies from 50 µs to ~200 ms, log-uniform. */
function samples(n: number, seed: number): number[] {
  const r = lcg(seed);
  return Array.from({ length: n }, () => Math.round(50_000 * 4000 ** r()));
}

function exactPercentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

describe('LatencyHistogram', () => {
  it('maps every value into a bucket whose bounds contain it, 1/128 wide at most', () => {
    const values = [
      0,
      1,
      255,
      256,
      257,
      1023,
      1024,
      65_535,
      65_536,
      1e6,
      123_456_789,
      2 ** 40 + 3,
      MAX_RECORDABLE_NS,
    ];
    for (let v = 1; v < 2 ** 42; v = Math.ceil(v * 1.37) + 1) values.push(v, v - 1);
    for (const v of values) {
      const i = bucketIndex(v);
      expect(bucketUpperBound(i), `upper bound of ${v}`).to.be.at.least(v);
      if (i > 0) expect(bucketUpperBound(i - 1), `previous bound of ${v}`).to.be.below(v);
      if (v >= 256) expect((bucketUpperBound(i) - v) / v).to.be.at.most(1 / 128);
    }
  });

  it('reports count, min, max and mean exactly, in milliseconds', () => {
    const h = new LatencyHistogram();
    for (const ns of [1_000_000, 2_000_000, 3_000_000, 10_000_000]) h.record(ns);
    const s = h.summary();
    expect([s.count, s.min, s.max, s.mean]).to.deep.equal([4, 1, 10, 4]);
  });

  it('gives percentiles within 0.2 % of the exact ones and monotonic up to max', () => {
    const data = samples(20_000, 7);
    const h = new LatencyHistogram();
    for (const v of data) h.record(v);
    const sorted = [...data].sort((a, b) => a - b);
    let previous = 0;
    for (const p of [1, 10, 50, 90, 99, 99.9, 100]) {
      const got = h.percentile(p);
      expect(Math.abs(got - exactPercentile(sorted, p)) / exactPercentile(sorted, p), `p${p}`).to.be.below(
        0.002,
      );
      expect(got).to.be.at.least(previous);
      previous = got;
    }
    const s = h.summary();
    expect(s.p50 <= s.p90 && s.p90 <= s.p99 && s.p99 <= s.p999 && s.p999 <= s.max).to.equal(true);
  });

  it('merges snapshots from other threads: exact aggregates, percentiles within one bucket', () => {
    const parts = [samples(5000, 1), samples(3000, 2), samples(100, 3)];
    const all = parts.flat().sort((a, b) => a - b);
    const merged = new LatencyHistogram();
    for (const part of parts) {
      const h = new LatencyHistogram();
      for (const v of part) h.record(v);
      merged.merge(JSON.parse(JSON.stringify(h.snapshot())));
    }
    const snap = merged.snapshot();
    expect(snap.count).to.equal(all.length);
    expect(snap.min).to.equal(all[0]);
    expect(snap.max).to.equal(all.at(-1));
    expect(snap.sum).to.equal(all.reduce((a, b) => a + b, 0));
    let previous = 0;
    for (const p of [50, 90, 99, 99.9]) {
      const got = merged.percentile(p);
      const exact = exactPercentile(all, p);
      expect(got).to.be.at.least(exact);
      expect((got - exact) / exact, `p${p}`).to.be.at.most(1 / 128);
      expect(got).to.be.at.least(previous);
      previous = got;
    }
  });

  it('merges in-thread histograms with add() and keeps HDR precision', () => {
    const a = new LatencyHistogram();
    const b = new LatencyHistogram();
    for (const v of samples(1000, 4)) a.record(v);
    for (const v of samples(1000, 5)) b.record(v);
    const both = new LatencyHistogram();
    both.add(a);
    both.add(b);
    expect(both.count).to.equal(2000);
    const direct = new LatencyHistogram();
    for (const v of [...samples(1000, 4), ...samples(1000, 5)]) direct.record(v);
    expect(both.summary()).to.deep.equal(direct.summary());
  });

  it('clamps negative and oversized values instead of throwing', () => {
    const h = new LatencyHistogram();
    h.record(-5);
    h.record(MAX_RECORDABLE_NS * 4);
    const s = h.snapshot();
    expect([s.count, s.min, s.max]).to.deep.equal([2, 0, MAX_RECORDABLE_NS]);
  });

  it('summarises an empty histogram as zeros', () => {
    expect(new LatencyHistogram().summary()).to.deep.equal({
      count: 0,
      min: 0,
      mean: 0,
      p50: 0,
      p90: 0,
      p99: 0,
      p999: 0,
      max: 0,
    });
  });
});
