/**
 * bench/relay-server — our relay in a process of its own for bench/relay.ts, when `msrp-relay start` is
 * not used (`MSRP_BENCH_RELAY=script`). Listens on 127.0.0.1, port 0; prints one JSON line
 * `{"port":N,"pid":N}` on stdout once bound; stops on SIGTERM/SIGINT.
 *
 * Run: `node build/bench/relay-server.js [--users FILE] [--max-message-size BYTES] [--reports MODE]`;
 * without --users, AUTH is granted without a challenge.
 */
import { createRelay } from '../lib/relay/relay.js';
import { FileUserStore } from '../lib/relay/users.js';
import type { ReportMode } from '../lib/reports/policy.js';

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i === -1 ? undefined : process.argv[i + 1];
}

const users = arg('--users');
const maxMessage = arg('--max-message-size');
const reports = arg('--reports') as ReportMode | undefined;
const relay = createRelay({
  listen: [{ host: '127.0.0.1', port: 0 }],
  ...(users === undefined
    ? { auth: false }
    : { users: FileUserStore.fromFile(users), realm: 'bench.invalid' }),
  ...(maxMessage === undefined ? {} : { maxMessageBytes: Number(maxMessage) }),
  ...(reports === undefined ? {} : { reports }),
});
await relay.listen();
process.stdout.write(JSON.stringify({ port: relay.addresses()[0]!.port, pid: process.pid }) + '\n');
const stop = (): void => {
  void relay.close(1000).then(() => process.exit(0));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
