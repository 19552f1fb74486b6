/**
 * Message/CPIM (RFC 3862): a parser for the head of a CPIM body (message headers, blank line, encapsulated
 * MIME headers, blank line) and a serializer. The relay keeps only the first bytes of a message, so the
 * parser works on a prefix and answers `'incomplete'` until both header blocks are there. Header names
 * resolve to `{ ns, local }` through the message's `NS` declarations, so `foo.Message-ID` with
 * `NS: foo <urn:ietf:params:imdn>` is found by the namespace URN whatever the prefix. Malformed heads throw
 * an `MsrpError` with code `MSRP_ERR_BAD_HEADER_VALUE`; the body itself is never touched.
 */
import { isAscii } from 'node:buffer';
import { CR, LF } from '../constants.js';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { equalsIgnoringAsciiCase } from '../msrp/ascii.js';

/** The default namespace of unprefixed header names: the core CPIM headers (RFC 3862 §§3.4, 7.2). */
export const CPIM_CORE_NS = 'urn:ietf:params:cpim-headers:';

/** Options of {@link parseCpimHead}. */
export interface CpimParseOptions {
  /**
   * Accept what real peers send: bare LF line ends, header names, prefixes and namespace URIs matched
   * case-insensitively, missing or extra white space around values, raw control characters, bad UTF-8,
   * repeated single-use headers and unparsable `NS` lines (ignored). Default false (strict RFC 3862).
   */
  lenient?: boolean;
}

/** One CPIM message header, in wire order. */
export interface CpimHeader {
  /** The name as on the wire, prefix included (`imdn.Message-ID`). */
  name: string;
  /** The namespace URI the prefix (or the default namespace) resolved to; null for an undeclared prefix. */
  ns: string | null;
  /** The name without its prefix (`Message-ID`). */
  local: string;
  /** Parameters between the colon and the value (`Subject:;lang=fr Bonjour` → `[['lang', 'fr']]`). */
  params: Array<[string, string]>;
  /** The value with its escapes decoded (RFC 3862 §2.3). */
  value: string;
  /** The value as on the wire (UTF-8 decoded, escapes kept), for byte-exact echoing. */
  rawValue: string;
}

/** A parsed CPIM head: the message headers, the encapsulated MIME headers and where the content starts. */
export class CpimHead {
  /** Message headers in wire order (NS lines included). */
  readonly headers: CpimHeader[];
  /** Encapsulated MIME headers `[name, value]` in wire order; names match case-insensitively. */
  readonly contentHeaders: Array<[string, string]>;
  /** Offset in the parsed buffer of the first octet of the encapsulated content. */
  readonly bodyOffset: number;
  /** Whether the head was parsed (and is matched) leniently. */
  readonly lenient: boolean;
  /** Per header: its namespace in the form lookups compare (built on first lookup). */
  private nsKeys: Array<string | null> | null = null;

  constructor(
    headers: CpimHeader[],
    contentHeaders: Array<[string, string]>,
    bodyOffset: number,
    lenient: boolean,
  ) {
    this.headers = headers;
    this.contentHeaders = contentHeaders;
    this.bodyOffset = bodyOffset;
    this.lenient = lenient;
  }

  /** The first header named `local` in namespace `ns`, or undefined. */
  get(ns: string, local: string): CpimHeader | undefined {
    const i = this.indexOf(ns, local, 0);
    return i === -1 ? undefined : this.headers[i];
  }

  /** Every header named `local` in namespace `ns`, in wire order. */
  getAll(ns: string, local: string): CpimHeader[] {
    const out: CpimHeader[] = [];
    for (let i = this.indexOf(ns, local, 0); i !== -1; i = this.indexOf(ns, local, i + 1)) {
      out.push(this.headers[i]!);
    }
    return out;
  }

  /** The value of the first encapsulated MIME header called `name` (case-insensitive), or undefined. */
  contentHeader(name: string): string | undefined {
    for (const [n, v] of this.contentHeaders) if (equalsIgnoringAsciiCase(n, name)) return v;
    return undefined;
  }

