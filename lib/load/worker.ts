/**
 * Entry point of a load worker thread (`--workers W`): runs the share it is given in `workerData` and
 * talks to the main thread by messages — `ready` when its sessions are up, `progress` every 250 ms,
 * `done` with the metrics snapshot (histograms as log-bucket arrays), or `error`. The main thread answers
 * `ready` with one `go` carrying the common start time, and may send `stop` (Ctrl-C) at any time.
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { MetricsSnapshot, ProgressCounters } from './metrics.js';
import type { LoadConfig } from './options.js';
import { runShare, type ShareSpec } from './share.js';

/** What the main thread passes in `workerData`. */
export interface WorkerInput {
  config: LoadConfig;
  share: ShareSpec;
}

/** Messages from a worker to the main thread. */
export type WorkerMessage =
  | { type: 'ready' }
  | { type: 'progress'; progress: ProgressCounters }
  | { type: 'done'; metrics: MetricsSnapshot; setupMs: number }
  | { type: 'error'; message: string };

/** Messages from the main thread to a worker: the start time (epoch ms), or stop sending early. */
export type MainMessage = { type: 'go'; at: number } | { type: 'stop' };

if (parentPort !== null) {
  const port = parentPort;
  const input = workerData as WorkerInput;
  const post = (m: WorkerMessage): void => port.postMessage(m);
  let go: (at: number) => void = () => {};
  let stop: () => void = () => {};
  port.on('message', (m: MainMessage) => (m.type === 'go' ? go(m.at) : stop()));
  runShare(input.config, input.share, {
    ready: () =>
      new Promise<number>((resolve) => {
        go = resolve;
        post({ type: 'ready' });
      }),
    progress: (progress) => post({ type: 'progress', progress }),
    onStop: (fn) => {
      stop = fn;
    },
  }).then(
    (result) => {
      post({ type: 'done', metrics: result.metrics.snapshot(), setupMs: result.setupMs });
      port.unref(); // lets the thread exit once its sockets are closed
    },
    (err: unknown) => {
      post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
      port.unref();
    },
  );
}
