/**
 * MSRP URIs (RFC 4975 §6 and §9, with the `ws` transport of RFC 7977): parse, format, compare, and the
 * space-separated URI lists of To-Path, From-Path and Use-Path. A hand scanner over character tables, so a
 * hostile header costs one pass and no regex backtracking.
 *
 * ```
 * MSRP-URI   = msrp-scheme "://" authority ["/" session-id] ";" transport *( ";" URI-parameter)
 * authority  = [ userinfo "@" ] host [ ":" port ]           ; RFC 3986, no password
 * session-id = 1*( unreserved / "+" / "=" / "/" )
 * transport  = "tcp" / "ws" / 1*ALPHANUM
 * URI-parameter = token ["=" token]
 * ```
 */
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { equalsIgnoringAsciiCase } from './ascii.js';

/** A parsed MSRP URI. Scheme and transport are lower case; everything else is kept as written. */
export interface MsrpUri {
  /** `msrp` or `msrps` (TLS). */
  scheme: 'msrp' | 'msrps';
  /** The userinfo before `@`, if any (never a password); ignored by comparison. */
  user?: string;
  /** Host as written: a reg-name, an IPv4 address, or an IPv6 literal with its brackets (`[2001:db8::1]`). */
  host: string;
  /** Explicit port, 1-65535; undefined when the URI has none. */
  port?: number;
  /** Session-id after the authority; undefined for a device URI (e.g. a relay's AUTH URI). */
  sessionId?: string;
  /** Transport parameter in lower case: `tcp`, `ws` or an extension. */
  transport: string;
  /** Further `;name[=value]` parameters in order, as written. */
  params: Array<[string, string | undefined]>;
}

/** Options of {@link parseUri} and {@link parsePath}. */
export interface ParseUriOptions {
  /**
   * Reject URIs without an explicit port (RFC 4976 §8: every To-Path / From-Path URI except the AUTH
   * To-Path). `;ws` URIs are exempt (RFC 7977, digest §3.4: a WebSocket client's URI may omit the port). Default false.
   */
  requirePort?: boolean;
}

// Character classes of the URI grammar (RFC 3986 §2, RFC 4975 §9), one bit each, indexed by char code.
const UNRESERVED = 1; // ALPHA DIGIT - . _ ~
const SUB_DELIM = 2; // ! $ & ' ( ) * + , ; =
const TOKEN = 4; // RFC 4975 token
const ALNUM = 8;
const HEX = 16;
const DIGIT = 32;
const SESSION = 64; // unreserved + = /
const REG_NAME = 128; // unreserved / sub-delims except `;`, which ends the authority in an MSRP URI

const CHARS = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  const digit = c >= 0x30 && c <= 0x39;
  const alpha = (c >= 0x41 && c <= 0x5a) || (c >= 0x61 && c <= 0x7a);
  let bits = 0;
  if (digit) bits |= DIGIT;
  if (digit || alpha) bits |= ALNUM | UNRESERVED;
  if (digit || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)) bits |= HEX;
  if (c === 0x2d || c === 0x2e || c === 0x5f || c === 0x7e) bits |= UNRESERVED;
  if ("!$&'()*+,;=".includes(String.fromCharCode(c))) bits |= SUB_DELIM;
  // token = 1*(%x21 / %x23-27 / %x2A-2B / %x2D-2E / %x30-39 / %x41-5A / %x5E-7E)
  if (
    c === 0x21 ||
    (c >= 0x23 && c <= 0x27) ||
    c === 0x2a ||
    c === 0x2b ||
    c === 0x2d ||
    c === 0x2e ||
    digit ||
    (c >= 0x41 && c <= 0x5a) ||
    (c >= 0x5e && c <= 0x7e)
  ) {
    bits |= TOKEN;
  }
  if (bits & UNRESERVED || c === 0x2b || c === 0x3d || c === 0x2f) bits |= SESSION;
  if (bits & (UNRESERVED | SUB_DELIM) && c !== 0x3b) bits |= REG_NAME;
  CHARS[c] = bits;
}

const COLON = 0x3a;
const SLASH = 0x2f;
const SEMI = 0x3b;
const EQUALS = 0x3d;
const PERCENT = 0x25;
const LBRACKET = 0x5b;
const DOT = 0x2e;
const SP = 0x20;
const HTAB = 0x09;

/** True when char code `c` is ASCII and has one of the class bits in `bits`. */
function is(c: number, bits: number): boolean {
  return c < 128 && (CHARS[c]! & bits) !== 0;
}

