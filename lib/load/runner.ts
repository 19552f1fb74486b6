/**
 * {@link runLoad}: the programmatic entry of the load tester. Validates the options, splits the sessions
 * into shares (one per worker thread, or one run in this thread), starts every share at the same moment,
 * merges what they measured and builds the {@link LoadReport}.
 *
 * ```
 *  runLoad ─► resolveLoadOptions ─► shares ─┬─► runShare (this thread, --workers 1)
 *                                           └─► Worker × W ─ ready ─► go ─► progress… ─► done(snapshot)
 *                                                   merge snapshots (counters summed, log buckets added)
 *                                                   ─► buildReport
 * ```
 */
import { performance } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { LoadMetrics, type MetricsSnapshot, type ProgressCounters } from './metrics.js';
import { resolveLoadOptions, type LoadConfig, type LoadOptions } from './options.js';
import { ProgressLine, sumProgress } from './progress.js';
import { buildReport, type LoadReport } from './report.js';
import { runShare, type ShareResult, type ShareSpec } from './share.js';
import type { MainMessage, WorkerInput, WorkerMessage } from './worker.js';

/** Grace between the start signal and the start, so every worker receives it in time. */
const START_DELAY_MS = 20;
/** How long a worker may take to exit after reporting `done` before it is terminated. */
const EXIT_GRACE_MS = 2000;

/**
 * Splits sessions, messages and rate over `cfg.workers` shares, in proportion to their sessions. Share i
 * takes sessions i, i+W, i+2W, ...: under a ramp-up every share has a session up from the start, so each
 * share's part of the ramped rate is sent from the start (blocks of consecutive sessions left the later
 * shares nothing to send on, and what fell due meanwhile was skipped).
 */
export function splitShares(cfg: LoadConfig): ShareSpec[] {
  const shares: ShareSpec[] = [];
  let given = 0;
  let messagesGiven = 0;
  for (let i = 0; i < cfg.workers; i++) {
    const sessions = Math.floor(cfg.sessions / cfg.workers) + (i < cfg.sessions % cfg.workers ? 1 : 0);
    let messages: number | null = null;
    if (cfg.messages !== null) {
      // Cumulative rounding: the shares add up to exactly cfg.messages.
      const upTo = Math.round((cfg.messages * (given + sessions)) / cfg.sessions);
      messages = upTo - messagesGiven;
      messagesGiven = upTo;
    }
    const rate = cfg.rate === null ? null : (cfg.rate * sessions) / cfg.sessions;
    shares.push({ firstSession: i, stride: cfg.workers, sessions, messages, rate });
    given += sessions;
  }
  return shares;
}

/** Metrics rebuilt from a worker's snapshot. */
function mergedMetrics(snapshot: MetricsSnapshot): LoadMetrics {
  const m = new LoadMetrics();
  m.merge(snapshot);
  return m;
}

function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** Runs the shares in worker threads; resolves with their results in share order. */
function runWorkers(
  cfg: LoadConfig,
  shares: ShareSpec[],
  onAllReady: () => Promise<number>,
  onProgress: (p: ProgressCounters) => void,
  signal: AbortSignal | undefined,
): Promise<ShareResult[]> {
  const url = new URL('./worker.js', import.meta.url);
  const workers = shares.map(
    (share) => new Worker(url, { workerData: { config: cfg, share } satisfies WorkerInput }),
  );
  const results: Array<ShareResult | undefined> = [];
  const progress: Array<ProgressCounters | undefined> = [];
  let ready = 0;
  let settled = false;
  const stopAll = (): void => {
    for (const w of workers) w.postMessage({ type: 'stop' } satisfies MainMessage);
  };
  if (signal?.aborted === true) stopAll();
  else signal?.addEventListener('abort', stopAll);
  return new Promise<ShareResult[]>((resolve, reject) => {
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      for (const w of workers) void w.terminate();
      reject(err);
    };
    workers.forEach((w, i) => {
      w.on('message', (m: WorkerMessage) => {
        switch (m.type) {
          case 'ready':
            if (++ready === workers.length) {
              onAllReady().then((at) => {
                for (const x of workers) x.postMessage({ type: 'go', at } satisfies MainMessage);
              }, fail);
            }
            break;
          case 'progress':
            progress[i] = m.progress;
            onProgress(sumProgress(progress));
            break;
          case 'done':
            results[i] = { metrics: mergedMetrics(m.metrics), setupMs: m.setupMs };
            // A worker normally exits by itself once its sockets are closed.
            setTimeout(() => void w.terminate(), EXIT_GRACE_MS).unref();
            if (results.filter((r) => r !== undefined).length === workers.length && !settled) {
              settled = true;
              resolve(results as ShareResult[]);
            }
            break;
          case 'error':
            fail(new Error(`load worker ${i + 1}: ${m.message}`));
        }
      });
      w.on('error', (err) => fail(new Error(`load worker ${i + 1}: ${err.message}`)));
      w.on('exit', (code) => {
        if (results[i] === undefined) fail(new Error(`load worker ${i + 1} exited with code ${code}`));
      });
    });
  });
}

/**
 * Runs a load test against an RFC 4976 relay and returns the report. Throws an `MsrpError`
 * (`MSRP_ERR_CONFIG`, one line) for invalid options; every failure during the run is measured, not thrown.
 */
export async function runLoad(options: LoadOptions = {}): Promise<LoadReport> {
  const cfg = resolveLoadOptions(options);
  const startedAt = new Date();
  const shares = splitShares(cfg);
  const showProgress = options.progress ?? process.stderr.isTTY === true;
  const line = showProgress ? new ProgressLine(process.stderr, cfg.sessions) : null;
  line?.open();
  const onAllReady = async (): Promise<number> => {
    await options.onSessionsReady?.();
    line?.started();
    return epochNow() + START_DELAY_MS;
  };
  const onProgress = (p: ProgressCounters): void => line?.update(p);
  let results: ShareResult[];
  try {
    if (shares.length === 1) {
      const onStop = (stop: () => void): void => {
        if (options.signal?.aborted === true) stop();
        else options.signal?.addEventListener('abort', stop);
      };
      results = [await runShare(cfg, shares[0]!, { ready: onAllReady, progress: onProgress, onStop })];
    } else {
      results = await runWorkers(cfg, shares, onAllReady, onProgress, options.signal);
    }
  } finally {
    line?.close();
  }
  let metrics = results[0]!.metrics;
  if (results.length > 1) {
    metrics = new LoadMetrics();
    for (const r of results) metrics.merge(r.metrics.snapshot());
  }
  return buildReport({
    config: cfg,
    metrics,
    startedAt,
    finishedAt: new Date(),
    setupMs: Math.max(...results.map((r) => r.setupMs)),
    command: options.command ?? 'runLoad()',
  });
}
