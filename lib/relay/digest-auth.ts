/**
 * The relay's server side of HTTP Digest as profiled by RFC 4976 §5.1 / §6.3: HA1 / response / rspauth
 * arithmetic, stateless HMAC-signed nonces with nonce-count replay tracking, and an authenticator that
 * turns an `Authorization` header value into a verdict plus the `Authentication-Info` to send back.
 * No sockets: the AUTH handler calls `challenge()` and `verify()` and builds the 401 / 200 itself.
 *
 * Encodings: header values are latin1 "binary strings" (lib/msrp/message.ts) and are hashed as the
 * octets they stand for; user names, passwords and the realm from configuration are ordinary strings and
 * are hashed as UTF-8. For ASCII, the common case, the two agree.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import {
  authScheme,
  formatAuthenticationInfo,
  formatDigestChallenge,
  parseDigestCredentials,
  type DigestCredentials,
} from '../msrp/digest.js';
import type { UserStore } from './users.js';
import { ownString } from '../util/own-string.js';

// ---------------------------------------------------------------------------------------------------
// Digest arithmetic (RFC 2617 §3.2.2 with the RFC 4976 §5.1 profile)

function md5Hex(data: string, encoding: 'utf8' | 'latin1'): string {
  return createHash('md5').update(data, encoding).digest('hex');
}

/** `HA1 = MD5(username ":" realm ":" password)` as 32 lower-case hex digits; strings hashed as UTF-8. */
export function computeHA1(username: string, realm: string, password: string): string {
  return md5Hex(`${username}:${realm}:${password}`, 'utf8');
}

/** Inputs of {@link computeResponse}; all but `ha1` are header values (latin1 binary strings) as sent. */
export interface DigestResponseInput {
  /** HA1 in hex. */
  ha1: string;
  nonce: string;
  /** nonce-count exactly as sent (8 hex digits). */
  nc: string;
  cnonce: string;
  /** message-qop as sent (`auth`). */
  qop: string;
  /** digest-uri: the rightmost URI of the AUTH To-Path. */
  uri: string;
  /** Method in A2; RFC 4976 §5.1 fixes it to `AUTH` (the default). */
  method?: string;
}

function kd(ha1: string, p: Omit<DigestResponseInput, 'ha1' | 'method'>, ha2: string): string {
  return md5Hex(`${ha1}:${p.nonce}:${p.nc}:${p.cnonce}:${p.qop}:${ha2}`, 'latin1');
}

/**
 * The client's request-digest: `MD5(HA1 ":" nonce ":" nc ":" cnonce ":" qop ":" HA2)` with
 * `HA2 = MD5("AUTH:" digest-uri)` (RFC 4976 §5.1).
 */
export function computeResponse(p: DigestResponseInput): string {
  const ha2 = md5Hex(`${p.method ?? 'AUTH'}:${p.uri}`, 'latin1');
  return kd(p.ha1, p, ha2);
}

/**
 * The relay's `rspauth` for Authentication-Info: computed like the response but with
 * `HA2 = MD5(":" digest-uri)` (RFC 2617 §3.2.3, empty method).
 */
export function computeRspauth(p: Omit<DigestResponseInput, 'method'>): string {
  const ha2 = md5Hex(`:${p.uri}`, 'latin1');
  return kd(p.ha1, p, ha2);
}

// ---------------------------------------------------------------------------------------------------
// Nonces

/** Options of {@link NonceManager}. */
export interface NonceManagerOptions {
  /** HMAC-SHA256 key. Default: 32 random bytes, so nonces die with the process; pass one to survive restarts. */
  secret?: Buffer | string;
  /** Seconds a nonce stays fresh; older ones are `stale`. Default 300. */
  lifetimeSec?: number;
  /** Clock in milliseconds since the epoch; default `Date.now`. Tests inject their own. */
  now?: () => number;
  /** Nonces whose highest nonce-count is remembered (LRU); 0 turns replay tracking off. Default 10 000. */
  maxTrackedNonces?: number;
}

/** Result of {@link NonceManager.check}. */
export type NonceStatus = 'valid' | 'stale' | 'invalid';