  /** Index in {@link headers} of the first header at or after `from` named `local` in namespace `ns`; -1 when none. */
  indexOf(ns: string, local: string, from = 0): number {
    if (this.nsKeys === null) {
      // Normalised once per head, not once per header per lookup: reports look up a dozen names.
      // Headers of one namespace share its URI string: each is normalised once.
      let lastNs: string | null = null;
      let lastKey: string | null = null;
      this.nsKeys = this.headers.map((h) => {
        if (h.ns !== lastNs) {
          lastNs = h.ns;
          lastKey = h.ns === null ? null : normalizeNs(h.ns, this.lenient);
        }
        return lastKey;
      });
    }
    const nsKey = normalizeNs(ns, this.lenient);
    const nsKeys = this.nsKeys;
    const headers = this.headers;
    for (let i = from; i < nsKeys.length; i++) {
      if (nsKeys[i] !== nsKey) continue;
      // Header names are NAMECHARs, all ASCII (NAME_RE): ASCII case folding is the lenient comparison.
      const name = headers[i]!.local;
      if (this.lenient ? equalsIgnoringAsciiCase(name, local) : name === local) return i;
    }
    return -1;
  }
}

/** A header to serialize: `[name, value]` with `value` unescaped, or with options (see {@link formatCpim}). */
export type CpimOutHeader =
  [name: string, value: string] | [name: string, value: string, options: CpimOutHeaderOptions];

/** How {@link formatCpim} writes one header. */
export interface CpimOutHeaderOptions {
  /** The value is already in wire form (e.g. a `rawValue` echoed from a parsed head): only CTLs are escaped. */
  raw?: boolean;
  /** Parameters written between the colon and the SP (`Subject:;lang=fr Bonjour`). */
  params?: Array<[string, string]>;
}

/** A CPIM message to serialize. */
export interface CpimMessage {
  /** Message headers, in order. */
  headers: CpimOutHeader[];
  /** Encapsulated MIME headers, in order (at least Content-Type). */
  contentHeaders: Array<[string, string]>;
  /** The encapsulated content; a string is written as UTF-8. */
  body: Buffer | string;
}

/** A display name and URI from a `From`, `To`, `cc` or IMDN route header. */
export interface NameAddr {
  /** The Formal-name, unquoted and unescaped; absent when the value is only `<URI>`. */
  displayName?: string;
  /** The URI between `<` and `>`. */
  uri: string;
}

// RFC 3862 §3.6: NAMECHAR = %x21 / %x23-27 / %x2a-2b / %x2d / %x5e-60 / %x7c / %x7e / ALPHA / DIGIT
const NAMECHAR = "!#$%&'*+\\-^_`|~A-Za-z0-9";
const NAME_RE = new RegExp(`^(?:([${NAMECHAR}]+)\\.)?([${NAMECHAR}]+)$`);
const PARAM_NAME_RE = new RegExp(`^[${NAMECHAR}]+$`);
/** TOKENCHAR = NAMECHAR / "." / UCS-high. */
const TOKEN_RE = new RegExp(`^[${NAMECHAR}.\\u0080-\\u{10FFFF}]+$`, 'u');
/** Formal-name = 1*( Token SP ): tokens separated by single spaces. */
const TOKEN_WORDS_RE = new RegExp(
  `^[${NAMECHAR}.\\u0080-\\u{10FFFF}]+(?: [${NAMECHAR}.\\u0080-\\u{10FFFF}]+)*$`,
  'u',
);
/** RFC 5322 §3.6.8: a MIME header name is printable US-ASCII except the colon. */
const MIME_NAME_RE = /^[!-9;-~]+$/;
const HTAB = 0x09;
const SP = 0x20;
// Heads are decoded line by line. Strict mode keeps a U+FEFF that starts a line (ignoreBOM), so it is
// refused as part of a name (review); lenient mode, the relay's, drops it as it always did (a folded
// line after it is still a continuation: second review).
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const LENIENT_UTF8 = new TextDecoder('utf-8');
/** Strict mode's MIME header lines: decoded leniently, a leading U+FEFF kept. */
const MIME_STRICT_UTF8 = new TextDecoder('utf-8', { ignoreBOM: true });

