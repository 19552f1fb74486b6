/**
 * One thread's share of a load run: open its sessions (all at once, or spread over the ramp-up), wait
 * for the common start signal, send under the chosen pacing, drain, count what never came, close. The
 * main thread runs a share itself when `--workers 1`; worker.ts runs one per worker thread.
 *
 * ```
 * setup ──► ready() ─ start ─► traffic ──► drain (≤ --drain s) ──► finish (lost, missing) ──► hold ──► close
 * ```
 */
import { performance } from 'node:perf_hooks';
import { LoadMetrics, type ProgressCounters } from './metrics.js';
import type { LoadConfig } from './options.js';
import { closedLoop, MessageBudget, OpenLoop } from './pacing.js';
import { PayloadSource, SizePicker } from './payload.js';
import { LoadSession, SetupError, type SessionContext } from './session.js';

/** Which sessions and how much traffic a thread takes. */
export interface ShareSpec {
  /** Global index of the share's first session. */
  firstSession: number;
  /** Global indices of the share's sessions: firstSession, firstSession + stride, ... */
  stride: number;
  sessions: number;
  /** Messages this share sends (null: until the duration ends). */
  messages: number | null;
  /** Open-loop rate of this share, messages/s (null: closed loop). */
  rate: number | null;
}

/** How a share talks to whoever runs it. */
export interface ShareHooks {
  /**
   * Called once the share's sessions are up (at once with a ramp-up); resolves with the common start
   * time as epoch milliseconds (`performance.timeOrigin + performance.now()`).
   */
  ready(): Promise<number>;
  /** Receives the counters every 250 ms while the share runs. */
  progress?(p: ProgressCounters): void;
  /**
   * Registers what to call to stop early (Ctrl-C), at the share's start: sessions not yet opened are not
   * opened, nothing more is sent, the drain and the report follow as usual and `--hold` is cut short.
   */
  onStop?(stop: () => void): void;
}

/** What a share hands back. */
export interface ShareResult {
  /** Live metrics (their HDR histograms give exact percentiles in this thread). */
  metrics: LoadMetrics;
  /** Milliseconds from the share's start until its sessions were up (0 with a ramp-up). */
  setupMs: number;
}

const PROGRESS_MS = 250;
const DRAIN_POLL_MS = 10;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
}

