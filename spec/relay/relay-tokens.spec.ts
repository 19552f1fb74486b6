/**
 * Tokens bound to a relay proven by its certificate (digest §2.6 step 4): the token table keeps them past
 * their connection and hands them to another connection of that relay; the router takes them from and
 * toward any connection of that relay, and dials the relay (over TLS only) when it has none.
 */
import { expect } from 'chai';
import { parseUri, type MsrpUri } from '../../lib/msrp/uri.js';
import { routeRequest, type RouteContext, type RouteMemoHolder } from '../../lib/relay/router.js';
import { TokenTable, type Token } from '../../lib/relay/tokens.js';

interface Conn extends RouteMemoHolder<Conn> {
  name: string;
  /** The relay host its certificate proves, if any. */
  relay?: string;
}

const RELAY = 'relay.example.net:2855';
const PREV = 'msrps://prev.example.org:2855/p1;tcp'; // the previous relay's Use-Path URI for alice
const PREV_PLAIN = 'msrp://prev.example.org:2855/p1;tcp';
const ALICE = 'msrps://alice.invalid:2855/a1;tcp';
const BOB = 'msrp://bob.example.com:7001/bs1;tcp';

function conn(name: string, relay?: string): Conn {
  return { name, routeMemo: null, ...(relay !== undefined && { relay }) };
}

function setup(): {
  ctx: RouteContext<Conn>;
  tokens: TokenTable<Conn>;
  live: Set<Conn>;
  tokenOf: (owner: Conn, client: string, relay?: string) => Token<Conn>;
} {
  const tokens = new TokenTable<Conn>();
  const live = new Set<Conn>();
  const ctx: RouteContext<Conn> = {
    tokens,
    isOurs: (uri: MsrpUri) => `${uri.host}:${uri.port}` === RELAY,
    fromAllowed: (source, first) => source.relay === undefined || source.relay === first?.host,
    isRelay: (source, host) => source.relay === host,
    relayPeer: (host) => [...live].find((c) => c.relay === host),
    rebind: (token, owner) => tokens.rebind(token, owner),
  };
  const tokenOf = (owner: Conn, client: string, relay?: string): Token<Conn> =>
    tokens.issue(
      owner,
      { uri: client, parsed: parseUri(client) },
      '',
      Date.now() + 60_000,
      (id) => `msrp://${RELAY}/${id};tcp`,
      undefined,
      relay,
    );
  return { ctx, tokens, live, tokenOf };
}