/** The error of a malformed head; the offending text is quoted (and cut) so logs stay one line. */
function badHead(reason: string, text?: string): MsrpError {
  const shown =
    text === undefined ? '' : `: ${JSON.stringify(text.length > 100 ? `${text.slice(0, 100)}...` : text)}`;
  return createError(ErrorCodes.BAD_HEADER_VALUE, `invalid CPIM head, ${reason}${shown}`, 400);
}

const LOWER_CASE = new Map<string, string>();

/**
 * `s.toLowerCase()`, remembered for the few hundred namespace URIs a relay meets (the same ones in every
 * message): looking one up costs no new string.
 */
function lowerCase(s: string): string {
  let lower = LOWER_CASE.get(s);
  if (lower === undefined) {
    lower = s.toLowerCase();
    if (LOWER_CASE.size < 512 && s.length <= 128) LOWER_CASE.set(s, lower);
  }
  return lower;
}

/**
 * Namespace URIs compare on their URN form: scheme and NID case-insensitively (RFC 8141 §3.1), the rest
 * exactly; lenient mode compares the whole URI case-insensitively.
 */
function normalizeNs(uri: string, lenient: boolean): string {
  if (lenient) return lowerCase(uri);
  const m = /^(urn:[^:]*)(.*)$/i.exec(uri);
  return m ? m[1].toLowerCase() + m[2] : uri;
}

/**
 * Decodes the escapes of a CPIM header value. RFC 3862 §2.3: `\uXXXX`, `\b`, `\t`, `\n`, `\r`, `\"`, `\'`,
 * `\\`; an unknown escape (or `\u` without four hex digits) yields the character after the backslash, and a
 * lone trailing backslash is dropped.
 */
export function unescapeCpimValue(raw: string): string {
  if (!raw.includes('\\')) return raw;
  let out = '';
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i];
    if (c !== '\\') {
      out += c;
      continue;
    }
    if (i + 1 >= raw.length) break; // lone trailing backslash: ignored
    const e = raw[++i];
    switch (e) {
      case 'b':
        out += '\b';
        break;
      case 't':
        out += '\t';
        break;
      case 'n':
        out += '\n';
        break;
      case 'r':
        out += '\r';
        break;
      case 'u': {
        const hex = raw.slice(i + 1, i + 5);
        if (/^[0-9A-Fa-f]{4}$/.test(hex)) {
          out += String.fromCharCode(parseInt(hex, 16));
          i += 4;
        } else {
          out += 'u';
        }
        break;
      }
      default:
        out += e; // \" \' \\ and unknown escapes: the character itself
    }
  }
  return out;
}

/**
 * Escapes a header value for the wire. RFC 3862 §2.3.1: backslash, BS, TAB, LF and CR are always written
 * `\\ \b \t \n \r`, other control characters `\uXXXX`, and nothing else is escaped (quotes are escaped only
 * inside quoted strings, see {@link formatNameAddr}).
 */
export function escapeCpimValue(value: string): string {
  return escapeChars(value, true, false);
}

/**
 * Escapes a header value that is already in wire form (e.g. a `rawValue` echoed from a parsed head): only
 * control characters, as `formatCpim` does with `{ raw: true }`.
 */
export function escapeCpimRawValue(value: string): string {
  return escapeChars(value, false, false);
}

/** True for the control characters RFC 3862 §§2.2, 2.3 allow only escaped: 0x00-0x1F and 0x7F. */
function isControl(c: number): boolean {
  return c < 0x20 || c === 0x7f;
}