/** The error every malformed URI raises; the text is quoted (and cut) so logs stay one line. */
function badUri(text: string, reason: string): MsrpError {
  const shown = text.length > 100 ? `${text.slice(0, 100)}...` : text;
  return createError(ErrorCodes.BAD_URI, `invalid MSRP URI ${JSON.stringify(shown)}: ${reason}`, 400);
}

/** The error for a character the grammar does not allow at offset `i`. */
function unexpected(text: string, i: number): MsrpError {
  return badUri(text, `unexpected character ${JSON.stringify(text[i])} at offset ${i}`);
}

/** True when `text` at `i` starts with lower-case ASCII `lower`, compared case-insensitively. */
function startsWithCI(text: string, i: number, lower: string): boolean {
  if (text.length - i < lower.length) return false;
  for (let k = 0; k < lower.length; k++) {
    if ((text.charCodeAt(i + k) | 0x20) !== lower.charCodeAt(k)) return false;
  }
  return true;
}

/**
 * Index after a run of `bits` characters and `%XX` escapes starting at `i`, or -1 on a bad escape.
 * Stops at the first character outside the class.
 */
function scanEscaped(text: string, i: number, bits: number): number {
  const len = text.length;
  while (i < len) {
    const c = text.charCodeAt(i);
    if (c === PERCENT) {
      if (i + 2 >= len || !is(text.charCodeAt(i + 1), HEX) || !is(text.charCodeAt(i + 2), HEX)) return -1;
      i += 3;
    } else if (is(c, bits)) {
      i++;
    } else {
      break;
    }
  }
  return i;
}

/**
 * The eight 16-bit groups of an RFC 4291 §2.2 text address (without brackets), or null when invalid.
 * Accepts `::` compression and a trailing dotted IPv4 part; rejects zone ids.
 */
function parseIPv6(s: string): number[] | null {
  const len = s.length;
  if (len < 2 || len > 45) return null;
  const head: number[] = [];
  const tail: number[] = [];
  let groups = head;
  let compressed = false;
  let i = 0;
  if (s.charCodeAt(0) === COLON) {
    if (s.charCodeAt(1) !== COLON) return null;
    compressed = true;
    groups = tail;
    i = 2;
    if (i === len) return [0, 0, 0, 0, 0, 0, 0, 0];
  }
  while (i < len) {
    // One group: 1-4 hex digits, or a dotted IPv4 address as the last two groups.
    let j = i;
    while (j < len && j - i < 5 && is(s.charCodeAt(j), HEX)) j++;
    if (j < len && s.charCodeAt(j) === DOT) {
      const v4 = parseIPv4(s.slice(i));
      if (v4 === null) return null;
      groups.push((v4[0]! << 8) | v4[1]!, (v4[2]! << 8) | v4[3]!);
      break;
    }
    if (j === i || j - i > 4) return null;
    groups.push(parseInt(s.slice(i, j), 16));
    i = j;
    if (i === len) break;
    if (s.charCodeAt(i) !== COLON) return null;
    i++;
    if (i < len && s.charCodeAt(i) === COLON) {
      if (compressed) return null;
      compressed = true;
      groups = tail;
      i++;
    } else if (i === len) {
      return null; // trailing single colon
    }
  }
  const count = head.length + tail.length;
  if (compressed ? count > 7 : count !== 8) return null;
  const out = head.slice();
  for (let k = count; k < 8; k++) out.push(0);
  for (let k = 0; k < tail.length; k++) out[8 - tail.length + k] = tail[k]!;
  return out;
}

/** The four octets of an RFC 3986 `IPv4address` (no leading zeros), or null when `s` is not one. */
function parseIPv4(s: string): number[] | null {
  const out: number[] = [];
  let i = 0;
  const len = s.length;
  while (out.length < 4) {
    const start = i;
    let value = 0;
    while (i < len && i - start < 4 && is(s.charCodeAt(i), DIGIT))
      value = value * 10 + s.charCodeAt(i++) - 0x30;
    const digits = i - start;
    if (digits === 0 || digits > 3 || value > 255 || (digits > 1 && s.charCodeAt(start) === 0x30))
      return null;
    out.push(value);
    if (out.length < 4) {
      if (i >= len || s.charCodeAt(i) !== DOT) return null;
      i++;
    }
  }
  return i === len ? out : null;
}

/**
 * Parses one MSRP URI. Throws an `MsrpError` with code `MSRP_ERR_BAD_URI` (status 400) when `text` is not
 * a valid URI, or has no port while `opts.requirePort` is set.
 */
