/**
 * The live progress line: on a TTY, one line rewritten four times a second with elapsed time, sessions,
 * messages sent and delivered, the delivery rate over the last second, and errors. Silent otherwise.
 */
import type { ProgressCounters } from './metrics.js';

/** Where the line goes: a TTY stream (process.stderr). */
export interface ProgressSink {
  write(text: string): unknown;
}

const RENDER_MS = 250;
const WINDOW_MS = 1000;

/** Sums the counters of several threads. */
export function sumProgress(parts: ReadonlyArray<ProgressCounters | undefined>): ProgressCounters {
  const total: ProgressCounters = {
    sessionsEstablished: 0,
    messagesSent: 0,
    messagesDelivered: 0,
    messagesFailed: 0,
    errors: 0,
  };
  for (const p of parts) {
    if (p === undefined) continue;
    total.sessionsEstablished += p.sessionsEstablished;
    total.messagesSent += p.messagesSent;
    total.messagesDelivered += p.messagesDelivered;
    total.messagesFailed += p.messagesFailed;
    total.errors += p.errors;
  }
  return total;
}

/** One self-rewriting status line. */
export class ProgressLine {
  private latest: ProgressCounters = sumProgress([]);
  private readonly began = Date.now();
  private startedAt: number | null = null;
  private readonly samples: Array<[number, number]> = [];
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly sink: ProgressSink,
    private readonly sessions: number,
  ) {}

  /** Starts rendering. */
  open(): void {
    this.timer = setInterval(() => this.render(), RENDER_MS);
    this.timer.unref();
  }

  /** Traffic has started: elapsed time counts from now. */
  started(): void {
    this.startedAt = Date.now();
  }

  /** The latest counters (summed over threads). */
  update(p: ProgressCounters): void {
    this.latest = p;
  }

  /** Clears the line and stops. */
  close(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    this.sink.write('\r\x1b[2K');
  }

  private render(): void {
    const p = this.latest;
    const now = Date.now();
    let text: string;
    if (this.startedAt === null) {
      const secs = ((now - this.began) / 1000).toFixed(1);
      text = `setting up sessions ${p.sessionsEstablished.toLocaleString('en-US')}/${this.sessions.toLocaleString('en-US')} (${secs} s)`;
    } else {
      this.samples.push([now, p.messagesDelivered]);
      while (this.samples.length > 2 && now - this.samples[0]![0] > WINDOW_MS) this.samples.shift();
      const [t0, d0] = this.samples[0]!;
      const rate = now > t0 ? ((p.messagesDelivered - d0) * 1000) / (now - t0) : 0;
      const n = (v: number): string => Math.round(v).toLocaleString('en-US');
      text =
        `elapsed ${((now - this.startedAt) / 1000).toFixed(1)} s | sessions ${n(p.sessionsEstablished)} | ` +
        `sent ${n(p.messagesSent)} | delivered ${n(p.messagesDelivered)} | ${n(rate)} msg/s | ` +
        `failed ${n(p.messagesFailed)} | errors ${n(p.errors)}`;
    }
    this.sink.write(`\r\x1b[2K${text}`);
  }
}