/** True when `s` holds a control character. */
function hasControl(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (isControl(s.charCodeAt(i))) return true;
  return false;
}

/** Escapes control characters, plus the backslash when `backslash` and `"` when `quote`. */
function escapeChars(s: string, backslash: boolean, quote: boolean): string {
  let out = '';
  let from = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (isControl(c) || (backslash && c === 0x5c) || (quote && c === 0x22)) {
      out += s.slice(from, i) + escapeChar(s[i]);
      from = i + 1;
    }
  }
  return from === 0 ? s : out + s.slice(from);
}

function escapeChar(c: string): string {
  switch (c) {
    case '"':
      return '\\"';
    case '\\':
      return '\\\\';
    case '\b':
      return '\\b';
    case '\t':
      return '\\t';
    case '\n':
      return '\\n';
    case '\r':
      return '\\r';
    default:
      return `\\u${c.charCodeAt(0).toString(16).toUpperCase().padStart(4, '0')}`;
  }
}

/** A quoted String: `"` and `\` escaped as `\"` and `\\`, controls as in {@link escapeCpimValue}. */
function quoteString(s: string): string {
  return `"${escapeChars(s, true, true)}"`;
}

/**
 * Parses a `[ Formal-name ] "<" URI ">"` value (From, To, cc, Original-To, IMDN routes) from its wire form
 * (`rawValue`), where a quoted display name may hold `\"`. Returns null when the value has no `<URI>`.
 */
export function parseNameAddr(rawValue: string): NameAddr | null {
  const s = rawValue.trim();
  if (!s.endsWith('>')) return null;
  let lt: number;
  let displayName: string | undefined;
  if (s.startsWith('"')) {
    let i = 1;
    while (i < s.length && s[i] !== '"') i += s[i] === '\\' ? 2 : 1;
    if (i >= s.length) return null;
    displayName = unescapeCpimValue(s.slice(1, i));
    lt = s.indexOf('<', i + 1);
    // RFC 3862 §3.6: no SP between a quoted Formal-name and "<"; one is accepted, nothing else.
    if (lt === -1 || s.slice(i + 1, lt).trim() !== '') return null;
  } else {
    lt = s.lastIndexOf('<');
    if (lt === -1) return null;
    const name = s.slice(0, lt).trim();
    if (name !== '') displayName = unescapeCpimValue(name);
  }
  const uri = s.slice(lt + 1, -1);
  if (uri === '' || uri.includes('<') || uri.includes('>')) return null;
  return displayName === undefined ? { uri } : { displayName, uri };
}

/**
 * Writes a `[ Formal-name ] "<" URI ">"` value in wire form: the display name as Tokens when it is made of
 * tokens, as a quoted String otherwise. Pass the result to {@link formatCpim} with `{ raw: true }`.
 */
export function formatNameAddr(addr: NameAddr): string {
  const name = addr.displayName;
  if (name === undefined || name === '') return `<${addr.uri}>`;
  return `${TOKEN_WORDS_RE.test(name) ? name : quoteString(name)} <${addr.uri}>`;
}

/** Line bounds of each block as flat `[start0, end0, start1, end1, ...]`, ends excluding the terminator. */
interface Split {
  message: number[];
  content: number[];
  bodyOffset: number;
}

/**
 * Finds the two blank lines that end the message headers and the MIME headers; null when `buf` ends first.
 * Strict mode requires CRLF and rejects a bare CR or LF as soon as it is seen.
 */
function splitHead(buf: Buffer, lenient: boolean): Split | null {
  const message: number[] = [];
  const content: number[] = [];
  let block = message;
  let pos = 0;
  while (true) {
    const lf = buf.indexOf(LF, pos);
    if (lf === -1) {
      if (!lenient) checkNoBareCr(buf, pos, buf.length - 1);
      return null;
    }
    let end = lf;
    if (lf > pos && buf[lf - 1] === CR) end = lf - 1;
    else if (!lenient) throw badHead('a line ends with a bare LF', buf.toString('latin1', pos, lf));
    if (!lenient) checkNoBareCr(buf, pos, end);
    if (end === pos) {
      if (block === content) return { message, content, bodyOffset: lf + 1 };
      block = content;
    } else {
      block.push(pos, end);
    }
    pos = lf + 1;
  }
}

