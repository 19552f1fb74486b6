/**
 * Entry point of the `msrp-relay` command; bin/msrp-relay calls {@link main}. No protocol logic here:
 * each subcommand lives in its own file. Bad flags and configuration end with one line on stderr and
 * exit code 2.
 */
import { Command, CommanderError } from 'commander';
import { isMsrpError } from '../errors.js';
import { registerLoadCommand } from './load-command.js';
import { registerPasswdCommand } from './passwd.js';
import { registerCheckConfigCommand, registerStartCommand } from './start.js';

const VERSION = '0.1.0';

/** Builds the command tree (exported for tests). */
export function buildProgram(): Command {
  const program = new Command('msrp-relay')
    .description('MSRP (RFC 4975/4976) relay over TCP, TLS and WebSocket, with delivery reports')
    .version(VERSION)
    .exitOverride();
  registerStartCommand(program);
  registerCheckConfigCommand(program);
  registerLoadCommand(program);
  registerPasswdCommand(program);
  for (const cmd of program.commands) cmd.exitOverride();
  return program;
}

/** Runs the CLI with the given argv (as in `process.argv`). */
export async function main(argv: string[]): Promise<void> {
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      const ok =
        err.code === 'commander.helpDisplayed' ||
        err.code === 'commander.version' ||
        err.code === 'commander.help';
      process.exit(ok ? 0 : 2);
    }
    if (isMsrpError(err)) {
      process.stderr.write(`msrp-relay: ${err.message}\n`);
      process.exit(2);
    }
    throw err;
  }
}
