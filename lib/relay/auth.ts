/**
 * AUTH handling (RFC 4976 §5, §6.3): Digest challenge and verification, Expires policy (423 with
 * Min-/Max-Expires), and issuing the Use-Path token. Pure decisions: the relay writes the response and
 * closes the connection when told to.
 */
import type { Header, RequestHead } from '../msrp/message.js';
import { getHeader } from '../msrp/message.js';
import { parseExpires } from '../msrp/headers.js';
import { parsePath, type MsrpUri } from '../msrp/uri.js';
import type { DigestAuthenticator } from './digest-auth.js';
import { ownString } from '../util/own-string.js';

/** What the AUTH handler needs from the relay. */
export interface AuthContext {
  /** null when authentication is off (`--no-auth`): every AUTH is granted without a challenge. */
  readonly authenticator: DigestAuthenticator | null;
  readonly expires: { readonly def: number; readonly min: number; readonly max: number };
  readonly maxFailures: number;
  /** True when AUTHs for this user from this client are refused (lib/relay/auth-lockout.ts). */
  readonly isLockedOut?: (username: string) => boolean;
  /** Issues a token bound to the connection; returns the Use-Path URI. */
  issueToken(client: { uri: string; parsed: MsrpUri }, username: string, expiresSec: number): string;
}

/** Every {@link AuthOutcome.result}. */
export const AUTH_RESULTS = [
  'ok',
  'challenge',
  'stale',
  'failed',
  'locked-out',
  'bad-expires',
  'bad-request',
] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

/** The answer to one AUTH. */
export interface AuthOutcome {
  statusCode: number;
  comment?: string;
  headers: Header[];
  /** Close the connection after the response (too many failures). */
  close: boolean;
  /**
   * For logs and metrics: `ok`, `challenge`, `stale`, `failed`, `locked-out` (refused unchecked, 403),
   * `bad-expires`, `bad-request`.
   */
  result: AuthResult;
  /** The user granted, or the one failed credentials were for (when they parsed). */
  username?: string;
  reason?: string;
}

/** Longest first From-Path URI an AUTH may bind a token to, characters. */
export const MAX_CLIENT_URI_LENGTH = 1024;

/** Decides the response to an AUTH addressed to this relay. `failures` is the count so far. */
export function authenticate(ctx: AuthContext, head: RequestHead, failures: number): AuthOutcome {
  const toPath = head.headers[0]![1].trim();
  const fromPath = head.headers[1]![1].trim();
  // The token is bound to the previous hop: the client itself, or (RFC 4976 §5.1, a client behind two
  // relays authenticating to the second through the first) the first relay's Use-Path URI, the first
  // From-Path URI. Requests toward the client must then name that hop after the token.
  let client: MsrpUri;
  let clientText: string;
  try {
    parsePath(toPath);
    clientText = fromPath.split(/[ \t]+/)[0]!;
    // Each token keeps this URI and its parsed parts (64 tokens a connection): an unbounded one let a
    // client hold about 1 MiB per connection (security audit). MSRP URIs are host, port, session-id and
    // transport: far below this.
    if (clientText.length > MAX_CLIENT_URI_LENGTH) return badRequest('From-Path URI too long');
    // A copy, parsed again: a slice of the header (and the parts parsed from it) would keep the whole
    // From-Path alive with the token, however long the path after it (memory audit: ~1 MiB a connection).
    clientText = ownString(clientText);
    client = parsePath(clientText)[0]!;
    parsePath(fromPath);
  } catch {
    return badRequest('Bad URI in AUTH paths');
  }
  let expires = ctx.expires.def;
  const expiresValue = getHeader(head.headers, 'expires');
  if (expiresValue !== undefined) {
    try {
      expires = parseExpires(expiresValue);
    } catch {
      // RFC 4976 §5.1: Expires is 1*DIGIT; digits too many to count are past any maximum (423 below).
      if (!/^\s*\d+\s*$/.test(expiresValue)) return badRequest('Bad Expires');
      expires = Infinity;
    }
  }
  let username = '';
  let authInfo: string | undefined;
  const auth = ctx.authenticator;
  if (auth !== null) {
    const authorization = getHeader(head.headers, 'authorization');
    if (authorization === undefined) {
      return {
        statusCode: 401,
        headers: [['WWW-Authenticate', auth.challenge()]],
        close: false,
        result: 'challenge',
      };
    }
    // RFC 4976 §5.1: the digest-uri is the rightmost URI of the AUTH To-Path.
    const rightmost = toPath.split(/[ \t]+/).at(-1)!;
    const verdict = auth.verify(authorization, rightmost, ctx.isLockedOut);
    if (!verdict.ok) {
      const username = verdict.username;
      if (verdict.stale) {
        return {
          statusCode: 401,
          headers: [['WWW-Authenticate', auth.challenge(true)]],
          close: false,
          result: 'stale',
          reason: verdict.reason,
          username,
        };
      }
      // RFC 4976 §6.3: several failed attempts on one connection close it.
      const close = failures + 1 >= ctx.maxFailures;
      if (verdict.reason === 'locked-out') {
        // 403 (digest §1.9, RFC 4975 §10): a policy refusal the client should not retry as is; no challenge.
        const comment = 'Too many failed attempts, try later';
        return {
          statusCode: 403,
          comment,
          headers: [],
          close,
          result: 'locked-out',
          reason: verdict.reason,
          username,
        };
      }
      return {
        statusCode: 401,
        headers: [['WWW-Authenticate', auth.challenge()]],
        close,
        result: 'failed',
        reason: verdict.reason,
        username,
      };
    }
    username = verdict.username;
    authInfo = verdict.authenticationInfo;
  }
  if (expires < ctx.expires.min) {
    return {
      statusCode: 423,
      headers: [['Min-Expires', String(ctx.expires.min)]],
      close: false,
      result: 'bad-expires',
      reason: 'Expires below the minimum',
      ...(username !== '' && { username }), // verified credentials (none with --no-auth)
    };
  }
  if (expires > ctx.expires.max) {
    return {
      statusCode: 423,
      headers: [['Max-Expires', String(ctx.expires.max)]],
      close: false,
      result: 'bad-expires',
      reason: 'Expires above the maximum',
      ...(username !== '' && { username }), // verified credentials (none with --no-auth)
    };
  }
  const usePath = ctx.issueToken({ uri: clientText, parsed: client }, username, expires);
  const headers: Header[] = [
    ['Use-Path', usePath],
    ['Expires', String(expires)],
  ];
  if (authInfo !== undefined) headers.push(['Authentication-Info', authInfo]);
  return { statusCode: 200, headers, close: false, result: 'ok', username };
}

function badRequest(reason: string): AuthOutcome {
  return { statusCode: 400, comment: reason, headers: [], close: false, result: 'bad-request', reason };
}
