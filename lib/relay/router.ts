/**
 * Request validation and next-hop choice (RFC 4976 §6.4). The first To-Path URI must be a live token
 * of this relay used legitimately: either the request comes from the client that owns the token (on
 * the connection it authenticated, with the From-Path it authenticated — anti-spoofing), or it travels
 * toward that client (the URI after the token is the client's). The token is popped from To-Path and
 * pushed onto From-Path; when the new first URI is again one of ours (both ends on this relay) the
 * loop runs again, so the request is routed internally without a network hop.
 */
import { parseUri, uriEquals, type MsrpUri } from '../msrp/uri.js';
import { ownString } from '../util/own-string.js';
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
  /**
   * Digest §2.5: false when `source` proved by a client certificate to be a relay whose names do not
   * include the host of `first`, the first From-Path URI of its request (or that URI does not parse).
   * Absent: no such check.
   */
  fromAllowed?(source: P, first: MsrpUri | null): boolean;
  /** True when `source` proved by its certificate to be the relay `host` (a token's `relay`). */
  isRelay?(source: P, host: string): boolean;
  /** A live connection known to be the relay `host`, to reach a relay-bound token that lost its own. */
  relayPeer?(host: string): P | undefined;
  /** The relay-bound token `token` now held by `owner` (TokenTable.rebind, plus the relay's own books). */
  rebind?(token: Token<P>, owner: P): Token<P>;
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
  // What is cached is parsed from a copy: `text` is cut from a header (a path a peer may pad to 16 KiB),
  // and a cut string keeps the whole header alive, as would the parts parsed from it (memory audit:
  // 20,000 cached URIs could hold 300 MB of headers).
  const cacheable = text.length <= URI_CACHE_MAX_LENGTH;
  const source = cacheable ? ownString(text) : text;
  let uri: MsrpUri | null;
  try {
    uri = parseUri(source);
  } catch {
    uri = null; // an MsrpError: the caller answers 400 or 403
  }
  // Only well-formed, ordinary-sized URIs are cached: a peer must not fill memory with junk keys.
  if (uri === null || !cacheable) return uri;
  if (uriCache.size >= URI_CACHE_MAX) uriCache.clear();
  uriCache.set(source, uri);
  return uri;
}

/**
 * The last route one source took: its path values as received, the result, and the tokens the rules
 * consulted. A session's requests repeat the same two paths, so the next one is routed by comparing two
 * strings and looking its tokens up again, without splitting, parsing or joining its paths.
 */
export interface RouteMemo<P> {
  readonly to: string;
  readonly from: string;
  readonly result: RouteResult<P> & { ok: true };
  readonly tokens: readonly Token<P>[];
}

/** Where a source keeps its {@link RouteMemo} (the relay's Peer). */
export interface RouteMemoHolder<P> {
  routeMemo: RouteMemo<P> | null;
}

/**
 * Routes a request that arrived from `source`; see the module comment for the rules. With `holder`, a
 * request with the same paths as the source's last routed one gets that route again while every token it
 * went through is still live (tokens are immutable and die on expiry or with their connection; whether a
 * URI is ours does not change), so the outcome is the one the rules would give.
 */
export function routeRequest<P>(
  ctx: RouteContext<P>,
  source: P,
  toPathValue: string,
  fromPathValue: string,
  now = Date.now(),
  holder?: RouteMemoHolder<P>,
): RouteResult<P> {
  const memo = holder?.routeMemo ?? null;
  if (memo !== null && memo.to === toPathValue && memo.from === fromPathValue) {
    let live = true;
    for (const t of memo.tokens) if (ctx.tokens.get(t.id, now) !== t) live = false;
    if (live) return memo.result;
  }
  const result = routeByRules(ctx, source, toPathValue, fromPathValue, now);
  if (holder !== undefined) {
    // Not a route through a token that lost its connection: which connection of its relay it takes (or
    // a dial) changes while the token stays the same.
    holder.routeMemo =
      result.route.ok && result.tokens.every((t) => t.owner !== null)
        ? { to: toPathValue, from: fromPathValue, result: result.route, tokens: result.tokens }
        : null;
  }
  return result.route;
}

