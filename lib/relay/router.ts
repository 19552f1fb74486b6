/**
 * Request validation and next-hop choice (RFC 4976 §6.4). The first To-Path URI must be a live token
 * of this relay used legitimately: either the request comes from the client that owns the token (on
 * the connection it authenticated, with the From-Path it authenticated — anti-spoofing), or it travels
 * toward that client (the URI after the token is the client's). The token is popped from To-Path and
 * pushed onto From-Path; when the new first URI is again one of ours (both ends on this relay) the
 * loop runs again, so the request is routed internally without a network hop.
 */
import { parseUri, uriEquals, type MsrpUri } from '../msrp/uri.js';
import { splitPath } from './replies.js';
import type { Token, TokenTable } from './tokens.js';

/** Where a request goes next. */
export type NextHop<P> = { kind: 'peer'; peer: P } | { kind: 'dial'; uri: MsrpUri };

/** The outcome of routing one request. */
export type RouteResult<P> =
  | {
      ok: true;
      /** To-Path and From-Path after pop/push, as header values. */
      toPath: string;
      fromPath: string;
      next: NextHop<P>;
      /** The first URI the request addressed here (From-Path of anything the relay answers). */
      ourUri: string;
    }
  | { ok: false; statusCode: number; comment: string; ourUri: string };

/** What the router needs from the relay. */
export interface RouteContext<P> {
  readonly tokens: TokenTable<P>;
  /** True when `uri`'s host and port are one of this relay's authorities. */
  isOurs(uri: MsrpUri): boolean;
}

/**
 * Parsed URIs by their text. A session's paths repeat on every request, so most lookups hit; the map is
 * emptied when it reaches its bound (a cheap, bounded stand-in for an LRU). Parsed URIs are never
 * mutated, so sharing them is safe.
 */
const uriCache = new Map<string, MsrpUri | null>();
const URI_CACHE_MAX = 20_000;
const URI_CACHE_MAX_LENGTH = 256;

/** The URI `text` parsed (shared, cached), or null when it is not a valid MSRP URI. */
export function tryParse(text: string | undefined): MsrpUri | null {
  if (text === undefined) return null;
  const hit = uriCache.get(text);
  if (hit !== undefined) return hit;
  let uri: MsrpUri | null;
  try {
    uri = parseUri(text);
  } catch {
    uri = null; // an MsrpError: the caller answers 400 or 403
  }
  // Only well-formed, ordinary-sized URIs are cached: a peer must not fill memory with junk keys.
  if (uri === null || text.length > URI_CACHE_MAX_LENGTH) return uri;
  if (uriCache.size >= URI_CACHE_MAX) uriCache.clear();
  uriCache.set(text, uri);
  return uri;
}

/** Routes a request that arrived from `source`; see the module comment for the rules. */
export function routeRequest<P>(
  ctx: RouteContext<P>,
  source: P,
  toPathValue: string,
  fromPathValue: string,
  now = Date.now(),
): RouteResult<P> {
  const to = splitPath(toPathValue);
  const from = splitPath(fromPathValue);
  const ourUri = to[0]!;
  let fromChecked = false;
  for (let hop = 0; ; hop++) {
    const first = tryParse(to[0]);
    if (first === null) return { ok: false, statusCode: 400, comment: 'Bad To-Path URI', ourUri };
    if (!ctx.isOurs(first) || first.sessionId === undefined) {
      // RFC 4976 §6.4: a request not addressed to this relay is not forwarded (no open relaying).
      if (hop === 0) return { ok: false, statusCode: 403, comment: 'Not addressed to this relay', ourUri };
      return {
        ok: true,
        toPath: to.join(' '),
        fromPath: from.join(' '),
        next: { kind: 'dial', uri: first },
        ourUri,
      };
    }
    const token: Token<P> | undefined = ctx.tokens.get(first.sessionId, now);
    if (token === undefined) return { ok: false, statusCode: 481, comment: 'Session does not exist', ourUri };
    let towardClient: boolean;
    if (token.owner === source && !fromChecked) {
      // Outgoing from the client: it must speak with the path it authenticated.
      const sender = from[0] === token.clientUri ? token.clientParsed : tryParse(from[0]);
      if (sender === null || !uriEquals(sender, token.clientParsed)) {
        return {
          ok: false,
          statusCode: 403,
          comment: 'From-Path does not match the authenticated client',
          ourUri,
        };
      }
      fromChecked = true;
      towardClient = false;
    } else {
      const next = to[1] === token.clientUri ? token.clientParsed : tryParse(to[1]);
      if (next === null || !uriEquals(next, token.clientParsed)) {
        return { ok: false, statusCode: 403, comment: 'Token used from a foreign connection', ourUri };
      }
      towardClient = true;
    }
    from.unshift(to.shift()!);
    if (to.length === 0) return { ok: false, statusCode: 400, comment: 'To-Path ends at the relay', ourUri };
    if (towardClient) {
      return {
        ok: true,
        toPath: to.join(' '),
        fromPath: from.join(' '),
        next: { kind: 'peer', peer: token.owner },
        ourUri,
      };
    }
  }
}
