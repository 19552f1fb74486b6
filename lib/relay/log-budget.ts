/**
 * How many lines one connection's traffic may add to the log: a token bucket of {@link LOG_BURST}
 * lines, refilled at one per {@link LOG_REFILL_MS}. Lines about what a peer sends (malformed frames,
 * failure REPORTs toward it) would otherwise let one client write the log as fast as it writes
 * frames (an audit measured 10,000 lines, 1.76 MB, from 5,000 malformed 42-byte frames in 3 s).
 * What is left out is counted: the next line logged says how many were (`unlogged`), and so does
 * the `connection closed` line; the metrics count every event either way.
 */

import type { Logger, LogFields } from './logger.js';

/** Lines a connection may log at once. */
export const LOG_BURST = 20;
/** Ms per line regained after a burst. */
export const LOG_REFILL_MS = 1000;

/**
 * One connection's budget of log lines (see the module comment). {@link take} before each line; the
 * clock is monotonic, so a step of the wall clock neither stalls nor floods it.
 */
export class LogBudget {
  private tokens = LOG_BURST;
  private refilledAt = 0;
  /** Lines left out since the last one logged. */
  private skipped = 0;
  /** Lines left out in all. */
  unlogged = 0;

  /**
   * Null when the line is to be left out (counted); else the number of lines left out since the last
   * one logged, for its `unlogged` field (0: none). `force`: the line is logged even with the bucket
   * empty (the connection is being closed: its last line).
   */
  take(force = false, now = performance.now()): number | null {
    if (this.tokens < LOG_BURST) {
      const regained = Math.floor((now - this.refilledAt) / LOG_REFILL_MS);
      if (regained > 0) {
        this.tokens = Math.min(LOG_BURST, this.tokens + regained);
        this.refilledAt += regained * LOG_REFILL_MS;
      }
    }
    if (this.tokens === 0 && !force) {
      this.skipped++;
      this.unlogged++;
      return null;
    }
    if (this.tokens === LOG_BURST) this.refilledAt = now; // the refill clock starts with the first spent
    if (this.tokens > 0) this.tokens--;
    const skipped = this.skipped;
    this.skipped = 0;
    return skipped;
  }
}

/**
 * Writes one line about a connection's traffic within its `budget` (`force`: even when it is spent),
 * with `unlogged` added when lines were left out before it.
 */
export function logWithin(
  budget: LogBudget,
  log: Logger,
  level: 'info' | 'warn',
  fields: LogFields,
  msg: string,
  force = false,
): void {
  const skipped = budget.take(force);
  if (skipped === null) return;
  log[level](skipped === 0 ? fields : { ...fields, unlogged: skipped }, msg);
}

/** Characters of an error's text kept in a log line (it may quote what the peer sent, up to 16 KiB). */
export const DETAIL_MAX = 200;

/** `text` cut to {@link DETAIL_MAX} characters, the last of them `…` when cut. */
export function clip(text: string): string {
  return text.length <= DETAIL_MAX ? text : text.slice(0, DETAIL_MAX - 1) + '…';
}
