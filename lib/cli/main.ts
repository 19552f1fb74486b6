/**
 * Entry point of the `msrp-relay` command; bin/msrp-relay calls {@link main}.
 */
import { Command } from 'commander';

/** Runs the CLI with the given argv (as in `process.argv`). */
export async function main(argv: string[]): Promise<void> {
  const program = new Command('msrp-relay')
    .description('MSRP (RFC 4975/4976) relay over TCP, TLS and WebSocket, with delivery reports')
    .version('0.1.0');
  await program.parseAsync(argv);
}
