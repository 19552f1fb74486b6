/** The per-connection log budget: a bucket of LOG_BURST lines refilled one per LOG_REFILL_MS. */
import { expect } from 'chai';
import {
  clip,
  DETAIL_MAX,
  LOG_BURST,
  LOG_REFILL_MS,
  LogBudget,
  logWithin,
} from '../../lib/relay/log-budget.js';
import { captureLogger, type LogLine } from '../helpers/relay.js';

describe('LogBudget', () => {
  it('lets a burst through, then counts what it leaves out and reports it with the next line', () => {
    const b = new LogBudget();
    const t0 = 1_000_000;
    const burst = Array.from({ length: LOG_BURST }, () => b.take(false, t0));
    expect(burst.every((s) => s === 0)).to.equal(true);
    expect([b.take(false, t0), b.take(false, t0 + 10), b.take(false, t0 + LOG_REFILL_MS - 1)]).to.deep.equal([
      null,
      null,
      null,
    ]);
    // One line regained after a refill period: it carries the three left out.
    expect([b.take(false, t0 + LOG_REFILL_MS), b.take(false, t0 + LOG_REFILL_MS)]).to.deep.equal([3, null]);
    expect(b.unlogged).to.equal(4);
  });

  it('refills to the burst, not beyond, after a quiet spell', () => {
    const b = new LogBudget();
    for (let i = 0; i < LOG_BURST; i++) b.take(false, 0);
    const later = 1000 * LOG_REFILL_MS;
    const taken = Array.from({ length: LOG_BURST + 2 }, () => b.take(false, later));
    expect(taken.filter((s) => s !== null)).to.have.length(LOG_BURST);
  });

  it('logs a closing line even with the bucket empty', () => {
    const b = new LogBudget();
    for (let i = 0; i < LOG_BURST + 5; i++) b.take(false, 0);
    expect(b.take(true, 0)).to.equal(5);
    expect(b.unlogged).to.equal(5);
  });

  it('adds `unlogged` only when lines were left out, and clips long texts', () => {
    const lines: LogLine[] = [];
    const log = captureLogger(lines);
    const b = new LogBudget();
    logWithin(b, log, 'info', { a: 1 }, 'first');
    for (let i = 0; i < LOG_BURST + 1; i++) logWithin(b, log, 'warn', { a: 2 }, 'more');
    logWithin(b, log, 'warn', { a: 3 }, 'closing', true);
    expect(lines.map((l) => [l.level, l.msg, l.fields])).to.deep.include.members([
      ['info', 'first', { a: 1 }],
      ['warn', 'closing', { a: 3, unlogged: 2 }],
    ]);
    expect(lines).to.have.length(LOG_BURST + 1);
    const long = 'x'.repeat(5000);
    expect([clip('short'), clip(long).length]).to.deep.equal(['short', DETAIL_MAX]);
  });
});