export function parseUri(text: string, opts?: ParseUriOptions): MsrpUri {
  const len = text.length;
  let i: number;
  let scheme: 'msrp' | 'msrps';
  if (startsWithCI(text, 0, 'msrp://')) {
    scheme = 'msrp';
    i = 7;
  } else if (startsWithCI(text, 0, 'msrps://')) {
    scheme = 'msrps';
    i = 8;
  } else {
    throw badUri(text, 'scheme must be msrp:// or msrps://');
  }

  // userinfo: `@` occurs nowhere else in the grammar, so the first one closes it.
  let user: string | undefined;
  const at = text.indexOf('@', i);
  if (at !== -1) {
    const end = scanEscaped(text, i, UNRESERVED | SUB_DELIM);
    if (end !== at) {
      // RFC 4975 §6: the userinfo MUST NOT contain password information (`user:password@`).
      if (
        end !== -1 &&
        text.charCodeAt(end) === COLON &&
        scanEscaped(text, end + 1, UNRESERVED | SUB_DELIM) === at
      ) {
        throw badUri(text, 'userinfo must not carry a password');
      }
      throw badUri(text, "'@' outside a valid userinfo");
    }
    if (at === i) throw badUri(text, 'empty userinfo');
    user = text.slice(i, at);
    i = at + 1;
  }

  // host = IP-literal / IPv4address / reg-name; `;` ends the authority, so it cannot be part of a reg-name.
  let host: string;
  let isIp: boolean;
  if (text.charCodeAt(i) === LBRACKET) {
    const close = text.indexOf(']', i);
    if (close === -1) throw badUri(text, 'unterminated IPv6 literal');
    if (parseIPv6(text.slice(i + 1, close)) === null) throw badUri(text, 'invalid IPv6 literal');
    host = text.slice(i, close + 1);
    i = close + 1;
    isIp = true;
  } else {
    const start = i;
    i = scanEscaped(text, i, REG_NAME);
    if (i === -1) throw badUri(text, 'invalid percent-encoding in host');
    if (i === start) throw badUri(text, 'missing host');
    host = text.slice(start, i);
    isIp = parseIPv4(host) !== null;
  }

  let port: number | undefined;
  if (i < len && text.charCodeAt(i) === COLON) {
    const start = ++i;
    let value = 0;
    while (i < len && is(text.charCodeAt(i), DIGIT)) {
      value = value * 10 + text.charCodeAt(i++) - 0x30;
      if (value > 65535) throw badUri(text, 'port out of range 1-65535');
    }
    if (i === start) throw badUri(text, 'empty port');
    if (value === 0) throw badUri(text, 'port out of range 1-65535');
    port = value;
  }

  let sessionId: string | undefined;
  if (i < len && text.charCodeAt(i) === SLASH) {
    const start = ++i;
    while (i < len && is(text.charCodeAt(i), SESSION)) i++;
    if (i === start) throw badUri(text, 'empty session-id');
    sessionId = text.slice(start, i);
  }

  if (i >= len) throw badUri(text, 'missing transport parameter');
  if (text.charCodeAt(i) !== SEMI) throw unexpected(text, i);
  const tStart = ++i;
  while (i < len && is(text.charCodeAt(i), ALNUM)) i++;
  if (i === tStart) throw badUri(text, 'missing transport parameter');
  const transport = text.slice(tStart, i).toLowerCase();

  const params: Array<[string, string | undefined]> = [];
  while (i < len) {
    if (text.charCodeAt(i) !== SEMI) throw unexpected(text, i);
    const nStart = ++i;
    while (i < len && is(text.charCodeAt(i), TOKEN)) i++;
    if (i === nStart) throw badUri(text, 'empty URI parameter');
    const name = text.slice(nStart, i);
    let value: string | undefined;
    if (i < len && text.charCodeAt(i) === EQUALS) {
      const vStart = ++i;
      while (i < len && is(text.charCodeAt(i), TOKEN)) i++;
      if (i === vStart) throw badUri(text, `empty value of URI parameter ${name}`);
      value = text.slice(vStart, i);
    }
    params.push([name, value]);
  }

  if (port === undefined) {
    // RFC 4975 §6: a URI whose authority is a numeric IP address MUST also contain a port.
    if (isIp) throw badUri(text, 'an IP address host requires a port');
    // RFC 4976 §8: non-AUTH To-Path / From-Path URIs MUST carry a port; RFC 7977 lets `;ws` URIs omit it (digest §3.4).
    if (opts?.requirePort === true && transport !== 'ws') throw badUri(text, 'port required');
  }

  const uri: MsrpUri = { scheme, host, transport, params };
  if (user !== undefined) uri.user = user;
  if (port !== undefined) uri.port = port;
  if (sessionId !== undefined) uri.sessionId = sessionId;
  return uri;
}