describe('relay-bound tokens', () => {
  it('outlive their connection, ownerless; a plain token dies with it', () => {
    const { tokens, tokenOf } = setup();
    const link = conn('link', 'prev.example.org');
    const bound = tokenOf(link, PREV, 'prev.example.org');
    const plain = tokenOf(link, PREV);
    expect(tokens.dropOwner(link)).to.equal(2);
    expect([tokens.get(bound.id)?.owner, tokens.get(plain.id), tokens.hasOwner(link)]).to.deep.equal([
      null,
      undefined,
      false,
    ]);
  });

  it('move to another connection as a new object; a plain token does not move', () => {
    const { tokens, tokenOf } = setup();
    const link = conn('link', 'prev.example.org');
    const other = conn('other', 'prev.example.org');
    const bound = tokenOf(link, PREV, 'prev.example.org');
    const plain = tokenOf(link, PREV);
    const moved = tokens.rebind(bound, other);
    expect(moved).to.not.equal(bound);
    expect([moved.owner, tokens.get(bound.id), tokens.hasOwner(other)]).to.deep.equal([other, moved, true]);
    expect(tokens.rebind(plain, other)).to.equal(plain);
    expect(tokens.get(plain.id)?.owner).to.equal(link);
  });

  it('serve a request from the client side on another connection of that relay, which then holds them', () => {
    const { ctx, tokens, tokenOf } = setup();
    const link = conn('link', 'prev.example.org');
    const bobConn = conn('bob');
    const t = tokenOf(link, PREV, 'prev.example.org');
    const tb = tokenOf(bobConn, BOB);
    tokens.dropOwner(link);
    const again = conn('again', 'prev.example.org');
    const route = routeRequest(
      ctx,
      again,
      `${t.uri} ${tb.uri} ${BOB}`,
      `${PREV} ${ALICE}`,
      Date.now(),
      again,
    );
    expect(route.ok && route.next.kind === 'peer' && route.next.peer).to.equal(bobConn);
    expect(tokens.get(t.id)?.owner).to.equal(again);
    // A connection no certificate proves to be that relay does not own it.
    const stranger = conn('stranger');
    const refused = routeRequest(ctx, stranger, `${t.uri} ${tb.uri} ${BOB}`, `${PREV} ${ALICE}`);
    expect(refused).to.deep.include({
      ok: false,
      statusCode: 403,
      comment: 'Token used from a foreign connection',
    });
  });

  it('reach the client over a live connection of that relay, else a TLS dial to its URI, never plain TCP', () => {
    const { ctx, tokens, live, tokenOf } = setup();
    const link = conn('link', 'prev.example.org');
    const bobConn = conn('bob');
    const t = tokenOf(link, PREV, 'prev.example.org');
    const tPlain = tokenOf(link, PREV_PLAIN, 'prev.example.org');
    tokens.dropOwner(link);
    const dial = routeRequest(ctx, bobConn, `${t.uri} ${PREV} ${ALICE}`, BOB);
    expect(dial.ok && dial.next).to.deep.equal({ kind: 'dial', uri: parseUri(PREV) });
    expect(routeRequest(ctx, bobConn, `${tPlain.uri} ${PREV_PLAIN} ${ALICE}`, BOB)).to.deep.include({
      ok: false,
      statusCode: 481,
    });
    const back = conn('back', 'prev.example.org');
    live.add(back);
    const viaLive = routeRequest(ctx, bobConn, `${t.uri} ${PREV} ${ALICE}`, BOB, Date.now(), bobConn);
    expect(viaLive.ok && viaLive.next.kind === 'peer' && viaLive.next.peer).to.equal(back);
    expect(tokens.get(t.id)?.owner).to.equal(back);
    // The memo holds the token as it is now: the same paths route the same way from it.
    expect(routeRequest(ctx, bobConn, `${t.uri} ${PREV} ${ALICE}`, BOB, Date.now(), bobConn)).to.equal(
      viaLive,
    );
  });

  it('refuses (403) a request from a relay known by its certificate whose From-Path starts elsewhere', () => {
    const { ctx, tokenOf } = setup();
    const bobConn = conn('bob');
    const tb = tokenOf(bobConn, BOB);
    const prev = conn('prev', 'prev.example.org');
    expect(routeRequest(ctx, prev, `${tb.uri} ${BOB}`, ALICE)).to.deep.include({
      ok: false,
      statusCode: 403,
      comment: 'From-Path does not match the relay certificate',
    });
    expect(routeRequest(ctx, prev, `${tb.uri} ${BOB}`, `${PREV} ${ALICE}`).ok).to.equal(true);
  });

  it('count per relay group against their cap, apart from the owner connection, moved or ownerless', () => {
    const tokens = new TokenTable<Conn>();
    const link = conn('link', 'prev.example.org');
    const other = conn('other', 'prev.example.org');
    const issue = (): Token<Conn> =>
      tokens.issue(
        link,
        { uri: PREV, parsed: parseUri(PREV) },
        '',
        Date.now() + 60_000,
        (id) => `msrp://${RELAY}/${id};tcp`,
        { group: 'relay:fingerprint', max: 2 },
        'prev.example.org',
      );
    // The connection's own tokens (a client's cap, 64) are another count.
    const own = Array.from({ length: 3 }, () =>
      tokens.issue(link, { uri: PREV, parsed: parseUri(PREV) }, '', Date.now() + 60_000, (id) => id),
    );
    const a = issue();
    tokens.rebind(a, other); // moved: still the oldest of its group
    const b = issue();
    tokens.dropOwner(link); // b ownerless; the three own tokens die
    const c = issue();
    expect({
      a: tokens.get(a.id),
      b: tokens.get(b.id)?.owner,
      c: tokens.get(c.id)?.owner,
      own: own.map((t) => tokens.get(t.id)),
      otherHolds: tokens.hasOwner(other),
    }).to.deep.equal({
      a: undefined,
      b: null,
      c: link,
      own: [undefined, undefined, undefined],
      otherHolds: false,
    });
  });

  it('are not routed from a memo while ownerless: a connection of the relay that comes back is used', () => {
    // Review: a memoized dial outlived the relay's return (a relay not reachable from here stayed so).
    const { ctx, tokens, live, tokenOf } = setup();
    const link = conn('link', 'prev.example.org');
    const bobConn = conn('bob');
    const t = tokenOf(link, PREV, 'prev.example.org');
    tokens.dropOwner(link);
    const to = `${t.uri} ${PREV} ${ALICE}`;
    const first = routeRequest(ctx, bobConn, to, BOB, Date.now(), bobConn);
    expect([first.ok && first.next.kind, bobConn.routeMemo]).to.deep.equal(['dial', null]);
    const back = conn('back', 'prev.example.org');
    live.add(back);
    const second = routeRequest(ctx, bobConn, to, BOB, Date.now(), bobConn);
    expect(second.ok && second.next.kind === 'peer' && second.next.peer).to.equal(back);
  });

  it('refuses (403) a relay known by its certificate whose first From-Path URI does not parse', () => {
    const { ctx, tokenOf } = setup();
    const tb = tokenOf(conn('bob'), BOB);
    const prev = conn('prev', 'prev.example.org');
    expect(routeRequest(ctx, prev, `${tb.uri} ${BOB}`, `not-a-uri ${ALICE}`)).to.deep.include({
      ok: false,
      statusCode: 403,
    });
  });
});
