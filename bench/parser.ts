/**
 * bench/parser — how fast the streaming parser frames SENDs, and what a 16 MiB body costs in memory.
 * Run: `npm run bench:parser`. Prints one table; figures go in docs/benchmarks.md.
 */
import { randomFillSync } from 'node:crypto';
import { cpus } from 'node:os';
import { MsrpParser, type ParserHandler } from '../lib/msrp/parser.js';
import { serializeRequest } from '../lib/msrp/serializer.js';

const TO = 'msrp://relay.example.com:2855/Rk9sT1x4ZbQ;tcp msrp://bob.example.net:7394/s8Fh2kQpZr;tcp';
const FROM = 'msrp://alice.example.org:7655/a1B2c3D4e5;tcp';
const READ = 64 * 1024;

class Counter implements ParserHandler {
  frames = 0;
  bytes = 0;
  errors = 0;
  onHead(): void {}
  onBody(piece: Buffer): void {
    this.bytes += piece.length;
  }
  onEnd(): void {
    this.frames++;
  }
  onError(): void {
    this.errors++;
  }
}

function sendFrame(size: number): Buffer {
  return serializeRequest({
    method: 'SEND',
    toPath: TO,
    fromPath: FROM,
    headers: [
      ['Message-ID', 'Mx41Qa9Zr'],
      ['Byte-Range', `1-${size}/${size}`],
    ],
    contentType: 'text/plain',
    body: randomFillSync(Buffer.alloc(size)),
  });
}

/** Feeds a stream of frames (random bodies) of `size` body bytes in 64 KiB reads, for at least `minMs`. */
function runFrames(size: number, minMs = 1500): { framesPerSec: number; mbPerSec: number } {
  const frame = sendFrame(size);
  const perStream = Math.max(1, Math.floor((4 * 1024 * 1024) / frame.length));
  const stream = Buffer.concat(Array.from({ length: perStream }, () => frame));
  const reads: Buffer[] = [];
  for (let i = 0; i < stream.length; i += READ) reads.push(stream.subarray(i, i + READ));
  const counter = new Counter();
  const parser = new MsrpParser(counter);
  // Warm-up.
  for (const r of reads) parser.write(r);
  counter.frames = 0;
  counter.bytes = 0;
  const start = process.hrtime.bigint();
  let elapsed = 0;
  let wireBytes = 0;
  while (elapsed < minMs) {
    for (const r of reads) parser.write(r);
    wireBytes += stream.length;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  if (counter.errors > 0) throw new Error('parse errors in benchmark');
  return { framesPerSec: (counter.frames / elapsed) * 1000, mbPerSec: wireBytes / 1e6 / (elapsed / 1000) };
}

/**
 * A head of about 15 KB (one long To-Path, under the 16 KiB limit) fed one octet per write, the way a
 * peer trickling its head would: what the partial line costs (it was copied whole at every write).
 */
function runTrickledHead(minMs = 1000): { headsPerSec: number; octets: number } {
  const frame = serializeRequest({
    method: 'SEND',
    toPath: `msrp://relay.example.com:2855/${'R'.repeat(15_000)};tcp`,
    fromPath: FROM,
    headers: [['Message-ID', 'Mx41Qa9Zr']],
  });
  const octets = [...frame].map((b) => Buffer.from([b]));
  const counter = new Counter();
  const parser = new MsrpParser(counter);
  const start = process.hrtime.bigint();
  let elapsed = 0;
  let heads = 0;
  while (elapsed < minMs) {
    for (const o of octets) parser.write(o);
    heads++;
    elapsed = Number(process.hrtime.bigint() - start) / 1e6;
  }
  if (counter.errors > 0 || counter.frames !== heads) throw new Error('parse errors in benchmark');
  return { headsPerSec: (heads / elapsed) * 1000, octets: frame.length };
}

/**
 * One 16 MiB SEND fed in 64 KiB pieces, 8 times: throughput and the RSS it adds over a warmed-up baseline.
 * A control loop that makes the same reads and RSS samples without a parser is measured the same way: the
 * RSS that loop adds is V8's own heap growth, so the parser's cost is the difference.
 */
function runLargeBody(parse: boolean): { mbPerSec: number; rssAddedMiB: number } {
  const total = 16 * 1024 * 1024;
  const frame0 = sendFrame(0);
  const head = frame0.subarray(0, frame0.indexOf('\r\n\r\n') + 4);
  const piece = randomFillSync(Buffer.alloc(READ));
  const tail = Buffer.from('\r\n-------' + head.toString('latin1').split(' ')[1] + '$\r\n');
  const counter = new Counter();
  let peak = 0;
  let sink = 0;
  const feedOnce = (sample: boolean): void => {
    const parser = new MsrpParser(counter, { maxChunkBytes: total });
    parser.write(head);
    for (let sent = 0; sent < total; sent += READ) {
      if (parse) parser.write(piece);
      else sink += piece.subarray(1).length;
      if (sample && (sent & 0xfffff) === 0) peak = Math.max(peak, process.memoryUsage.rss());
    }
    parser.write(tail);
  };
  feedOnce(false); // warm-up: JIT and heap settle before the baseline
  feedOnce(false);
  counter.frames = 0;
  counter.bytes = 0;
  const base = process.memoryUsage.rss();
  const start = process.hrtime.bigint();
  const rounds = 8;
  for (let r = 0; r < rounds; r++) feedOnce(true);
  const elapsed = Number(process.hrtime.bigint() - start) / 1e9;
  peak = Math.max(peak, process.memoryUsage.rss());
  if (parse && (counter.frames !== rounds || counter.bytes !== rounds * total))
    throw new Error('large body mis-parsed');
  if (sink < 0) throw new Error('unreachable');
  return { mbPerSec: (rounds * total) / 1e6 / elapsed, rssAddedMiB: Math.max(0, peak - base) / 1048576 };
}

const rows: string[][] = [];
const control = runLargeBody(false);
const big = runLargeBody(true);
for (const [label, size] of [
  ['100-byte SEND', 100],
  ['2 KiB SEND', 2048],
  ['64 KiB SEND', 65536],
] as const) {
  const r = runFrames(size);
  rows.push([label, Math.round(r.framesPerSec).toLocaleString('en-US'), r.mbPerSec.toFixed(0), '']);
}
rows.push(['16 MiB body in 64 KiB reads (x8)', '', big.mbPerSec.toFixed(0), big.rssAddedMiB.toFixed(2)]);
const trickled = runTrickledHead();
rows.push([
  `${trickled.octets.toLocaleString('en-US')}-octet head, one octet per write`,
  Math.round(trickled.headsPerSec).toLocaleString('en-US'),
  ((trickled.headsPerSec * trickled.octets) / 1e6).toFixed(1),
  '',
]);
rows.push(['  control: same reads, no parser', '', '', control.rssAddedMiB.toFixed(2)]);
rows.push(['  RSS the parser adds', '', '', Math.max(0, big.rssAddedMiB - control.rssAddedMiB).toFixed(2)]);

console.log(
  `bench/parser — node ${process.version}, ${cpus()[0]?.model ?? 'cpu'} (1 core), ${new Date().toISOString()}`,
);
console.log('command: npm run bench:parser');
console.log('');
console.log('| case | frames/s | MB/s (wire) | RSS added (MiB) |');
console.log('|---|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.join(' | ')} |`);
