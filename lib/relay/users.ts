/**
 * Where the relay's Digest users come from: the {@link UserStore} interface the authenticator consults,
 * and {@link FileUserStore}, which reads a users file (or a plain object) once and can be reloaded.
 */
import { readFileSync } from 'node:fs';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';
import { computeHA1 } from './digest-auth.js';

/** One user's secret, reduced to what Digest needs. */
export interface UserEntry {
  /** HA1 = MD5(username ":" realm ":" password) in lower-case hex for `realm`. */
  ha1(realm: string): string;
}

/** Looks users up by name (exact, case-sensitive match). */
export interface UserStore {
  /** The user's entry, or undefined when no such user exists. */
  lookup(username: string): UserEntry | undefined;
}

const HA1_RE = /^[0-9a-f]{32}$/;
const PLAIN_PREFIX = 'plain:';
const FORMS = "write 'user:password', 'user:<32 lower-case hex HA1>' or 'user:plain:<password>'";

class PasswordEntry implements UserEntry {
  private cachedRealm: string | undefined;
  private cachedHa1 = '';

  constructor(
    private readonly username: string,
    private readonly password: string,
  ) {}

  ha1(realm: string): string {
    if (realm !== this.cachedRealm) {
      this.cachedHa1 = computeHA1(this.username, realm, this.password);
      this.cachedRealm = realm;
    }
    return this.cachedHa1;
  }
}

class Ha1Entry implements UserEntry {
  constructor(private readonly value: string) {}

  ha1(): string {
    return this.value;
  }
}

/**
 * Interprets the part after `user:`. Returns the entry, or a message saying what is wrong with it.
 * Never puts the secret into the message.
 */
function entryFor(username: string, value: string): UserEntry | string {
  if (value.startsWith(PLAIN_PREFIX)) {
    const password = value.slice(PLAIN_PREFIX.length);
    return password.length === 0
      ? `empty password for user '${username}'`
      : new PasswordEntry(username, password);
  }
  if (value.length === 0) return `empty password for user '${username}'`;
  if (HA1_RE.test(value)) return new Ha1Entry(value);
  return new PasswordEntry(username, value);
}

/**
 * What is wrong with `username` as a users-file name (empty, white space, control characters, or `:`,
 * which ends the name in a line), or undefined when it is fine.
 */
export function userNameProblem(username: string): string | undefined {
  return (
    checkUsername(username) ?? (username.includes(':') ? `user name '${username}' contains ':'` : undefined)
  );
}

function checkUsername(username: string): string | undefined {
  if (username.length === 0) return 'empty user name';
  // eslint-disable-next-line no-control-regex
  if (/[\s\x00-\x1f\x7f]/.test(username))
    return `user name ${JSON.stringify(username)} contains white space or a control character`;
  return undefined;
}

function configError(message: string): MsrpError {
  return createError(ErrorCodes.CONFIG, message, 0);
}

const utf8Strict = new TextDecoder('utf-8', { fatal: true });

/**
 * A user store read from a users file (or an object) into memory.
 *
 * File format, one user per line, UTF-8:
 * - `user:password` — the password is everything after the first `:` (it may contain `:`), verbatim,
 *   including any trailing white space; the user name may not contain `:`, white space or controls.
 * - `user:<HA1>` — when the value is exactly 32 lower-case hex digits it is taken as a precomputed
 *   `HA1 = MD5(user ":" realm ":" password)`, which must have been computed for the relay's realm.
 * - `user:plain:<password>` — always a plain password. This settles the ambiguity: a password that is
 *   itself 32 lower-case hex digits, or that starts with `plain:`, must be written this way.
 * - Blank lines and lines whose first non-blank character is `#` are ignored; CRLF line ends are fine.
 *
 * A bad line throws `MSRP_ERR_CONFIG` with a one-line message `<file>:<line>: <problem>; <fix>`.
 */
export class FileUserStore implements UserStore {
  /** The file this store was read from, or undefined for {@link fromMap}. */
  readonly path: string | undefined;
  private readonly entries: Map<string, UserEntry>;

  private constructor(entries: Map<string, UserEntry>, path: string | undefined) {
    this.entries = entries;
    this.path = path;
  }

  /** Reads and parses a users file; throws `MSRP_ERR_CONFIG` naming the file (and line) on error. */
  static fromFile(path: string): FileUserStore {
    let bytes: Buffer;
    try {
      bytes = readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      throw configError(`${path}: cannot read users file (${code}); check the path and its permissions`);
    }
    let text: string;
    try {
      text = utf8Strict.decode(bytes);
    } catch {
      throw configError(`${path}: users file is not valid UTF-8; save it as UTF-8`);
    }
    if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
    return new FileUserStore(parseUsers(text, path), path);
  }

  /**
   * Builds a store from `{ user: value }`, each value read like the part after `user:` in a file
   * (password, HA1 or `plain:` password). Throws `MSRP_ERR_CONFIG` naming the user on error.
   */
  static fromMap(users: Readonly<Record<string, string>>): FileUserStore {
    const entries = new Map<string, UserEntry>();
    for (const [username, value] of Object.entries(users)) {
      const problem = userNameProblem(username);
      if (problem !== undefined) throw configError(`users map: ${problem}; ${FORMS}`);
      const entry = entryFor(username, value);
      if (typeof entry === 'string') throw configError(`users map: ${entry}; ${FORMS}`);
      entries.set(username, entry);
    }
    return new FileUserStore(entries, undefined);
  }

  /** Number of users. */
  get size(): number {
    return this.entries.size;
  }

  /** The entry for `username`, or undefined. */
  lookup(username: string): UserEntry | undefined {
    return this.entries.get(username);
  }

  /**
   * Reads the file again and returns a new store (this one is unchanged, so a failed reload leaves the
   * running configuration intact). A store built with {@link fromMap} returns itself.
   */
  reload(): FileUserStore {
    return this.path === undefined ? this : FileUserStore.fromFile(this.path);
  }
}

function parseUsers(text: string, file: string): Map<string, UserEntry> {
  const entries = new Map<string, UserEntry>();
  const firstLine = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    let line = lines[i]!;
    if (line.endsWith('\r')) line = line.slice(0, -1);
    const trimmed = line.trimStart();
    if (trimmed.length === 0 || trimmed.startsWith('#')) continue;
    const where = `${file}:${lineNo}`;
    const colon = line.indexOf(':');
    if (colon < 0) throw configError(`${where}: no ':' in line; ${FORMS}`);
    const username = line.slice(0, colon);
    const problem = checkUsername(username);
    if (problem !== undefined) throw configError(`${where}: ${problem}; ${FORMS}`);
    const previous = firstLine.get(username);
    if (previous !== undefined) {
      throw configError(`${where}: user '${username}' already defined on line ${previous}; keep one of them`);
    }
    const entry = entryFor(username, line.slice(colon + 1));
    if (typeof entry === 'string') throw configError(`${where}: ${entry}; ${FORMS}`);
    entries.set(username, entry);
    firstLine.set(username, lineNo);
  }
  return entries;
}