/** RFC 3862 §2.2: CR appears only as part of a CRLF line end. `to` is excluded (it may precede LF). */
function checkNoBareCr(buf: Buffer, from: number, to: number): void {
  const cr = buf.indexOf(CR, from);
  if (cr !== -1 && cr < to) throw badHead('a line holds a bare CR', buf.toString('latin1', from, to));
}

function decodeLine(buf: Buffer, start: number, end: number, lenient: boolean, ascii: boolean): string {
  if (ascii) return buf.toString('latin1', start, end);
  const bytes = buf.subarray(start, end);
  if (lenient) return LENIENT_UTF8.decode(bytes);
  try {
    return STRICT_UTF8.decode(bytes);
  } catch {
    throw badHead('a header line is not valid UTF-8', buf.toString('latin1', start, end));
  }
}

/**
 * Parses the head of a message/cpim body from the first bytes of it. Returns `'incomplete'` while the
 * message headers, the blank line, the MIME headers and the second blank line are not all in `buf`; throws
 * an `MsrpError` (`MSRP_ERR_BAD_HEADER_VALUE`, 400) for a malformed head.
 */
export function parseCpimHead(buf: Buffer, opts: CpimParseOptions = {}): CpimHead | 'incomplete' {
  const lenient = opts.lenient === true;
  const split = splitHead(buf, lenient);
  if (split === null) return 'incomplete';
  // Most heads are plain ASCII: one check, then each line is read without a UTF-8 decoder.
  const ascii = isAscii(buf.subarray(0, split.bodyOffset));
  const state: NsState = { prefixes: new Map(), defaultNs: CPIM_CORE_NS, lenient, seen: null };
  const headers: CpimHeader[] = [];
  // Headers that took continuation lines: their value is decoded once all of it is read. Decoding it again
  // at each line cost the square of the lines (an audit measured 62 ms of CPU for an 8 KiB head).
  const folded: CpimHeader[] = [];
  const lines = split.message;
  for (let n = 0; n < lines.length; n += 2) {
    const start = lines[n]!;
    const end = lines[n + 1]!;
    const line = decodeLine(buf, start, end, lenient, ascii);
    if (line.charCodeAt(0) === SP || line.charCodeAt(0) === HTAB) {
      // RFC 3862 §2.2: a whole header on one line, no folding. Lenient mode unfolds onto the previous header.
      const prev = headers[headers.length - 1];
      if (!lenient || prev === undefined) throw badHead('a header line starts with white space', line);
      prev.rawValue += ` ${line.trim()}`;
      if (folded[folded.length - 1] !== prev) folded.push(prev);
      continue;
    }
    headers.push(parseHeaderLine(line, state));
  }
  for (const h of folded) h.value = unescapeCpimValue(h.rawValue);
  const contentHeaders: Array<[string, string]> = [];
  const content = split.content;
  for (let n = 0; n < content.length; n += 2) {
    const start = content[n]!;
    const end = content[n + 1]!;
    const line = ascii
      ? buf.toString('latin1', start, end)
      : (lenient ? LENIENT_UTF8 : MIME_STRICT_UTF8).decode(buf.subarray(start, end));
    const last = contentHeaders[contentHeaders.length - 1];
    if (line.charCodeAt(0) === SP || line.charCodeAt(0) === HTAB) {
      // MIME headers may fold (RFC 5322 §2.2.3): a continuation line joins the previous value.
      if (last === undefined) throw badHead('the MIME header block starts with white space', line);
      last[1] = `${last[1]} ${line.trim()}`;
      continue;
    }
    const colon = line.indexOf(':');
    const name = colon === -1 ? '' : line.slice(0, colon);
    if (!MIME_NAME_RE.test(lenient ? name.trim() : name)) {
      throw badHead('a MIME header line has no valid name', line);
    }
    contentHeaders.push([lenient ? name.trim() : name, line.slice(colon + 1).trim()]);
  }
  return new CpimHead(headers, contentHeaders, split.bodyOffset, lenient);
}

