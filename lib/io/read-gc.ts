/**
 * Young-generation collections paced by the octets read from the network.
 *
 * Every socket read arrives in a fresh buffer whose octets live outside the JavaScript heap; V8 frees
 * them only when it collects the small wrapper object, and it collects young objects when the young
 * generation fills with JavaScript allocations, not with those outside octets. A bulk transfer reads
 * hundreds of MiB per second but allocates little on the heap, so with a large young generation dead
 * read buffers pile up until V8's external-memory limit forces full (mark-compact) collections: with an
 * 8 MiB semi-space a 1 GiB transfer peaked at 114 MiB RSS against 87 MiB with 2 MiB.
 *
 * A small young generation keeps a transfer's RSS low but costs message traffic dearly: each message's
 * state lives a round trip, so scavenges every 2 MiB copy and promote it (relay CPU per CPIM message with
 * reports on 33 µs against 25 µs with 8 MiB; docs/benchmarks.md). So the relay runs with a large young
 * generation and, when V8 exposes `gc` (`--expose-gc`, as bin/msrp-relay starts it), asks for one young
 * collection (a scavenge: no old-space work) per {@link READ_GC_BYTES} octets read. Message traffic reads
 * far fewer octets per allocation, so its own scavenges come long before that.
 */

/** Octets read between two paced young collections. */
export const READ_GC_BYTES = 8 * 1024 * 1024;

type MinorGc = (options: { type: 'minor' }) => void;

let collect: MinorGc | null = typeof globalThis.gc === 'function' ? (globalThis.gc as MinorGc) : null;
let readSince = 0;
let paced = 0;

/** Counts `n` octets read; runs a young collection every {@link READ_GC_BYTES}. */
export function noteBytesRead(n: number): void {
  readSince += n;
  if (readSince < READ_GC_BYTES) return;
  // What the crossing read carried past the mark counts toward the next one: one per READ_GC_BYTES.
  readSince %= READ_GC_BYTES;
  if (collect === null) return;
  paced++;
  collect({ type: 'minor' });
}

/** Young collections run by {@link noteBytesRead} so far (`msrp_relay_paced_young_gcs_total`). */
export function pacedCollections(): number {
  return paced;
}

/**
 * @internal Replaces the collector (tests; null: none), and resets the count of octets read. Returns
 * the one it replaced.
 */
export function setCollector(fn: MinorGc | null): MinorGc | null {
  const before = collect;
  collect = fn;
  readSince = 0;
  return before;
}
