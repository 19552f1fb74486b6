/**
 * `msrp-relay passwd <user>`: prints a users-file line `user:HA1` (HA1 = MD5(user ":" realm ":"
 * password), RFC 2617 §3.2.2.2) so that no clear password has to be kept on disk. The realm is the one
 * `start` would use with the same `--realm`, `--config` and environment; it is named on stderr, since an
 * HA1 made for another realm never matches. The password comes from the terminal (asked twice, not
 * echoed) or, when stdin is not a terminal, as the first line of stdin.
 */
import type { Command } from 'commander';
import { createError, ErrorCodes } from '../errors.js';
import { computeHA1 } from '../relay/digest-auth.js';
import { userNameProblem } from '../relay/users.js';
import { resolveConfig } from './config.js';

export function registerPasswdCommand(program: Command): void {
  program
    .command('passwd')
    .description('print a users-file line "user:HA1" for a password read from the terminal or stdin')
    .argument('<user>', 'the user name')
    .option(
      '--realm <text>',
      'Digest realm (default: the one `start` uses with the same config and environment)',
    )
    .option('--config <file>', 'JSON or YAML config file to take the realm (or public host) from')
    .action(async (user: string, flags: Record<string, unknown>) => {
      const problem = userNameProblem(user);
      if (problem !== undefined) throw configError(`${problem}: pick another user name`);
      const realm =
        typeof flags.realm === 'string' && flags.realm !== ''
          ? flags.realm
          : resolveConfig(flags, process.env, { checkFiles: false }).realm!;
      const password = process.stdin.isTTY ? await askTwice() : await firstLineOfStdin();
      if (password === '') throw configError('empty password: give one');
      process.stderr.write(`HA1 for realm "${realm}" (a users-file line for --users):\n`);
      process.stdout.write(`${user}:${computeHA1(user, realm, password)}\n`);
    });
}

function configError(message: string): Error {
  return createError(ErrorCodes.CONFIG, message, 0);
}

/** The first line of stdin, without its line ending; rejects when stdin is empty. */
async function firstLineOfStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk as Buffer);
    if ((chunk as Buffer).includes(0x0a)) break; // the first line is in
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text === '') throw configError('no password on standard input: pipe one line, or run in a terminal');
  const end = text.indexOf('\n');
  return (end === -1 ? text : text.slice(0, end)).replace(/\r$/, '');
}

async function askTwice(): Promise<string> {
  const [first, again] = await readHidden(['Password: ', 'Again: ']);
  if (first !== again) throw configError('the two passwords differ: run it again');
  return first!;
}

/**
 * Reads one line per prompt from the terminal without echoing it (Backspace edits, Ctrl-C or Ctrl-D
 * cancels), in one raw-mode session so that text typed ahead answers the next prompt.
 */
function readHidden(prompts: readonly string[]): Promise<string[]> {
  const stdin = process.stdin;
  const answers: string[] = [];
  process.stderr.write(prompts[0]!);
  stdin.setEncoding('utf8'); // a multi-byte character split over two chunks is decoded whole
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let text = '';
    let afterCr = false;
    const finish = (): void => {
      stdin.off('data', onData);
      stdin.setRawMode(false);
      stdin.pause();
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        const lf = ch === '\n' && afterCr; // CR LF ends one line, not two
        afterCr = ch === '\r';
        if (lf) continue;
        if (ch === '\r' || ch === '\n') {
          answers.push(text);
          text = '';
          process.stderr.write('\n');
          if (answers.length === prompts.length) {
            finish();
            resolve(answers);
            return;
          }
          process.stderr.write(prompts[answers.length]!);
        } else if (ch === '\u0003' || ch === '\u0004') {
          finish();
          process.stderr.write('\n');
          reject(configError('cancelled'));
          return;
        } else if (ch === '\u007f' || ch === '\b') text = [...text].slice(0, -1).join('');
        else text += ch;
      }
    };
    stdin.on('data', onData);
  });
}