/** Namespace bindings in force while the header block is read top to bottom. */
interface NsState {
  prefixes: Map<string, string>;
  defaultNs: string;
  lenient: boolean;
  /** Single-use core headers already seen (strict mode rejects a repeat); created on first use. */
  seen: Set<string> | null;
}

/** The `params` of every header without parameters (shared, never written to). */
const NO_PARAMS: Array<[string, string]> = Object.freeze([]) as unknown as Array<[string, string]>;

/** Core headers that may appear at most once (RFC 3862 §§4.1, 4.4, 4.7; Subject is once per language, §4.5). */
const SINGLE_USE = new Set(['From', 'DateTime', 'Require']);

function parseHeaderLine(line: string, st: NsState): CpimHeader {
  const colon = line.indexOf(':');
  if (colon === -1) throw badHead('a header line has no colon', line);
  const name = st.lenient ? line.slice(0, colon).trim() : line.slice(0, colon);
  if (!NAME_RE.test(name)) throw badHead('a header name is not [prefix.]Name', line);
  // NAMECHAR has no ".", so the one dot NAME_RE allows separates the prefix.
  const dot = name.indexOf('.');
  const prefix = dot === -1 ? undefined : name.slice(0, dot);
  const local = dot === -1 ? name : name.slice(dot + 1);
  let i = colon + 1;
  let params = NO_PARAMS;
  if (line[i] === ';') {
    params = [];
    while (line[i] === ';') i = parseParam(line, i + 1, params, st.lenient);
  }
  let rawValue: string;
  if (i === line.length) {
    rawValue = ''; // `Name:` with nothing after it: an empty value, accepted in both modes
  } else if (line.charCodeAt(i) === SP) {
    rawValue = line.slice(i + 1);
    if (!st.lenient) {
      // RFC 3862 §2.2: exactly one SP after the colon, no white space at the end of a line.
      if (/^[ \t]/.test(rawValue)) throw badHead('more than one SP after the colon', line);
      if (/[ \t]$/.test(rawValue)) throw badHead('trailing white space', line);
    }
  } else if (st.lenient) {
    rawValue = line.slice(i);
  } else {
    throw badHead('the colon is not followed by SP', line);
  }
  if (st.lenient) rawValue = rawValue.trim();
  else if (hasControl(rawValue)) throw badHead('a value holds an unescaped control character', line);

  let ns: string | null;
  if (prefix === undefined) ns = st.defaultNs;
  else ns = lookupPrefix(st, prefix);
  const header: CpimHeader = { name, ns, local, params, value: unescapeCpimValue(rawValue), rawValue };
  if (ns !== null && normalizeNs(ns, st.lenient) === normalizeNs(CPIM_CORE_NS, st.lenient)) {
    const key = st.lenient ? local.toLowerCase() : local;
    if (key === (st.lenient ? 'ns' : 'NS')) declareNs(st, header, line);
    if (!st.lenient) checkSingleUse(st, header, line);
  }
  return header;
}

/** Resolves a prefix to its URI; RFC 3862 §3.4: only prefixes declared by an earlier NS line are bound. */
function lookupPrefix(st: NsState, prefix: string): string | null {
  if (!st.lenient) return st.prefixes.get(prefix) ?? null;
  return st.prefixes.get(prefix.toLowerCase()) ?? null;
}

const NS_RE = new RegExp(`^(?:([${NAMECHAR}]+) ?)?<([^<>#\\s]+)>$`);
const NS_LENIENT_RE = new RegExp(`^(?:([${NAMECHAR}]+)[ \\t]*)?<([^<>#\\s]+)>$`);

