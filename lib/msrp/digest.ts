/**
 * Codecs for the three Digest header values of RFC 4976 §7: `WWW-Authenticate`, `Authorization` and
 * `Authentication-Info`. Pure string work, no crypto (that lives in lib/relay/digest-auth.ts).
 *
 * Values are latin1 "binary strings", like every header value the parser delivers (lib/msrp/message.ts).
 * Parsers accept optional white space around `,` and `=` in all three headers (digest §8 row 4: the
 * Authentication-Info ABNF has no SP after its commas, the other two have one), quoted strings with `\"`
 * and `\\` escapes, and either a token or a quoted string for every parameter. Generators emit `, `
 * between parameters and quote exactly the parameters the ABNF quotes, so the examples of RFC 4976 and
 * the spec digest (E2.2-E2.4) round-trip byte for byte. Parameter names match case-insensitively;
 * a repeated parameter is an error.
 */
import { createError, ErrorCodes, type MsrpError } from '../errors.js';

/** A parsed `WWW-Authenticate: Digest ...` challenge. */
export interface DigestChallenge {
  /** Protection space; RFC 4976 leaves its value to policy (host name is usual). */
  realm: string;
  /** Server nonce, opaque to the client. */
  nonce: string;
  /**
   * The qop-options as sent, without quotes: one option (`auth`) or a comma-separated list
   * (`auth,auth-int`); split it with {@link splitQopOptions}. Absent only in RFC 2069-style challenges,
   * which RFC 4976 does not allow.
   */
  qop?: string;
  /** `stale=true`: the previous nonce expired but the credentials were good. */
  stale?: boolean;
  /** Opaque string the client must echo. */
  opaque?: string;
  /** `MD5` (the only one RFC 4976 allows) or another token. */
  algorithm?: string;
  /** Any other auth-param, keyed by lower-case name (a null-prototype object). */
  extra?: Record<string, string>;
}

/** What {@link formatDigestChallenge} takes: a challenge whose `qop` may also be given as a list. */
export type DigestChallengeInit = Omit<DigestChallenge, 'qop'> & { qop?: string | readonly string[] };

/** Parsed `Authorization: Digest ...` credentials. */
export interface DigestCredentials {
  /** The user name, unquoted. */
  username: string;
  /** The realm the client computed HA1 for. */
  realm: string;
  /** The nonce the client answers. */
  nonce: string;
  /** digest-uri: for MSRP the rightmost URI of the AUTH To-Path (RFC 4976 §5.1). */
  uri: string;
  /** request-digest, 32 hex digits as sent. */
  response: string;
  /** message-qop (`auth`); RFC 4976 requires it, RFC 2617 lets RFC 2069 clients omit it. */
  qop?: string;
  /** Client nonce; RFC 4976 requires it, the codec does not (the authenticator rejects its absence). */
  cnonce?: string;
  /** nonce-count, 8 hex digits as sent; required by RFC 4976, optional here (as for `cnonce`). */
  nc?: string;
  /** `MD5` or another token. */
  algorithm?: string;
  /** Echo of the challenge's opaque. */
  opaque?: string;
  /** Any other auth-param, keyed by lower-case name (a null-prototype object). */
  extra?: Record<string, string>;
}

/** A parsed `Authentication-Info` value; RFC 2617 makes every item optional. */
export interface AuthenticationInfo {
  /** Nonce the client should use for its next AUTH. */
  nextnonce?: string;
  /** message-qop (`auth`). */
  qop?: string;
  /** response-auth: proves the relay knows the user's secret. */
  rspauth?: string;
  /** Echo of the client's cnonce. */
  cnonce?: string;
  /** Echo of the client's nonce-count. */
  nc?: string;
  /** Any other auth-param, keyed by lower-case name (a null-prototype object). */
  extra?: Record<string, string>;
}

/** What {@link formatAuthenticationInfo} takes: RFC 4976 §6.3 requires qop, rspauth, cnonce and nc. */
export interface AuthenticationInfoInit {
  nextnonce?: string;
  qop: string;
  rspauth: string;
  cnonce: string;
  nc: string;
  extra?: Record<string, string>;
}

// ---------------------------------------------------------------------------------------------------
// Character classes

/** RFC 2616 token characters (tchar), indexed by char code. */
const TOKEN_CHARS = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") {
  TOKEN_CHARS[c.charCodeAt(0)] = 1;
}

function isTokenChar(code: number): boolean {
  return code < 128 && TOKEN_CHARS[code] === 1;
}

function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) if (!isTokenChar(s.charCodeAt(i))) return false;
  return true;
}

