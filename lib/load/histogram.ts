/**
 * Latency histograms of the load tester. Values are recorded in nanoseconds into Node's HDR histogram
 * (`perf_hooks.createHistogram()`, 3 significant figures) and, alongside, into a compact log-bucket array
 * (128 linear sub-buckets per power of two, at most 1/128 = 0.8 % relative error) that can cross a
 * `worker_threads` boundary: a RecordableHistogram cannot be posted, its buckets cannot be read out.
 *
 * Percentiles come from the HDR histogram while every value was recorded in this thread; once snapshots
 * from other threads have been merged in they come from the buckets. Count, min, max and mean are exact
 * either way.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

/** Sub-bucket bits: 2^7 = 128 linear sub-buckets per power of two. */
const SUB_BITS = 7;
const SUB_COUNT = 1 << SUB_BITS;
/** Values below this are their own bucket (exact). */
const LINEAR_LIMIT = SUB_COUNT * 2;
/** Largest value recorded, ns (2^43 ns ≈ 2.4 h); larger values are clamped to it. */
export const MAX_RECORDABLE_NS = 2 ** 43;
/** The percentiles every summary reports. */
export const PERCENTILES = [50, 90, 99, 99.9] as const;

/** A histogram in a form `postMessage` can carry: exact aggregates plus sparse `[bucket, count]` pairs. */
export interface HistogramSnapshot {
  count: number;
  /** Smallest value, ns (0 when count is 0). */
  min: number;
  /** Largest value, ns (0 when count is 0). */
  max: number;
  /** Sum of all values, ns. */
  sum: number;
  /** `[bucketIndex, count]` for every non-empty bucket, ascending. */
  buckets: Array<[number, number]>;
}

/** Percentiles and aggregates of one histogram, in milliseconds (floats, ns resolution). */
export interface LatencySummary {
  count: number;
  min: number;
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  p999: number;
  max: number;
}

/** The bucket of `ns` (an integer ≥ 0). */
export function bucketIndex(ns: number): number {
  if (ns < LINEAR_LIMIT) return ns;
  let shift = Math.floor(Math.log2(ns)) - SUB_BITS;
  let sub = Math.floor(ns / 2 ** shift);
  // Math.log2 can be off by one just below or above a power of two.
  if (sub >= 2 * SUB_COUNT) {
    shift++;
    sub = Math.floor(ns / 2 ** shift);
  } else if (sub < SUB_COUNT) {
    shift--;
    sub = Math.floor(ns / 2 ** shift);
  }
  return LINEAR_LIMIT + (shift - 1) * SUB_COUNT + (sub - SUB_COUNT);
}

/** The largest value that falls into bucket `index` (HDR's "highest equivalent value"). */
export function bucketUpperBound(index: number): number {
  if (index < LINEAR_LIMIT) return index;
  const shift = Math.floor((index - LINEAR_LIMIT) / SUB_COUNT) + 1;
  const sub = ((index - LINEAR_LIMIT) % SUB_COUNT) + SUB_COUNT;
  return (sub + 1) * 2 ** shift - 1;
}

function newHdr(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: MAX_RECORDABLE_NS, figures: 3 });
}

const NS_PER_MS = 1e6;

/** A latency histogram: HDR for in-thread percentiles, log buckets for shipping and merging. */
export class LatencyHistogram {
  private readonly hdr: RecordableHistogram = newHdr();
  private readonly buckets = new Map<number, number>();
  private n = 0;
  private lo = Infinity;
  private hi = 0;
  private total = 0;
  /** False once a snapshot from another thread has been merged in (HDR then misses those values). */
  private hdrComplete = true;

  /** Number of values recorded. */
  get count(): number {
    return this.n;
  }

  /** Records one latency in nanoseconds (negative values count as 0, huge ones are clamped). */
  record(ns: number): void {
    const v = Math.min(MAX_RECORDABLE_NS, Math.max(0, Math.round(ns)));
    this.hdr.record(Math.max(1, v));
    const b = bucketIndex(v);
    this.buckets.set(b, (this.buckets.get(b) ?? 0) + 1);
    this.n++;
    this.total += v;
    if (v < this.lo) this.lo = v;
    if (v > this.hi) this.hi = v;
  }

  /** Records a latency given in milliseconds (e.g. a difference of `performance.now()` readings). */
  recordMs(ms: number): void {
    this.record(ms * NS_PER_MS);
  }

  /** Merges another in-thread histogram (HDR `add()` keeps percentiles exact to 3 figures). */
  add(other: LatencyHistogram): void {
    this.hdr.add(other.hdr);
    this.hdrComplete &&= other.hdrComplete;
    this.mergeBuckets(other.snapshot());
  }

  /** Merges a snapshot that came from another thread. */
  merge(snapshot: HistogramSnapshot): void {
    if (snapshot.count === 0) return;
    this.hdrComplete = false;
    this.mergeBuckets(snapshot);
  }

  /** The postable form of this histogram. */
  snapshot(): HistogramSnapshot {
    const buckets = [...this.buckets.entries()].sort((a, b) => a[0] - b[0]);
    return {
      count: this.n,
      min: this.n === 0 ? 0 : this.lo,
      max: this.hi,
      sum: this.total,
      buckets,
    };
  }

  /** The value at percentile `p` (0-100), ns; 0 when empty. */
  percentile(p: number): number {
    if (this.n === 0) return 0;
    if (p >= 100) return this.hi;
    let v: number;
    if (this.hdrComplete) {
      v = this.hdr.percentile(Math.max(p, 1e-9));
    } else {
      // HdrHistogram's rank (`p/100 · n + 0.5`, rounded down), so merged and in-thread figures agree.
      const rank = Math.max(1, Math.floor((p / 100) * this.n + 0.5));
      const sorted = [...this.buckets.entries()].sort((a, b) => a[0] - b[0]);
      let seen = 0;
      v = this.hi;
      for (const [index, c] of sorted) {
        seen += c;
        if (seen >= rank) {
          v = bucketUpperBound(index);
          break;
        }
      }
    }
    // Bucket bounds may overshoot the exact extremes: keep min ≤ p ≤ max.
    return Math.min(this.hi, Math.max(this.lo, v));
  }

  /** Count, min, mean, p50/p90/p99/p99.9 and max in milliseconds. */
  summary(): LatencySummary {
    const ms = (ns: number): number => Math.round(ns) / NS_PER_MS;
    return {
      count: this.n,
      min: this.n === 0 ? 0 : ms(this.lo),
      mean: this.n === 0 ? 0 : ms(this.total / this.n),
      p50: ms(this.percentile(50)),
      p90: ms(this.percentile(90)),
      p99: ms(this.percentile(99)),
      p999: ms(this.percentile(99.9)),
      max: ms(this.hi),
    };
  }

  private mergeBuckets(s: HistogramSnapshot): void {
    if (s.count === 0) return;
    for (const [index, c] of s.buckets) this.buckets.set(index, (this.buckets.get(index) ?? 0) + c);
    this.n += s.count;
    this.total += s.sum;
    if (s.min < this.lo) this.lo = s.min;
    if (s.max > this.hi) this.hi = s.max;
  }
}