const TS_BYTES = 6; // milliseconds, big-endian: good until the year 10889
const RANDOM_BYTES = 16;
const MAC_BYTES = 32;
const NONCE_BYTES = TS_BYTES + RANDOM_BYTES + MAC_BYTES;
const NONCE_RE = new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((NONCE_BYTES * 4) / 3)}}$`);

interface NcEntry {
  issuedAt: number;
  highestNc: number;
}

/**
 * Issues and checks stateless nonces: `base64url(timestamp ‖ random ‖ HMAC-SHA256(secret, timestamp ‖
 * random))`. A nonce whose MAC does not verify is `invalid`; one older than the lifetime is `stale`.
 *
 * Replay protection ({@link acceptNc}) remembers, per nonce, the highest nonce-count accepted, in a map
 * capped at `maxTrackedNonces` entries with least-recently-used eviction. Evicting a nonce that is still
 * fresh raises a watermark: any untracked nonce issued at or before it is refused as well, since its
 * history may have been forgotten. The client then simply retries with a fresh nonce (stale=true).
 */
export class NonceManager {
  private readonly secret: Buffer;
  private readonly lifetimeMs: number;
  private readonly now: () => number;
  private readonly maxTracked: number;
  private readonly tracked = new Map<string, NcEntry>();
  private watermark = -1;

  constructor(options: NonceManagerOptions = {}) {
    this.secret =
      options.secret === undefined
        ? randomBytes(32)
        : typeof options.secret === 'string'
          ? Buffer.from(options.secret, 'utf8')
          : options.secret;
    this.lifetimeMs = (options.lifetimeSec ?? 300) * 1000;
    this.now = options.now ?? Date.now;
    this.maxTracked = options.maxTrackedNonces ?? 10_000;
  }

  /** A fresh nonce (72 base64url characters). */
  issue(): string {
    const buf = Buffer.allocUnsafe(NONCE_BYTES);
    buf.writeUIntBE(Math.max(0, Math.floor(this.now())), 0, TS_BYTES);
    randomBytes(RANDOM_BYTES).copy(buf, TS_BYTES);
    this.mac(buf).copy(buf, TS_BYTES + RANDOM_BYTES);
    return buf.toString('base64url');
  }

  /** `invalid` when `nonce` was not issued with this secret, `stale` when older than the lifetime. */
  check(nonce: string): NonceStatus {
    const issuedAt = this.verifiedTimestamp(nonce);
    if (issuedAt === undefined) return 'invalid';
    const age = this.now() - issuedAt;
    // A clock stepped backwards makes `age` negative; bound that side by the lifetime too.
    return Math.abs(age) > this.lifetimeMs ? 'stale' : 'valid';
  }

  /**
   * Records nonce-count `nc` for a nonce that {@link check} found valid and whose response verified.
   * Returns false when `nc` is not greater than the highest already accepted for this nonce (a replay)
   * or when the nonce's history may have been evicted. Always true when tracking is off.
   */
  acceptNc(nonce: string, nc: number): boolean {
    if (this.maxTracked <= 0) return true;
    const entry = this.tracked.get(nonce);
    if (entry !== undefined) {
      if (nc <= entry.highestNc) return false;
      entry.highestNc = nc;
      this.tracked.delete(nonce); // re-insert: most recently used goes last
      this.tracked.set(nonce, entry);
      return true;
    }
    const issuedAt = this.verifiedTimestamp(nonce);
    if (issuedAt === undefined || issuedAt <= this.watermark) return false;
    // A copy: the parsed nonce is a slice of the Authorization header, which it would keep alive with the
    // entry however long the rest of the header (memory audit: 15 KiB an entry, 10,000 entries).
    this.tracked.set(ownString(nonce), { issuedAt, highestNc: nc });
    this.evict();
    return true;
  }

  /** Number of nonces whose nonce-count is currently tracked. */
  get trackedCount(): number {
    return this.tracked.size;
  }

  private evict(): void {
    const now = this.now();
    for (const [key, e] of this.tracked) {
      const expired = now - e.issuedAt > this.lifetimeMs;
      if (!expired && this.tracked.size <= this.maxTracked) break;
      this.tracked.delete(key);
      if (!expired && e.issuedAt > this.watermark) this.watermark = e.issuedAt;
    }
  }

  private mac(buf: Buffer): Buffer {
    return createHmac('sha256', this.secret)
      .update(buf.subarray(0, TS_BYTES + RANDOM_BYTES))
      .digest();
  }

  private verifiedTimestamp(nonce: string): number | undefined {
    if (!NONCE_RE.test(nonce)) return undefined;
    const buf = Buffer.from(nonce, 'base64url');
    if (buf.length !== NONCE_BYTES) return undefined;
    const mac = this.mac(buf);
    if (!timingSafeEqual(mac, buf.subarray(TS_BYTES + RANDOM_BYTES))) return undefined;
    return buf.readUIntBE(0, TS_BYTES);
  }
}

// ---------------------------------------------------------------------------------------------------
// Authenticator

/** Options of {@link DigestAuthenticator}. */
export interface DigestAuthenticatorOptions {
  /** The realm put in challenges and required in credentials. */
  realm: string;
  /** Where users and their HA1 come from. */
  users: UserStore;
  /** Nonce lifetime in seconds (default 300). */
  nonceLifetimeSec?: number;
  /** HMAC key for nonces (default random per process). */
  secret?: Buffer | string;
  /** Clock in milliseconds (default `Date.now`). */
  now?: () => number;
  /** Nonces tracked for nc replay protection (default 10 000; 0 turns it off). */
  maxTrackedNonces?: number;
}

/**
 * Why {@link DigestAuthenticator.verify} refused credentials. `bad-nonce`: the nonce was not issued by
 * this relay (tampered, or from before a restart with another secret); `replay`: the nonce-count did
 * not increase; `locked-out`: the caller's `isLockedOut` said so, and the credentials were not checked.
 */
export type DigestFailureReason =
  | 'bad-syntax'
  | 'unknown-user'
  | 'bad-response'
  | 'stale'
  | 'bad-realm'
  | 'bad-uri'
  | 'unsupported'
  | 'bad-nonce'
  | 'replay'
  | 'locked-out';

/**
 * Verdict of {@link DigestAuthenticator.verify}. On failure answer 401 with `challenge(stale)`;
 * `stale` is true only when the response itself verified (RFC 2617 §3.2.1), so the client may retry
 * with the new nonce without asking its user again, and the attempt should not count as a failure.
 * A failure names the user the credentials were for once they parsed (decoded from UTF-8).
 */
export type DigestVerifyResult =
  | { ok: true; username: string; authenticationInfo: string }
  | { ok: false; reason: DigestFailureReason; stale: boolean; username?: string };

const utf8Strict = new TextDecoder('utf-8', { fatal: true });
const DUMMY_HA1 = '0'.repeat(32);

function fail(reason: DigestFailureReason, stale = false, username?: string): DigestVerifyResult {
  return username === undefined ? { ok: false, reason, stale } : { ok: false, reason, stale, username };
}

/** Trims SP and HTAB only (not the latin1 NBSP that `String.prototype.trim` would also remove). */
function trimOws(s: string): string {
  let start = 0;
  let end = s.length;
  while (start < end && (s.charCodeAt(start) === 0x20 || s.charCodeAt(start) === 0x09)) start++;
  while (end > start && (s.charCodeAt(end - 1) === 0x20 || s.charCodeAt(end - 1) === 0x09)) end--;
  return s.slice(start, end);
}

/** Latin1 binary string → the text its octets encode as UTF-8, or undefined if they are not UTF-8. */
function decodeUtf8(binary: string): string | undefined {
  try {
    return utf8Strict.decode(Buffer.from(binary, 'latin1'));
  } catch {
    return undefined;
  }
}

/**
 * Server side of RFC 4976 Digest for AUTH requests: issues `WWW-Authenticate` challenges and verifies
 * `Authorization` values. `users` may be replaced at run time (e.g. after a SIGHUP reload).
 */
export class DigestAuthenticator {
  /** The realm as configured. */
  readonly realm: string;
  /** The nonce source; exposed for tests and metrics. */
  readonly nonces: NonceManager;
  /** The user store consulted by {@link verify}. */
  users: UserStore;
  /** The realm as a header value (UTF-8 octets as a latin1 binary string). */
  private readonly realmWire: string;

  constructor(options: DigestAuthenticatorOptions) {
    this.realm = options.realm;
    this.realmWire = Buffer.from(options.realm, 'utf8').toString('latin1');
    this.users = options.users;
    this.nonces = new NonceManager({
      secret: options.secret,
      lifetimeSec: options.nonceLifetimeSec,
      now: options.now,
      maxTrackedNonces: options.maxTrackedNonces,
    });
  }

  /**
   * A `WWW-Authenticate` value with a fresh nonce: `Digest realm="…", nonce="…", qop="auth"`, plus
   * `stale=true` when asked. RFC 4976 §6.3: the challenge MUST carry qop="auth".
   */
  challenge(stale = false): string {
    return formatDigestChallenge({ realm: this.realmWire, nonce: this.nonces.issue(), qop: 'auth', stale });
  }

  /**
   * Verifies an `Authorization` header value against the rightmost URI of the AUTH's To-Path. The URI
   * check is a plain string comparison after trimming SP/HTAB at both ends: clients copy the To-Path URI
   * verbatim, so RFC 4975 §6.1 URI equivalence (case-insensitive scheme and host) is not applied.
   * On success returns the user name (decoded from UTF-8) and the `Authentication-Info` value for the 200,
   * carrying a `nextnonce`. `isLockedOut` (lib/relay/auth-lockout.ts) refuses a user before its
   * credentials are checked, so guesses made while locked out learn nothing.
   */
  verify(
    authorizationValue: string,
    toPathRightmostUri: string,
    isLockedOut?: (username: string) => boolean,
  ): DigestVerifyResult {
    const scheme = authScheme(authorizationValue);
    if (scheme === undefined) return fail('bad-syntax');
    // RFC 4976 §5.1: Basic MUST NOT be used; Digest is the only scheme.
    if (scheme.toLowerCase() !== 'digest') return fail('unsupported');
    let creds: DigestCredentials;
    try {
      creds = parseDigestCredentials(authorizationValue);
    } catch {
      return fail('bad-syntax');
    }
    // Named in every failure from here on (logs), though only guesses count toward a lockout.
    const username = decodeUtf8(creds.username);
    // RFC 4976 §5.1: algorithm is MD5; MD5-sess (and anything else) is not allowed.
    if (creds.algorithm !== undefined && creds.algorithm.toLowerCase() !== 'md5')
      return fail('unsupported', false, username);
    // RFC 4976 §5.1: qop MUST be present and be "auth"; auth-int is not allowed.
    if (creds.qop === undefined || creds.qop.toLowerCase() !== 'auth')
      return fail('unsupported', false, username);
    // RFC 4976 §5.1: the client MUST send cnonce and nc.
    if (creds.cnonce === undefined || creds.nc === undefined) return fail('unsupported', false, username);
    if (creds.realm !== this.realmWire) return fail('bad-realm', false, username);
    // RFC 4976 §5.1: digest-uri MUST be the rightmost URI of the AUTH To-Path.
    if (trimOws(creds.uri) !== trimOws(toPathRightmostUri)) return fail('bad-uri', false, username);

    if (username !== undefined && isLockedOut?.(username) === true)
      return fail('locked-out', false, username);
    const user = username === undefined ? undefined : this.users.lookup(username);
    const ha1 = user === undefined ? DUMMY_HA1 : user.ha1(this.realm);
    const input = {
      ha1,
      nonce: creds.nonce,
      nc: creds.nc,
      cnonce: creds.cnonce,
      qop: creds.qop,
      uri: creds.uri,
    };
    const expected = Buffer.from(computeResponse(input), 'latin1');
    const given = Buffer.from(creds.response.toLowerCase(), 'latin1');
    const match = timingSafeEqual(expected, given); // both 32 octets: the parser checked the response
    if (user === undefined || username === undefined) return fail('unknown-user', false, username);
    if (!match) return fail('bad-response', false, username);

    // RFC 4976 §6.3: a nonce that is no longer valid gets a new challenge with stale=true when the
    // credentials themselves were right.
    const status = this.nonces.check(creds.nonce);
    if (status === 'invalid') return fail('bad-nonce', true, username);
    if (status === 'stale') return fail('stale', true, username);
    if (!this.nonces.acceptNc(creds.nonce, parseInt(creds.nc, 16))) return fail('replay', true, username);

    // RFC 4976 §6.3: the 200 MUST carry Authentication-Info with rspauth, cnonce, nc and qop.
    const authenticationInfo = formatAuthenticationInfo({
      nextnonce: this.nonces.issue(),
      qop: creds.qop,
      rspauth: computeRspauth(input),
      cnonce: creds.cnonce,
      nc: creds.nc,
    });
    return { ok: true, username, authenticationInfo };
  }
}
