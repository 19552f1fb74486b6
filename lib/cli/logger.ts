/**
 * Structured logging for the CLI: pino writing one JSON object per line to stdout, or (`--log-format
 * pretty`) a compact human-readable line. Message bodies are never logged; the relay logs only heads'
 * metadata (ids, codes, addresses).
 */
import { pino, type Logger as PinoLogger } from 'pino';
import type { LogFormat, LogLevel } from './config.js';

const LEVEL_NAMES: Record<number, string> = {
  10: 'TRACE',
  20: 'DEBUG',
  30: 'INFO',
  40: 'WARN',
  50: 'ERROR',
  60: 'FATAL',
};

/**
 * A string value written without quotes: no space, quote, `=` or backslash in it. Any other is written as
 * a JSON string, so a value from the wire (a Digest user name `x remote=6.6.6.6:1234`) cannot pass for
 * fields of its own to a `key=value` reader (observability audit).
 */
const BARE = /^[^\s"=\\]+$/;

/** Formats pino's JSON lines as `HH:MM:SS.mmm LEVEL message key=value ...`. */
class PrettyDestination {
  write(line: string): void {
    let rec: Record<string, unknown>;
    try {
      rec = JSON.parse(line) as Record<string, unknown>;
    } catch {
      process.stdout.write(line);
      return;
    }
    const { time, level, msg, pid: _pid, hostname: _host, ...rest } = rec;
    const t = new Date(typeof time === 'number' ? time : Date.now()).toISOString().slice(11, 23);
    const fields = Object.entries(rest)
      .map(([k, v]) => `${k}=${typeof v === 'string' && BARE.test(v) ? v : JSON.stringify(v)}`)
      .join(' ');
    const name = (LEVEL_NAMES[level as number] ?? String(level)).padEnd(5);
    const text = `${String(msg ?? '')}${fields ? '  ' + fields : ''}`;
    process.stdout.write(`${t} ${name} ${escapeControls(text)}\n`);
  }
}

/**
 * Control characters (C0, DEL, C1) written as `\xNN`: values from the wire (a start line, a header) must
 * not move the cursor, clear a line or start a new one on an operator's terminal (security audit).
 */
export function escapeControls(s: string): string {
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\x00-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}

const DEL_C1 = /[\x7f-\x9f]/g;

/**
 * A JSON log line with DEL and the C1 controls written as `\u00NN`: JSON lets them stand raw, and pino
 * escapes only C0, but U+009B is a CSI to many terminals, so `tail -f` of the log must not print it as
 * is (observability audit F11). The line stays the same JSON.
 */
export function escapeJsonControls(line: string): string {
  return line.replace(DEL_C1, (c) => `\\u00${c.charCodeAt(0).toString(16)}`);
}

/** Creates the relay's logger. */
export function createLogger(level: LogLevel, format: LogFormat): PinoLogger {
  const options = { level, base: undefined, timestamp: pino.stdTimeFunctions.epochTime };
  if (format === 'pretty') return pino(options, new PrettyDestination());
  return pino(
    { ...options, timestamp: pino.stdTimeFunctions.isoTime, hooks: { streamWrite: escapeJsonControls } },
    pino.destination({ dest: 1, sync: false }),
  );
}
