import { expect } from 'chai';
import { parseUri, type MsrpUri } from '../../lib/msrp/uri.js';
import { routeRequest, type RouteContext, type RouteMemoHolder } from '../../lib/relay/router.js';
import { TokenTable } from '../../lib/relay/tokens.js';

/** A source or destination connection (the relay's Peer in production). */
interface Conn extends RouteMemoHolder<Conn> {
  name: string;
}

const RELAY = 'relay.example.net:2855';
const ALICE = 'msrp://alice.example.com:7000/as1;tcp';
const BOB = 'msrp://bob.example.com:7001/bs1;tcp';
const REMOTE = 'msrp://other-relay.example.org:2855/rt1;tcp';

function setup(): {
  ctx: RouteContext<Conn>;
  tokens: TokenTable<Conn>;
  a: Conn;
  b: Conn;
  tokenOf: (owner: Conn, client: string, expiresAt?: number) => string;
} {
  const tokens = new TokenTable<Conn>();
  const ctx: RouteContext<Conn> = {
    tokens,
    isOurs: (uri: MsrpUri) => `${uri.host}:${uri.port}` === RELAY,
  };
  const tokenOf = (owner: Conn, client: string, expiresAt = Date.now() + 60_000): string =>
    tokens.issue(
      owner,
      { uri: client, parsed: parseUri(client) },
      '',
      expiresAt,
      (id) => `msrp://${RELAY}/${id};tcp`,
    ).uri;
  return { ctx, tokens, a: { name: 'a', routeMemo: null }, b: { name: 'b', routeMemo: null }, tokenOf };
}

describe('routeRequest with a route memo', () => {
  it('routes a repeated request of the same paths to the same result, as the rules do', () => {
    const { ctx, a, b, tokenOf } = setup();
    const ta = tokenOf(a, ALICE);
    const tb = tokenOf(b, BOB);
    const to = `${ta} ${tb} ${BOB}`;
    const first = routeRequest(ctx, a, to, ALICE, Date.now(), a);
    expect(first).to.deep.include({ ok: true, toPath: BOB, fromPath: `${tb} ${ta} ${ALICE}`, ourUri: ta });
    expect(first.ok && first.next.kind === 'peer' && first.next.peer).to.equal(b);
    const again = routeRequest(ctx, a, to, ALICE, Date.now(), a);
    expect(again).to.equal(first); // from the memo
    // Without a holder the rules run again and agree.
    expect(routeRequest(ctx, a, to, ALICE)).to.deep.equal(first);
  });

  it('does not reuse a route once a token it went through expired or lost its connection', () => {
    const { ctx, tokens, a, b, tokenOf } = setup();
    const now = Date.now();
    const ta = tokenOf(a, ALICE);
    const tb = tokenOf(b, BOB, now + 1000);
    const to = `${ta} ${tb} ${BOB}`;
    expect(routeRequest(ctx, a, to, ALICE, now, a).ok).to.equal(true);
    // Bob's token expires: the same paths now find no session.
    expect(routeRequest(ctx, a, to, ALICE, now + 1001, a)).to.deep.include({ ok: false, statusCode: 481 });
    expect(a.routeMemo).to.equal(null);
    // Alice's own token gone with her connection: refused as well, not served from an old memo.
    const tb2 = tokenOf(b, BOB);
    const to2 = `${ta} ${tb2} ${BOB}`;
    expect(routeRequest(ctx, a, to2, ALICE, now, a).ok).to.equal(true);
    tokens.dropOwner(a);
    expect(routeRequest(ctx, a, to2, ALICE, now, a)).to.deep.include({ ok: false, statusCode: 481 });
  });

  it('routes other paths by the rules: a spoofed From-Path is refused after a good request', () => {
    const { ctx, a, b, tokenOf } = setup();
    const ta = tokenOf(a, ALICE);
    const tb = tokenOf(b, BOB);
    const to = `${ta} ${tb} ${BOB}`;
    expect(routeRequest(ctx, a, to, ALICE, Date.now(), a).ok).to.equal(true);
    const spoofed = routeRequest(ctx, a, to, 'msrp://mallory.example.com:7002/ms1;tcp', Date.now(), a);
    expect(spoofed).to.deep.include({ ok: false, statusCode: 403 });
    // The memo of a refused request is not kept, and a good request is routed again.
    expect(a.routeMemo).to.equal(null);
    expect(routeRequest(ctx, a, to, ALICE, Date.now(), a).ok).to.equal(true);
  });

  it('memoises a route toward another relay while the sender’s token lives', () => {
    const { ctx, a, tokenOf } = setup();
    const ta = tokenOf(a, ALICE);
    const to = `${ta} ${REMOTE} ${BOB}`;
    const first = routeRequest(ctx, a, to, ALICE, Date.now(), a);
    expect(first).to.deep.include({ ok: true, toPath: `${REMOTE} ${BOB}`, fromPath: `${ta} ${ALICE}` });
    expect(first.ok && first.next.kind).to.equal('dial');
    expect(routeRequest(ctx, a, to, ALICE, Date.now(), a)).to.equal(first);
    // Another connection sending the same paths is not the token's owner: refused, whatever a's memo says.
    const c: Conn = { name: 'c', routeMemo: null };
    expect(routeRequest(ctx, c, to, ALICE, Date.now(), c)).to.deep.include({ ok: false, statusCode: 403 });
  });
});