/** qdtext (RFC 2616 §2.2): HTAB, SP and visible latin1 except `"` and `\`. */
function isQdText(code: number): boolean {
  return (
    code === 0x09 ||
    (code >= 0x20 && code <= 0x7e && code !== 0x22 && code !== 0x5c) ||
    (code >= 0x80 && code <= 0xff)
  );
}

function isOws(code: number): boolean {
  return code === 0x20 || code === 0x09;
}

const HEX8 = /^[0-9a-fA-F]{8}$/;
const HEX32 = /^[0-9a-fA-F]{32}$/;
const HEX_ANY = /^[0-9a-fA-F]*$/;

// ---------------------------------------------------------------------------------------------------
// Generic auth-param list

interface Param {
  /** Lower-case name. */
  name: string;
  /** Value with quotes removed and escapes resolved. */
  value: string;
}

function bad(header: string, message: string): MsrpError {
  return createError(ErrorCodes.BAD_HEADER_VALUE, `${header}: ${message}`, 400);
}

/**
 * Parses `param *( OWS "," OWS param )` with `param = token OWS "=" OWS ( token / quoted-string )`
 * from `pos` to the end of `v` (trailing OWS allowed). Names are lower-cased; duplicates are an error.
 */
function parseParams(v: string, pos: number, header: string): Param[] {
  const out: Param[] = [];
  const seen = new Set<string>();
  const end = v.length;
  while (true) {
    while (pos < end && isOws(v.charCodeAt(pos))) pos++;
    const nameStart = pos;
    while (pos < end && isTokenChar(v.charCodeAt(pos))) pos++;
    if (pos === nameStart) {
      throw bad(
        header,
        pos === end ? 'expected a parameter at the end' : `expected a parameter at offset ${pos}`,
      );
    }
    const name = v.slice(nameStart, pos).toLowerCase();
    while (pos < end && isOws(v.charCodeAt(pos))) pos++;
    if (v.charCodeAt(pos) !== 0x3d) throw bad(header, `expected '=' after '${name}' at offset ${pos}`);
    pos++;
    while (pos < end && isOws(v.charCodeAt(pos))) pos++;
    let value: string;
    if (v.charCodeAt(pos) === 0x22) {
      // quoted-string = DQUOTE *( qdtext / quoted-pair ) DQUOTE
      pos++;
      let chunkStart = pos;
      value = '';
      while (true) {
        if (pos >= end) throw bad(header, `unterminated quoted string in '${name}'`);
        const c = v.charCodeAt(pos);
        if (c === 0x22) break;
        if (c === 0x5c) {
          const next = v.charCodeAt(pos + 1);
          if (!(pos + 1 < end) || !(isQdText(next) || next === 0x22 || next === 0x5c)) {
            throw bad(header, `bad escape in '${name}' at offset ${pos}`);
          }
          value += v.slice(chunkStart, pos);
          chunkStart = pos + 1; // keep the escaped character
          pos += 2;
          continue;
        }
        if (!isQdText(c)) throw bad(header, `control character in '${name}' at offset ${pos}`);
        pos++;
      }
      value += v.slice(chunkStart, pos);
      pos++; // closing DQUOTE
    } else {
      const valueStart = pos;
      while (pos < end && isTokenChar(v.charCodeAt(pos))) pos++;
      if (pos === valueStart)
        throw bad(header, `expected a token or quoted string for '${name}' at offset ${pos}`);
      value = v.slice(valueStart, pos);
    }
    if (seen.has(name)) throw bad(header, `parameter '${name}' repeated`);
    seen.add(name);
    out.push({ name, value });
    while (pos < end && isOws(v.charCodeAt(pos))) pos++;
    if (pos === end) return out;
    if (v.charCodeAt(pos) !== 0x2c) throw bad(header, `expected ',' at offset ${pos}`);
    pos++;
  }
}

/**
 * Returns the offset of the first parameter after the `Digest` scheme (matched case-insensitively),
 * or throws. Leading OWS is skipped; at least one SP/HTAB must follow the scheme.
 */
function skipDigestScheme(v: string, header: string): number {
  let pos = 0;
  while (isOws(v.charCodeAt(pos))) pos++;
  const start = pos;
  while (pos < v.length && isTokenChar(v.charCodeAt(pos))) pos++;
  if (pos === start) throw bad(header, 'missing authentication scheme');
  const scheme = v.slice(start, pos);
  if (scheme.toLowerCase() !== 'digest') throw bad(header, `unsupported scheme '${scheme}', expected Digest`);
  if (!isOws(v.charCodeAt(pos))) throw bad(header, 'expected white space after Digest');
  while (isOws(v.charCodeAt(pos))) pos++;
  return pos;
}

function nullObject(): Record<string, string> {
  return Object.create(null) as Record<string, string>;
}

function addExtra(target: { extra?: Record<string, string> }, p: Param): void {
  (target.extra ??= nullObject())[p.name] = p.value;
}