/** The rules themselves: the route, and the tokens it went through. */
function routeByRules<P>(
  ctx: RouteContext<P>,
  source: P,
  toPathValue: string,
  fromPathValue: string,
  now: number,
): { route: RouteResult<P>; tokens: Token<P>[] } {
  const tokens: Token<P>[] = [];
  const fail = (statusCode: number, comment: string): { route: RouteResult<P>; tokens: Token<P>[] } => ({
    route: { ok: false, statusCode, comment, ourUri },
    tokens,
  });
  const to = splitPath(toPathValue);
  const from = splitPath(fromPathValue);
  const ourUri = to[0]!;
  if (ctx.fromAllowed !== undefined && !ctx.fromAllowed(source, tryParse(from[0])))
    return fail(403, 'From-Path does not match the relay certificate');
  let fromChecked = false;
  for (let hop = 0; ; hop++) {
    const first = tryParse(to[0]);
    if (first === null) return fail(400, 'Bad To-Path URI');
    if (!ctx.isOurs(first) || first.sessionId === undefined) {
      // RFC 4976 §6.4: a request not addressed to this relay is not forwarded (no open relaying).
      if (hop === 0) return fail(403, 'Not addressed to this relay');
      // RFC 7977 §5.2.2: a WebSocket client is reached only over the connection it authenticated on (a
      // token of this relay's); a relay dials TCP (or TLS) next hops, never another transport.
      if (first.transport !== 'tcp') return fail(400, 'Next hop is not reachable over TCP');
      const route: RouteResult<P> = {
        ok: true,
        toPath: to.join(' '),
        fromPath: from.join(' '),
        next: { kind: 'dial', uri: first },
        ourUri,
      };
      return { route, tokens };
    }
    const token: Token<P> | undefined = ctx.tokens.get(first.sessionId, now);
    if (token === undefined) return fail(481, 'Session does not exist');
    // Digest §2.6 step 4: a token granted through a relay proven by its certificate serves any
    // connection of that relay; the one it came on takes it.
    const fromOwner =
      token.owner === source || (token.relay !== undefined && ctx.isRelay?.(source, token.relay) === true);
    tokens.push(token);
    let towardClient: boolean;
    if (fromOwner && !fromChecked) {
      // Outgoing from the client: it must speak with the path it authenticated.
      const sender = from[0] === token.clientUri ? token.clientParsed : tryParse(from[0]);
      if (sender === null || !uriEquals(sender, token.clientParsed)) {
        return fail(403, 'From-Path does not match the authenticated client');
      }
      fromChecked = true;
      towardClient = false;
      if (token.owner !== source && ctx.rebind !== undefined)
        tokens[tokens.length - 1] = ctx.rebind(token, source);
    } else {
      const next = to[1] === token.clientUri ? token.clientParsed : tryParse(to[1]);
      if (next === null || !uriEquals(next, token.clientParsed)) {
        return fail(403, 'Token used from a foreign connection');
      }
      towardClient = true;
    }
    from.unshift(to.shift()!);
    if (to.length === 0) return fail(400, 'To-Path ends at the relay');
    if (towardClient) {
      let next: NextHop<P>;
      if (token.owner !== null) next = { kind: 'peer', peer: token.owner };
      else {
        // A relay-bound token whose connection closed: another connection of that relay, else a new
        // one to its URI over TLS, where its certificate is checked again (never plain TCP: no proof).
        const other = ctx.relayPeer?.(token.relay!);
        if (other !== undefined) {
          tokens[tokens.length - 1] = ctx.rebind?.(token, other) ?? token;
          next = { kind: 'peer', peer: other };
        } else if (
          token.clientParsed.scheme.toLowerCase() === 'msrps' &&
          token.clientParsed.transport.toLowerCase() === 'tcp'
        ) {
          next = { kind: 'dial', uri: token.clientParsed };
        } else return fail(481, 'Session does not exist');
      }
      const route: RouteResult<P> = {
        ok: true,
        toPath: to.join(' '),
        fromPath: from.join(' '),
        next,
        ourUri,
      };
      return { route, tokens };
    }
  }
}