/** Reads `NS: [prefix] <URI>`; the grammar has no SP before `<`, the RFC examples have one: accept both. */
function declareNs(st: NsState, header: CpimHeader, line: string): void {
  const m = (st.lenient ? NS_LENIENT_RE : NS_RE).exec(header.value);
  if (m === null) {
    if (st.lenient) return; // lenient: an unreadable NS binds nothing
    throw badHead('an NS value is not [prefix] <URI> (without fragment)', line);
  }
  const [, prefix, uri] = m;
  if (prefix === undefined) st.defaultNs = uri;
  else st.prefixes.set(st.lenient ? prefix.toLowerCase() : prefix, uri);
}

function checkSingleUse(st: NsState, header: CpimHeader, line: string): void {
  let key: string | undefined;
  if (SINGLE_USE.has(header.local)) key = header.local;
  else if (header.local === 'Subject') {
    const lang = header.params.find(([n]) => n.toLowerCase() === 'lang');
    key = `Subject;${lang === undefined ? '' : lang[1].toLowerCase()}`;
  }
  if (key === undefined) return;
  st.seen ??= new Set();
  if (st.seen.has(key)) throw badHead(`${header.local} appears more than once`, line);
  st.seen.add(key);
}

/** Parses one `Param-name "=" Param-value` starting at `i` (after the `;`); returns the index after it. */
function parseParam(line: string, i: number, out: Array<[string, string]>, lenient: boolean): number {
  const eq = line.indexOf('=', i);
  const name = eq === -1 ? '' : line.slice(i, eq);
  if (!PARAM_NAME_RE.test(name)) throw badHead('a header parameter is not name=value', line);
  let j = eq + 1;
  let value: string;
  if (line[j] === '"') {
    const start = ++j;
    while (j < line.length && line[j] !== '"') j += line[j] === '\\' ? 2 : 1;
    if (j >= line.length) throw badHead('a quoted parameter value is not closed', line);
    value = unescapeCpimValue(line.slice(start, j));
    j++;
  } else {
    const start = j;
    while (j < line.length && line[j] !== ';' && line[j] !== ' ') j++;
    value = line.slice(start, j);
    if (!TOKEN_RE.test(value) && !(lenient && value === '')) {
      throw badHead('a header parameter value is not a Token, Number or String', line);
    }
  }
  out.push([name, value]);
  return j;
}

/**
 * Serializes a CPIM message: message headers, blank line, MIME headers, blank line, content, all lines
 * CRLF-terminated and nothing after the content. Header values are escaped with {@link escapeCpimValue}
 * unless `raw`; names and parameters are validated and an `MsrpError` is thrown for ones that cannot be
 * written.
 */
export function formatCpim(msg: CpimMessage): Buffer {
  let head = '';
  for (const [name, value, options] of msg.headers) {
    if (!NAME_RE.test(name)) throw badHead('cannot write header name', name);
    let params = '';
    for (const [pn, pv] of options?.params ?? []) {
      if (!PARAM_NAME_RE.test(pn)) throw badHead('cannot write parameter name', pn);
      params += `;${pn}=${TOKEN_RE.test(pv) ? pv : quoteString(pv)}`;
    }
    const wire = escapeChars(value, options?.raw !== true, false);
    head += `${name}:${params} ${wire}\r\n`;
  }
  head += '\r\n';
  for (const [name, value] of msg.contentHeaders) {
    if (!MIME_NAME_RE.test(name)) throw badHead('cannot write MIME header name', name);
    if (/[\r\n]/.test(value)) throw badHead('a MIME header value holds CR or LF', value);
    head += `${name}: ${value}\r\n`;
  }
  head += '\r\n';
  if (typeof msg.body === 'string') return Buffer.from(head + msg.body, 'utf8');
  return Buffer.concat([Buffer.from(head, 'utf8'), msg.body]);
}
