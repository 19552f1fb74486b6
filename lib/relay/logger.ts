/**
 * The logging interface the relay writes to. The CLI supplies a JSON (or pretty) implementation; library
 * users can pass their own (pino's API is compatible) or {@link silentLogger}.
 */

/** Structured fields of one log line. */
export type LogFields = Record<string, unknown>;

/** Leveled, structured logger: `log.info({ conn: 3 }, 'connection closed')`. */
export interface Logger {
  trace(fields: LogFields, msg: string): void;
  debug(fields: LogFields, msg: string): void;
  info(fields: LogFields, msg: string): void;
  warn(fields: LogFields, msg: string): void;
  error(fields: LogFields, msg: string): void;
}

const noop = (): void => {};

/** A logger that drops everything (tests, embedding). */
export const silentLogger: Logger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop };
