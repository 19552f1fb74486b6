/**
 * The project's one error type. Every malformation the wire layer, the relay or the CLI detects is an
 * `MsrpError` with a stable `code`, the MSRP status it maps to, and whether it is fatal to the connection.
 * Every code is listed in docs/errors.md.
 */

/** Stable error codes; `docs/errors.md` says when each is raised. */
export const ErrorCodes = {
  /** Start line is not `MSRP <tid> <method|code>`: the frame boundary is lost. */
  BAD_START_LINE: 'MSRP_ERR_BAD_START_LINE',
  /** Transaction id is not an RFC 4975 ident (4-32 chars, alphanumeric first). */
  BAD_TRANSACTION_ID: 'MSRP_ERR_BAD_TRANSACTION_ID',
  /** Start line plus headers exceed `maxHeadBytes`. */
  HEAD_TOO_LARGE: 'MSRP_ERR_HEAD_TOO_LARGE',
  /** More header lines than `maxHeaders`. */
  TOO_MANY_HEADERS: 'MSRP_ERR_TOO_MANY_HEADERS',
  /** A header line without `name: value` shape. */
  BAD_HEADER: 'MSRP_ERR_BAD_HEADER',
  /** To-Path / From-Path not on lines 2 and 3, or Content-Type not last (RFC 4975 §7.1). */
  HEADER_ORDER: 'MSRP_ERR_HEADER_ORDER',
  /** A required header is missing (e.g. To-Path). */
  MISSING_HEADER: 'MSRP_ERR_MISSING_HEADER',
  /** A header value does not match its grammar (Byte-Range, Status, report flags, Expires, Digest). */
  BAD_HEADER_VALUE: 'MSRP_ERR_BAD_HEADER_VALUE',
  /** An MSRP URI does not match RFC 4975 §9 / RFC 7977. */
  BAD_URI: 'MSRP_ERR_BAD_URI',
  /** A body where none may be (response, bodiless shape) or a blank line without Content-Type. */
  BAD_BODY: 'MSRP_ERR_BAD_BODY',
  /** The end-line flag is not one the frame allows (responses end with `$`). */
  BAD_END_LINE: 'MSRP_ERR_BAD_END_LINE',
  /** Body of one frame exceeds its limit (non-SEND body limit, or SEND chunk limit). */
  BODY_TOO_LARGE: 'MSRP_ERR_BODY_TOO_LARGE',
  /** A message (all chunks) exceeds the configured maximum. */
  MESSAGE_TOO_LARGE: 'MSRP_ERR_MESSAGE_TOO_LARGE',
  /** A WebSocket message held less or more than one MSRP frame (RFC 7977 §5.2). */
  WS_FRAMING: 'MSRP_ERR_WS_FRAMING',
  /** A configuration value or command-line flag is invalid. */
  CONFIG: 'MSRP_ERR_CONFIG',
} as const;

/** One of the values of {@link ErrorCodes}. */
export type MsrpErrorCode = (typeof ErrorCodes)[keyof typeof ErrorCodes];

/**
 * An error the wire layer or relay raises for bad input. `statusCode` is the MSRP status to answer the
 * transaction with (400, 413, ...); `fatal` means the byte stream can no longer be framed and the
 * connection must be closed.
 */
export class MsrpError extends Error {
  readonly code: MsrpErrorCode;
  readonly statusCode: number;
  readonly fatal: boolean;

  constructor(code: MsrpErrorCode, message: string, statusCode: number, fatal: boolean) {
    super(message);
    this.name = 'MsrpError';
    this.code = code;
    this.statusCode = statusCode;
    this.fatal = fatal;
  }
}

/** The one factory for {@link MsrpError}; keeps the stack trace out of the factory frame. */
export function createError(
  code: MsrpErrorCode,
  message: string,
  statusCode = 400,
  fatal = false,
): MsrpError {
  const err = new MsrpError(code, message, statusCode, fatal);
  Error.captureStackTrace?.(err, createError);
  return err;
}

/** True when `value` is an {@link MsrpError}. */
export function isMsrpError(value: unknown): value is MsrpError {
  return value instanceof MsrpError;
}
