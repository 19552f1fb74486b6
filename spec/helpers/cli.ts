/**
 * The CLI as operators run it, for the specs: `bin/msrp-relay` in a child process with its output
 * collected, and commander's parse of `msrp-relay load` flags without running anything.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { registerLoadCommand, type LoadFlags } from '../../lib/cli/load-command.js';

/** bin/msrp-relay, from build/spec/helpers. */
export const BIN = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bin', 'msrp-relay');

/** A running `msrp-relay` child. */
export interface Run {
  child: ChildProcess;
  stderr: () => string;
  stdout: () => string;
  exit: Promise<number | null>;
}

/** Starts `bin/msrp-relay args…`. */
export function run(args: string[]): Run {
  const child = spawn(process.execPath, [BIN, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env },
  });
  let err = '';
  let out = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  // 'close', not 'exit': output the child wrote just before exiting may still be in its pipes at 'exit'.
  const exit = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return { child, stderr: () => err, stdout: () => out, exit };
}

/** Waits (at most 10 s) until `re` matches the banner on stderr; returns its first group as a port. */
export async function bannerPort(r: Run, re = /tcp +127\.0\.0\.1:(\d+)/): Promise<number> {
  const end = Date.now() + 10_000;
  for (;;) {
    const m = re.exec(r.stderr());
    if (m) return Number(m[1]);
    if (Date.now() > end) throw new Error(`no banner; stderr: ${r.stderr()}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

/** The flags commander parses out of `msrp-relay load args…` (the action is replaced so nothing runs). */
export function parseLoadFlags(args: string[]): LoadFlags {
  const program = new Command('msrp-relay').exitOverride();
  registerLoadCommand(program);
  let seen: LoadFlags = {};
  const load = program.commands.find((c) => c.name() === 'load')!;
  load.exitOverride().action((flags: LoadFlags) => {
    seen = flags;
  });
  program.parse(['node', 'msrp-relay', 'load', ...args]);
  return seen;
}