/** A host as an MSRP URI writes it: an IPv6 address in brackets (RFC 3986 IP-literal), others as they are. */
export function uriHost(host: string): string {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]` : host;
}

/** Serialises a URI in canonical form; `formatUri(parseUri(s)) === s` for any `s` with lower-case scheme and transport. */
export function formatUri(uri: MsrpUri): string {
  let s = uri.scheme + '://';
  if (uri.user !== undefined) s += uri.user + '@';
  s += uri.host;
  if (uri.port !== undefined) s += ':' + uri.port;
  if (uri.sessionId !== undefined) s += '/' + uri.sessionId;
  s += ';' + uri.transport;
  for (const [name, value] of uri.params) s += value === undefined ? ';' + name : ';' + name + '=' + value;
  return s;
}

/** `host` reduced to the form RFC 4975 §6.1 compares: unreserved escapes decoded, lower case, IPv6 canonical. */
export function hostKey(host: string): string {
  if (host.charCodeAt(0) === LBRACKET) {
    const groups = parseIPv6(host.slice(1, -1));
    if (groups !== null) return '[' + groups.map((g) => g.toString(16)).join(':') + ']';
    return host.toLowerCase();
  }
  if (host.indexOf('%') === -1) return host.toLowerCase();
  let out = '';
  for (let i = 0; i < host.length; i++) {
    const c = host.charCodeAt(i);
    if (c === PERCENT && i + 2 < host.length) {
      const decoded = parseInt(host.slice(i + 1, i + 3), 16);
      if (is(decoded, UNRESERVED)) {
        out += String.fromCharCode(decoded);
      } else {
        out += host.slice(i, i + 3).toUpperCase();
      }
      i += 2;
    } else {
      out += host[i];
    }
  }
  return out.toLowerCase();
}

/**
 * RFC 4975 §6.1 equality: scheme, host (case-insensitive, unreserved escapes decoded, userinfo ignored),
 * port (explicit must match, none differs from any), session-id (case-sensitive) and transport
 * (case-insensitive) must all match; other parameters are ignored.
 */
export function uriEquals(a: MsrpUri, b: MsrpUri): boolean {
  return (
    a.port === b.port &&
    (a.sessionId ?? '') === (b.sessionId ?? '') &&
    equalsIgnoringAsciiCase(a.scheme, b.scheme) &&
    equalsIgnoringAsciiCase(a.transport, b.transport) &&
    (a.host === b.host || hostKey(a.host) === hostKey(b.host))
  );
}

/** A string equal for two URIs exactly when {@link uriEquals} holds; use it as a Map key. */
export function uriKey(uri: MsrpUri): string {
  let s = uri.scheme.toLowerCase() + '://' + hostKey(uri.host);
  if (uri.port !== undefined) s += ':' + uri.port;
  if (uri.sessionId !== undefined && uri.sessionId !== '') s += '/' + uri.sessionId;
  return s + ';' + uri.transport.toLowerCase();
}

/**
 * Parses a To-Path, From-Path or Use-Path value: one or more URIs separated by SP (runs of SP/HTAB and
 * surrounding white space tolerated). Throws `MSRP_ERR_BAD_URI` (400) on an empty list or any bad URI.
 */
export function parsePath(value: string, opts?: ParseUriOptions): MsrpUri[] {
  const out: MsrpUri[] = [];
  const len = value.length;
  let i = 0;
  while (i < len) {
    let c = value.charCodeAt(i);
    if (c === SP || c === HTAB) {
      i++;
      continue;
    }
    const start = i;
    while (i < len && (c = value.charCodeAt(i)) !== SP && c !== HTAB) i++;
    out.push(parseUri(value.slice(start, i), opts));
  }
  if (out.length === 0) throw createError(ErrorCodes.BAD_URI, 'empty URI list', 400);
  return out;
}

/** Serialises a URI list as a path header value: canonical URIs joined by single spaces. */
export function formatPath(uris: readonly MsrpUri[]): string {
  let s = '';
  for (let k = 0; k < uris.length; k++) s += (k === 0 ? '' : ' ') + formatUri(uris[k]!);
  return s;
}
