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
    holder.routeMemo = result.route.ok
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
    tokens.push(token);
    let towardClient: boolean;
    if (token.owner === source && !fromChecked) {
      // Outgoing from the client: it must speak with the path it authenticated.
      const sender = from[0] === token.clientUri ? token.clientParsed : tryParse(from[0]);
      if (sender === null || !uriEquals(sender, token.clientParsed)) {
        return fail(403, 'From-Path does not match the authenticated client');
      }
      fromChecked = true;
      towardClient = false;
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
      const route: RouteResult<P> = {
        ok: true,
        toPath: to.join(' '),
        fromPath: from.join(' '),
        next: { kind: 'peer', peer: token.owner },
        ourUri,
      };
      return { route, tokens };
    }
  }
}