/** Sleeps `ms`, or less when `stop` resolves first (its timer is then cleared: nothing keeps the process up). */
function sleepUnless(ms: number, stop: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    new Promise<void>((resolve) => (timer = setTimeout(resolve, Math.max(0, ms)))),
    stop,
  ]).finally(() => clearTimeout(timer));
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** At most `limit` calls of `task` in progress at once. */
class Gate {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    try {
      return await task();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

/** Runs one share to the end and returns its metrics. */
export async function runShare(cfg: LoadConfig, share: ShareSpec, hooks: ShareHooks): Promise<ShareResult> {
  const metrics = new LoadMetrics();
  metrics.sessionsRequested = share.sessions;
  let lastOutcome = -1;
  let wake: () => void = () => {};
  const stopSignal = new Promise<void>((resolve) => (wake = resolve));
  const ctx: SessionContext = {
    config: cfg,
    metrics,
    payload: new PayloadSource(),
    outcome: () => {
      lastOutcome = performance.now();
    },
    latencyFrom: Infinity, // set when traffic starts
    lastSendAt: -1,
    settingUp: new Set(),
    stopped: false,
    stopSignal,
  };
  const sessions: LoadSession[] = [];
  let budget: MessageBudget | null = null;
  hooks.onStop?.(() => {
    ctx.stopped = true;
    budget?.stop();
    wake();
    // Setups waiting on an AUTH answer end now, not at their timeout (a relay that never answers).
    for (const ep of ctx.settingUp) void ep.close();
  });
  const report = hooks.progress;
  const progressTimer =
    report === undefined ? null : setInterval(() => report(metrics.progress()), PROGRESS_MS);
  const gate = new Gate(cfg.setupConcurrency);
  const open = (k: number): Promise<LoadSession | null> =>
    gate.run(async () => {
      if (ctx.stopped) return null;
      try {
        const s = await LoadSession.open(ctx, share.firstSession + k * share.stride);
        sessions.push(s);
        metrics.sessionsEstablished++;
        return s;
      } catch (err) {
        // A setup cut short by the stop is not the relay's failure: it counts as not opened.
        if (!ctx.stopped) metrics.setupFailed(err instanceof SetupError ? err.reason : String(err));
        return null;
      }
    });

  const began = performance.now();
  let setupMs = 0;
  const ramping = cfg.rampUp > 0;
  const opened: Array<Promise<LoadSession | null>> = [];
  if (!ramping) {
    for (let k = 0; k < share.sessions; k++) opened.push(open(k));
    await Promise.all(opened);
    setupMs = performance.now() - began;
  }
  await sleep((await hooks.ready()) - epochNow());

  const go = performance.now();
  ctx.latencyFrom = go + cfg.warmUp * 1000;
  budget = new MessageBudget(share.messages, cfg.duration === null ? Infinity : go + cfg.duration * 1000);
  if (ctx.stopped) budget.stop();
  const sizes = new SizePicker(cfg.sizes);
  const lanes: Array<Promise<void>> = [];
  const openLoop = share.rate === null ? null : new OpenLoop(share.rate, cfg.rampUp * 1000, budget, sizes);
  const closedBudget = budget;
  const start = (s: LoadSession | null): void => {
    if (s === null) return;
    if (openLoop !== null) openLoop.add(s);
    else lanes.push(closedLoop(s, cfg.concurrency ?? 1, closedBudget, sizes));
  };
  let setup: Promise<void>;
  if (ramping) {
    // Session g (global index) opens at rampUp·g/sessions seconds after the start.
    setup = (async () => {
      // Every session is opened, even once --messages is spent; only the end of --duration stops it.
      for (let k = 0; k < share.sessions && closedBudget.remainingMs > 0 && !ctx.stopped; k++) {
        const at = go + (cfg.rampUp * 1000 * (share.firstSession + k * share.stride)) / cfg.sessions;
        await sleepUnless(at - performance.now(), stopSignal);
        if (ctx.stopped) break;
        opened.push(open(k).then((s) => (start(s), s)));
      }
      await Promise.all(opened);
    })();
  } else {
    for (const s of sessions) start(s);
    setup = Promise.resolve();
  }
  if (openLoop !== null) {
    void setup.then(() => openLoop.setupDone());
    await openLoop.run();
    metrics.messagesSkipped = openLoop.skipped;
  }
  // Closed-loop lanes of ramped-up sessions are added while `setup` runs: all are there once it is over.
  await setup;
  await Promise.all(lanes);
  const trafficEnd = performance.now();

  const drainUntil = performance.now() + cfg.drain * 1000;
  // A session whose sender's connection closed has nothing more coming: its pending messages are lost
  // now. One whose receiver went away still hears the relay's failure REPORTs (chaining audit: 481s that
  // came just after the drain ended left their messages counted lost).
  while (performance.now() < drainUntil && sessions.some((s) => s.awaiting)) await sleep(DRAIN_POLL_MS);
  // To the last outcome or the last message sent, whichever is later: messages lost have no outcome, so
  // the last outcome alone could end long before the traffic did (load-tester audit).
  const lastEvent = Math.max(lastOutcome, ctx.lastSendAt);
  metrics.activeMs = (lastEvent >= go ? lastEvent : trafficEnd) - go;
  for (const s of sessions) s.finish();
  if (cfg.hold > 0 && !ctx.stopped) await sleepUnless(cfg.hold * 1000, stopSignal);
  if (progressTimer !== null) clearInterval(progressTimer);
  report?.(metrics.progress());
  await Promise.all(sessions.map((s) => s.close()));
  return { metrics, setupMs };
}
