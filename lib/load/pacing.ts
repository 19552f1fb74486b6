/**
 * When messages are sent. Two disciplines:
 *
 * - **closed loop** (`--concurrency K`): each session keeps K messages in flight; a lane sends the next
 *   message when the previous one has its outcome. Throughput is whatever the relay sustains.
 * - **open loop** (`--rate R`): R messages per second over all sessions, on a schedule that does not wait
 *   for answers (no coordinated omission); sessions take turns. During `--ramp-up S` the rate grows
 *   linearly from 0 to R, in step with the sessions coming up.
 *
 * Both stop at the {@link MessageBudget}: `--messages` in total or `--duration` seconds, whichever first.
 */
import { performance } from 'node:perf_hooks';
import type { SizePicker } from './payload.js';
import type { LoadSession } from './session.js';

/** How many messages may still be sent, and until when. */
export class MessageBudget {
  private left: number;
  private readonly deadline: number;
  private stopped = false;

  /** `messages`: null for no limit; `deadline`: a performance.now() value, or Infinity. */
  constructor(messages: number | null, deadline: number) {
    this.left = messages ?? Infinity;
    this.deadline = deadline;
  }

  /** Takes one message from the budget; false once it is spent or the time is up. */
  take(): boolean {
    if (this.stopped) return false;
    if (this.left <= 0 || performance.now() >= this.deadline) {
      this.stopped = true;
      return false;
    }
    this.left--;
    return true;
  }

  /** True once no more messages will be sent. */
  get exhausted(): boolean {
    if (!this.stopped && (this.left <= 0 || performance.now() >= this.deadline)) this.stopped = true;
    return this.stopped;
  }

  /** Milliseconds until the deadline (Infinity without one). */
  get remainingMs(): number {
    return this.deadline - performance.now();
  }

  /** Ends the budget early (nothing left to send on). */
  stop(): void {
    this.stopped = true;
  }
}

/** Runs `lanes` closed-loop lanes on one session until the budget is spent or the session dies. */
export async function closedLoop(
  session: LoadSession,
  lanes: number,
  budget: MessageBudget,
  sizes: SizePicker,
): Promise<void> {
  const lane = async (): Promise<void> => {
    while (session.alive && budget.take()) await session.send(sizes.next());
  };
  await Promise.all(Array.from({ length: lanes }, lane));
}

/** Largest number of messages issued in one timer tick; the rest carries over to the next tick. */
const MAX_BURST = 2000;

/**
 * Open-loop sender over a growing set of sessions: `add()` sessions as they come up; `run()` resolves
 * when the budget is spent, or when setup is over (`setupDone()`) and no live session is left.
 */
export class OpenLoop {
  private readonly sessions: LoadSession[] = [];
  private next = 0;
  private issued = 0;
  private setupOver = false;
  /** Messages that fell due while no session could send: skipped, not sent late in a burst. */
  skipped = 0;

  /**
   * `rate`: messages per second for this thread; `rampUpMs`: the rate grows linearly from 0 over this
   * time, measured from `run()`.
   */
  constructor(
    private readonly rate: number,
    private readonly rampUpMs: number,
    private readonly budget: MessageBudget,
    private readonly sizes: SizePicker,
  ) {}

  /** Adds a session that may now send. */
  add(session: LoadSession): void {
    this.sessions.push(session);
  }

  /** No more sessions will be added. */
  setupDone(): void {
    this.setupOver = true;
  }

  /** Messages due `ms` after the start: the integral of the (ramped) rate. */
  private due(ms: number): number {
    const perMs = this.rate / 1000;
    const r = this.rampUpMs;
    if (ms <= 0) return 0;
    if (ms < r) return (perMs * ms * ms) / (2 * r);
    return perMs * (ms - r / 2);
  }

  /** Sends on schedule until the budget is spent or no session can send any more. */
  run(): Promise<void> {
    const start = performance.now();
    return new Promise((resolve) => {
      const tick = (): void => {
        const dueNow = Math.floor(this.due(performance.now() - start));
        let owed = Math.min(MAX_BURST, dueNow - this.issued);
        while (owed > 0) {
          const s = this.pick();
          if (s === null) {
            // Nothing to send on yet (ramp-up): what fell due meanwhile is skipped, not sent in a burst.
            this.skipped += dueNow - this.issued;
            this.issued = dueNow;
            owed = 0;
            break;
          }
          if (!this.budget.take()) break;
          void s.send(this.sizes.next());
          this.issued++;
          owed--;
        }
        const noneLeft = this.setupOver && this.pick() === null;
        if (this.budget.exhausted || noneLeft) {
          this.budget.stop();
          resolve();
          return;
        }
        // Sleep until the next message is due (at most 50 ms, so the deadline is noticed in time).
        const waitMs = Math.min(50, Math.max(1, 1000 / this.rate));
        setTimeout(tick, owed > 0 ? 0 : waitMs);
      };
      tick();
    });
  }

  /** The next live session in turn, or null when none is alive. */
  private pick(): LoadSession | null {
    for (let tried = 0; tried < this.sessions.length; tried++) {
      const s = this.sessions[this.next]!;
      this.next = (this.next + 1) % this.sessions.length;
      if (s.alive) return s;
    }
    return null;
  }
}