function requireField<T extends object, K extends keyof T>(obj: T, key: K, header: string): void {
  if (obj[key] === undefined) throw bad(header, `missing '${String(key)}'`);
}

// ---------------------------------------------------------------------------------------------------
// Public parsers

/**
 * The authentication scheme that opens a `WWW-Authenticate` or `Authorization` value (`Digest`,
 * `Basic`, ...) as written, or undefined when the value does not start with a token.
 */
export function authScheme(value: string): string | undefined {
  let pos = 0;
  while (isOws(value.charCodeAt(pos))) pos++;
  const start = pos;
  while (pos < value.length && isTokenChar(value.charCodeAt(pos))) pos++;
  return pos === start ? undefined : value.slice(start, pos);
}

/** Splits a qop-options string (`auth,auth-int`) into its options, dropping white space. */
export function splitQopOptions(qop: string): string[] {
  return qop
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * Parses a `WWW-Authenticate` value (`Digest realm="...", nonce="...", qop="auth"`). `realm` and `nonce`
 * are required; `stale` must be `true` or `false` (any case). Throws `MSRP_ERR_BAD_HEADER_VALUE` (400).
 */
export function parseDigestChallenge(value: string): DigestChallenge {
  const H = 'WWW-Authenticate';
  const params = parseParams(value, skipDigestScheme(value, H), H);
  const out: Partial<DigestChallenge> = {};
  for (const p of params) {
    switch (p.name) {
      case 'realm':
        out.realm = p.value;
        break;
      case 'nonce':
        out.nonce = p.value;
        break;
      case 'qop':
        out.qop = p.value;
        break;
      case 'opaque':
        out.opaque = p.value;
        break;
      case 'algorithm':
        out.algorithm = p.value;
        break;
      case 'stale': {
        const s = p.value.toLowerCase();
        if (s !== 'true' && s !== 'false') throw bad(H, `stale must be true or false, got '${p.value}'`);
        out.stale = s === 'true';
        break;
      }
      default:
        addExtra(out, p);
    }
  }
  requireField(out, 'realm', H);
  requireField(out, 'nonce', H);
  return out as DigestChallenge;
}

/**
 * Parses an `Authorization` value (`Digest username="...", realm="...", ...`). `username`, `realm`,
 * `nonce`, `uri` and `response` are required; `response` must be 32 hex digits and `nc` 8 hex digits.
 * `qop`, `cnonce` and `nc` may be absent here; the relay rejects that as unsupported. Throws
 * `MSRP_ERR_BAD_HEADER_VALUE` (400).
 */
export function parseDigestCredentials(value: string): DigestCredentials {
  const H = 'Authorization';
  const params = parseParams(value, skipDigestScheme(value, H), H);
  const out: Partial<DigestCredentials> = {};
  for (const p of params) {
    switch (p.name) {
      case 'username':
      case 'realm':
      case 'nonce':
      case 'uri':
      case 'qop':
      case 'cnonce':
      case 'algorithm':
      case 'opaque':
        out[p.name] = p.value;
        break;
      case 'response':
        // RFC 4976 §7: request-digest = DQUOTE 32LHEX DQUOTE (upper case tolerated).
        if (!HEX32.test(p.value)) throw bad(H, 'response must be 32 hex digits');
        out.response = p.value;
        break;
      case 'nc':
        // RFC 4976 §7: nc-value = 8LHEX (upper case tolerated).
        if (!HEX8.test(p.value)) throw bad(H, 'nc must be 8 hex digits');
        out.nc = p.value;
        break;
      default:
        addExtra(out, p);
    }
  }
  for (const k of ['username', 'realm', 'nonce', 'uri', 'response'] as const) requireField(out, k, H);
  return out as DigestCredentials;
}

/**
 * Parses an `Authentication-Info` value (`nextnonce="...", qop=auth, rspauth="...", cnonce="...",
 * nc=00000001`); no scheme. `rspauth` must be hex and `nc` 8 hex digits. Throws
 * `MSRP_ERR_BAD_HEADER_VALUE` (400).
 */
export function parseAuthenticationInfo(value: string): AuthenticationInfo {
  const H = 'Authentication-Info';
  const params = parseParams(value, 0, H);
  const out: AuthenticationInfo = {};
  for (const p of params) {
    switch (p.name) {
      case 'nextnonce':
      case 'qop':
      case 'cnonce':
        out[p.name] = p.value;
        break;
      case 'rspauth':
        // RFC 4976 §7: response-digest = DQUOTE *LHEX DQUOTE.
        if (!HEX_ANY.test(p.value)) throw bad(H, 'rspauth must be hex digits');
        out.rspauth = p.value;
        break;
      case 'nc':
        if (!HEX8.test(p.value)) throw bad(H, 'nc must be 8 hex digits');
        out.nc = p.value;
        break;
      default:
        addExtra(out, p);
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------
// Public generators

/** `"..."` with `\` and `"` escaped; throws on characters a header line cannot carry (CR, LF, ...). */
function quote(header: string, name: string, value: string): string {
  let out = '"';
  for (let i = 0; i < value.length; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x22 || c === 0x5c) out += '\\';
    else if (!isQdText(c)) throw bad(header, `'${name}' contains a character that cannot be quoted`);
    out += value[i];
  }
  return out + '"';
}

function token(header: string, name: string, value: string): string {
  if (!isToken(value)) throw bad(header, `'${name}' must be a token, got '${value}'`);
  return value;
}

function appendExtra(header: string, parts: string[], extra: Record<string, string> | undefined): void {
  if (extra === undefined) return;
  for (const name of Object.keys(extra)) {
    const value = extra[name]!;
    token(header, 'parameter name', name);
    parts.push(`${name}=${isToken(value) ? value : quote(header, name, value)}`);
  }
}

/**
 * Formats a `WWW-Authenticate` value: `Digest realm="…", nonce="…", qop="auth"`, then `opaque`,
 * `stale=true` (only when true), `algorithm` and any extra parameters (as a token when the value is one,
 * else quoted). Throws `MSRP_ERR_BAD_HEADER_VALUE` for values a header cannot carry.
 */
export function formatDigestChallenge(c: DigestChallengeInit): string {
  const H = 'WWW-Authenticate';
  const parts = [`realm=${quote(H, 'realm', c.realm)}`, `nonce=${quote(H, 'nonce', c.nonce)}`];
  if (c.qop !== undefined) {
    const qop = typeof c.qop === 'string' ? c.qop : c.qop.join(',');
    // RFC 4976 §7: qop-options = "qop=" DQUOTE qop-list DQUOTE.
    parts.push(`qop=${quote(H, 'qop', qop)}`);
  }
  if (c.opaque !== undefined) parts.push(`opaque=${quote(H, 'opaque', c.opaque)}`);
  if (c.stale === true) parts.push('stale=true');
  if (c.algorithm !== undefined) parts.push(`algorithm=${token(H, 'algorithm', c.algorithm)}`);
  appendExtra(H, parts, c.extra);
  return `Digest ${parts.join(', ')}`;
}

/**
 * Formats an `Authorization` value in the order of the digest's E2.3: username, realm, nonce, uri,
 * response, qop, cnonce, nc, then algorithm, opaque and extras. `qop`, `nc` and `algorithm` are
 * tokens, the rest quoted (RFC 4976 §7; `uri` always quoted, digest §8 row 5).
 */
export function formatDigestCredentials(c: DigestCredentials): string {
  const H = 'Authorization';
  const parts = [
    `username=${quote(H, 'username', c.username)}`,
    `realm=${quote(H, 'realm', c.realm)}`,
    `nonce=${quote(H, 'nonce', c.nonce)}`,
    `uri=${quote(H, 'uri', c.uri)}`,
    `response=${quote(H, 'response', c.response)}`,
  ];
  if (c.qop !== undefined) parts.push(`qop=${token(H, 'qop', c.qop)}`);
  if (c.cnonce !== undefined) parts.push(`cnonce=${quote(H, 'cnonce', c.cnonce)}`);
  if (c.nc !== undefined) parts.push(`nc=${token(H, 'nc', c.nc)}`);
  if (c.algorithm !== undefined) parts.push(`algorithm=${token(H, 'algorithm', c.algorithm)}`);
  if (c.opaque !== undefined) parts.push(`opaque=${quote(H, 'opaque', c.opaque)}`);
  appendExtra(H, parts, c.extra);
  return `Digest ${parts.join(', ')}`;
}

/**
 * Formats an `Authentication-Info` value in the order of the digest's E2.4: nextnonce (if any), qop,
 * rspauth, cnonce, nc, then extras; items joined with `, ` (digest §8 row 4).
 */
export function formatAuthenticationInfo(a: AuthenticationInfoInit): string {
  const H = 'Authentication-Info';
  const parts: string[] = [];
  if (a.nextnonce !== undefined) parts.push(`nextnonce=${quote(H, 'nextnonce', a.nextnonce)}`);
  parts.push(
    `qop=${token(H, 'qop', a.qop)}`,
    `rspauth=${quote(H, 'rspauth', a.rspauth)}`,
    `cnonce=${quote(H, 'cnonce', a.cnonce)}`,
    `nc=${token(H, 'nc', a.nc)}`,
  );
  appendExtra(H, parts, a.extra);
  return parts.join(', ');
}
