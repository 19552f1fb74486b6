import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { expect } from 'chai';
import {
  formatDigestCredentials,
  parseAuthenticationInfo,
  parseDigestChallenge,
} from '../../lib/msrp/digest.js';
import {
  computeHA1,
  computeResponse,
  computeRspauth,
  DigestAuthenticator,
  NonceManager,
} from '../../lib/relay/digest-auth.js';
import { FileUserStore } from '../../lib/relay/users.js';

// The spec digest's §2.14 example.
const USER = 'alice';
const PASSWORD = 's3cret-Pw';
const REALM = 'relay.example.com';
const NONCE = 'Zk7qR2m9c1Xw4bT8';
const CNONCE = 'u5Jd0aQe';
const NC = '00000001';
const URI = 'msrps://alice@relay.example.com;tcp';
const HA1 = '96dd0f04ed9b519d3e5d2abbb036e312';

describe('computeHA1', () => {
  it('reproduces the E2.14 HA1', () => {
    expect(computeHA1(USER, REALM, PASSWORD)).to.equal(HA1);
  });

  it('hashes non-ASCII passwords as UTF-8', () => {
    // MD5 of the octets 75 3a 72 3a 70 c3 a4 ("u:r:pä" in UTF-8)
    expect(computeHA1('u', 'r', 'p\u00e4')).to.equal('aa50080230dd46f29b5f8218d358caf1');
  });
});

describe('computeResponse', () => {
  it('reproduces the E2.14 response', () => {
    const r = computeResponse({ ha1: HA1, nonce: NONCE, nc: NC, cnonce: CNONCE, qop: 'auth', uri: URI });
    expect(r).to.equal('6048e0013858ed1df5654a022023c386');
  });

  it('uses AUTH as the default method', () => {
    const p = { ha1: HA1, nonce: NONCE, nc: NC, cnonce: CNONCE, qop: 'auth', uri: URI };
    expect(computeResponse({ ...p, method: 'AUTH' })).to.equal(computeResponse(p));
  });
});

describe('computeRspauth', () => {
  it('reproduces the E2.14 rspauth', () => {
    const r = computeRspauth({ ha1: HA1, nonce: NONCE, nc: NC, cnonce: CNONCE, qop: 'auth', uri: URI });
    expect(r).to.equal('08347fe4baaf60484e5d20dbd3a4b388');
  });
});

describe('NonceManager', () => {
  function clock(start = 1_700_000_000_000): { now: () => number; advance: (ms: number) => void } {
    let t = start;
    return { now: () => t, advance: (ms) => (t += ms) };
  }

  it('issues 72 base64url characters', () => {
    expect(new NonceManager().issue()).to.match(/^[A-Za-z0-9_-]{72}$/);
  });

  it('issues a different nonce each time', () => {
    const m = new NonceManager();
    expect(m.issue()).to.not.equal(m.issue());
  });

  it('finds a fresh nonce valid', () => {
    const m = new NonceManager();
    expect(m.check(m.issue())).to.equal('valid');
  });

  it('still finds a nonce valid at exactly its lifetime', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, lifetimeSec: 60 });
    const n = m.issue();
    c.advance(60_000);
    expect(m.check(n)).to.equal('valid');
  });

  it('finds a nonce stale one millisecond after its lifetime', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, lifetimeSec: 60 });
    const n = m.issue();
    c.advance(60_001);
    expect(m.check(n)).to.equal('stale');
  });

  it('defaults the lifetime to 300 s', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now });
    const n = m.issue();
    c.advance(300_000);
    expect(m.check(n)).to.equal('valid');
    c.advance(1);
    expect(m.check(n)).to.equal('stale');
  });

  it('finds a nonce stale when the clock went back by more than the lifetime', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, lifetimeSec: 60 });
    const n = m.issue();
    c.advance(-60_001);
    expect(m.check(n)).to.equal('stale');
  });

  it('finds a nonce with one character changed invalid', () => {
    const m = new NonceManager();
    const n = m.issue();
    const tampered = (n[0] === 'A' ? 'B' : 'A') + n.slice(1);
    expect(m.check(tampered)).to.equal('invalid');
  });

  it('finds a nonce issued with another secret invalid', () => {
    const n = new NonceManager({ secret: 'one' }).issue();
    expect(new NonceManager({ secret: 'two' }).check(n)).to.equal('invalid');
  });

  it('accepts a nonce issued by another instance with the same secret', () => {
    const n = new NonceManager({ secret: Buffer.from('shared') }).issue();
    expect(new NonceManager({ secret: 'shared' }).check(n)).to.equal('valid');
  });

  it('finds a nonce of the wrong length or alphabet invalid', () => {
    const m = new NonceManager();
    expect([m.check(NONCE), m.check(''), m.check(`${m.issue().slice(0, 71)}=`)]).to.deep.equal([
      'invalid',
      'invalid',
      'invalid',
    ]);
  });

  it('accepts increasing nonce-counts for one nonce', () => {
    const m = new NonceManager();
    const n = m.issue();
    expect([m.acceptNc(n, 1), m.acceptNc(n, 2), m.acceptNc(n, 5)]).to.deep.equal([true, true, true]);
  });

  it('refuses a nonce-count already used', () => {
    const m = new NonceManager();
    const n = m.issue();
    m.acceptNc(n, 1);
    expect(m.acceptNc(n, 1)).to.equal(false);
  });

  it('refuses a nonce-count lower than the highest used', () => {
    const m = new NonceManager();
    const n = m.issue();
    m.acceptNc(n, 3);
    expect(m.acceptNc(n, 2)).to.equal(false);
  });

  it('tracks no more than maxTrackedNonces nonces', () => {
    const m = new NonceManager({ maxTrackedNonces: 2 });
    for (let i = 0; i < 5; i++) m.acceptNc(m.issue(), 1);
    expect(m.trackedCount).to.equal(2);
  });

  it('refuses a fresh nonce whose history was evicted', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, maxTrackedNonces: 1 });
    const first = m.issue();
    c.advance(1);
    const second = m.issue();
    m.acceptNc(first, 1);
    m.acceptNc(second, 1); // evicts first while it is still fresh
    expect(m.acceptNc(first, 2)).to.equal(false);
  });

  it('accepts a nonce issued after the evicted one', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, maxTrackedNonces: 1 });
    const first = m.issue();
    c.advance(1);
    const second = m.issue();
    m.acceptNc(first, 1);
    c.advance(1);
    const third = m.issue();
    m.acceptNc(second, 1);
    expect(m.acceptNc(third, 1)).to.equal(true);
  });

  it('drops expired nonces without refusing newer ones', () => {
    const c = clock();
    const m = new NonceManager({ now: c.now, lifetimeSec: 1, maxTrackedNonces: 1 });
    m.acceptNc(m.issue(), 1);
    c.advance(2000);
    const fresh = m.issue();
    expect([m.acceptNc(fresh, 1), m.trackedCount]).to.deep.equal([true, 1]);
  });

  it('accepts any nonce-count when tracking is off', () => {
    const m = new NonceManager({ maxTrackedNonces: 0 });
    const n = m.issue();
    expect([m.acceptNc(n, 1), m.acceptNc(n, 1), m.trackedCount]).to.deep.equal([true, true, 0]);
  });
});

describe('NonceManager memory', () => {
  it('keeps a copy of each nonce it tracks, not the header it was sliced from', () => {
    // Memory audit: the parsed nonce was a slice of the Authorization header, kept alive with the entry
    // (15 KiB an entry with a padded header).
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const m = new NonceManager();
    const padding = 'p'.repeat(16_000);
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 500; i++) {
      const header = `${m.issue()}, x="${padding}${i}"`; // one string, as a parsed header is
      expect(m.acceptNc(header.slice(0, 72), 1)).to.equal(true);
    }
    gc();
    // 500 entries: ~8 MB when each kept its 16 KB header.
    expect(process.memoryUsage().heapUsed - before).to.be.below(1024 * 1024);
  });
});

describe('DigestAuthenticator', () => {
  let t: number;
  let auth: DigestAuthenticator;

  beforeEach(() => {
    t = 1_700_000_000_000;
    auth = new DigestAuthenticator({
      realm: REALM,
      users: FileUserStore.fromMap({ alice: PASSWORD, bob: 'b0b' }),
      now: () => t,
    });
  });

  function nonceOf(challenge: string): string {
    return parseDigestChallenge(challenge).nonce;
  }

  interface Creds {
    username?: string;
    password?: string;
    realm?: string;
    nonce?: string;
    uri?: string;
    qop?: string;
    cnonce?: string;
    nc?: string;
    algorithm?: string;
  }

  /** An Authorization value computed like a correct client would, with the fields given overridden. */
  function authorization(o: Creds = {}): string {
    const username = o.username ?? USER;
    const realm = o.realm ?? REALM;
    const nonce = o.nonce ?? nonceOf(auth.challenge());
    const uri = o.uri ?? URI;
    const qop = o.qop ?? 'auth';
    const cnonce = o.cnonce ?? CNONCE;
    const nc = o.nc ?? NC;
    const ha1 = computeHA1(username, realm, o.password ?? PASSWORD);
    const response = computeResponse({ ha1, nonce, nc, cnonce, qop, uri });
    const v = formatDigestCredentials({ username, realm, nonce, uri, response, qop, cnonce, nc });
    return o.algorithm === undefined ? v : `${v}, algorithm=${o.algorithm}`;
  }

  it('challenges with realm, a fresh nonce and qop="auth"', () => {
    const c = parseDigestChallenge(auth.challenge());
    expect([c.realm, c.qop, c.stale, auth.nonces.check(c.nonce)]).to.deep.equal([
      REALM,
      'auth',
      undefined,
      'valid',
    ]);
  });

  it('adds stale=true to the challenge when asked', () => {
    expect(auth.challenge(true)).to.match(
      /^Digest realm="relay\.example\.com", nonce="[A-Za-z0-9_-]{72}", qop="auth", stale=true$/,
    );
  });

  it('accepts correct credentials and names the user', () => {
    const r = auth.verify(authorization(), URI);
    expect(r.ok && r.username).to.equal('alice');
  });

  it('answers with Authentication-Info carrying rspauth, cnonce, nc, qop and a valid nextnonce', () => {
    const nonce = nonceOf(auth.challenge());
    const r = auth.verify(authorization({ nonce }), URI);
    if (!r.ok) throw new Error(`expected success, got ${r.reason}`);
    const info = parseAuthenticationInfo(r.authenticationInfo);
    const rspauth = computeRspauth({ ha1: HA1, nonce, nc: NC, cnonce: CNONCE, qop: 'auth', uri: URI });
    expect([info.qop, info.rspauth, info.cnonce, info.nc, auth.nonces.check(info.nextnonce!)]).to.deep.equal([
      'auth',
      rspauth,
      CNONCE,
      NC,
      'valid',
    ]);
  });

  it('accepts an explicit algorithm=MD5', () => {
    expect(auth.verify(authorization({ algorithm: 'MD5' }), URI).ok).to.equal(true);
  });

  it('accepts a response written in upper-case hex', () => {
    const v = authorization().replace(
      /response="([0-9a-f]{32})"/,
      (_m, h: string) => `response="${h.toUpperCase()}"`,
    );
    expect(auth.verify(v, URI).ok).to.equal(true);
  });

  it('compares the digest-uri after trimming white space', () => {
    expect(auth.verify(authorization(), ` ${URI}\t`).ok).to.equal(true);
  });

  it('refuses Basic as unsupported', () => {
    expect(auth.verify('Basic YWxpY2U6czNjcmV0LVB3', URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
    });
  });

  it('refuses qop=auth-int as unsupported', () => {
    expect(auth.verify(authorization({ qop: 'auth-int' }), URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses algorithm=MD5-sess as unsupported', () => {
    expect(auth.verify(authorization({ algorithm: 'MD5-sess' }), URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses algorithm=SHA-256 as unsupported', () => {
    expect(auth.verify(authorization({ algorithm: 'SHA-256' }), URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses credentials without cnonce as unsupported', () => {
    const v = authorization().replace(`, cnonce="${CNONCE}"`, '');
    expect(auth.verify(v, URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses credentials without nc as unsupported', () => {
    const v = authorization().replace(`, nc=${NC}`, '');
    expect(auth.verify(v, URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses credentials without qop as unsupported', () => {
    const v = authorization().replace(', qop=auth', '');
    expect(auth.verify(v, URI)).to.deep.equal({
      ok: false,
      reason: 'unsupported',
      stale: false,
      username: USER,
    });
  });

  it('refuses an unparsable Authorization as bad-syntax', () => {
    expect(auth.verify('Digest username="alice', URI)).to.deep.equal({
      ok: false,
      reason: 'bad-syntax',
      stale: false,
    });
  });

  it('refuses an empty Authorization as bad-syntax', () => {
    expect(auth.verify('', URI)).to.deep.equal({ ok: false, reason: 'bad-syntax', stale: false });
  });

  it('refuses another realm as bad-realm', () => {
    expect(auth.verify(authorization({ realm: 'other.example.com' }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-realm',
      stale: false,
      username: USER,
    });
  });

  it('refuses a digest-uri that is not the rightmost To-Path URI as bad-uri', () => {
    expect(auth.verify(authorization(), 'msrps://relay2.example.com;tcp')).to.deep.equal({
      ok: false,
      reason: 'bad-uri',
      stale: false,
      username: USER,
    });
  });

  it('refuses a user the caller says is locked out before checking the credentials', () => {
    const asked: string[] = [];
    const locked = (name: string): boolean => {
      asked.push(name);
      return name === USER;
    };
    expect(auth.verify(authorization(), URI, locked)).to.deep.equal({
      ok: false,
      reason: 'locked-out',
      stale: false,
      username: USER,
    });
    expect(auth.verify(authorization({ username: 'bob', password: 'b0b' }), URI, locked).ok).to.equal(true);
    expect(asked).to.deep.equal([USER, 'bob']);
  });

  it('refuses an unknown user as unknown-user', () => {
    expect(auth.verify(authorization({ username: 'mallory' }), URI)).to.deep.equal({
      ok: false,
      reason: 'unknown-user',
      stale: false,
      username: 'mallory',
    });
  });

  it('refuses a user name that is not UTF-8 as unknown-user', () => {
    expect(auth.verify(authorization({ username: '\xff' }), URI)).to.deep.equal({
      ok: false,
      reason: 'unknown-user',
      stale: false,
    });
  });

  it('refuses a wrong password as bad-response without stale', () => {
    expect(auth.verify(authorization({ password: 'wrong' }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-response',
      stale: false,
      username: USER,
    });
  });

  it('refuses another user’s password as bad-response', () => {
    expect(auth.verify(authorization({ username: 'bob' }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-response',
      stale: false,
      username: 'bob',
    });
  });

  it('refuses correct credentials on an expired nonce as stale with stale=true', () => {
    const nonce = nonceOf(auth.challenge());
    t += 300_001;
    expect(auth.verify(authorization({ nonce }), URI)).to.deep.equal({
      ok: false,
      reason: 'stale',
      stale: true,
      username: USER,
    });
  });

  it('refuses a wrong password on an expired nonce as bad-response without stale', () => {
    const nonce = nonceOf(auth.challenge());
    t += 300_001;
    expect(auth.verify(authorization({ nonce, password: 'wrong' }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-response',
      stale: false,
      username: USER,
    });
  });

  it('honours nonceLifetimeSec', () => {
    const a = new DigestAuthenticator({
      realm: REALM,
      users: auth.users,
      nonceLifetimeSec: 10,
      now: () => t,
    });
    const nonce = nonceOf(a.challenge());
    t += 10_001;
    const r = a.verify(authorization({ nonce }), URI);
    expect(r.ok ? 'ok' : r.reason).to.equal('stale');
  });

  it('refuses correct credentials on a tampered nonce as bad-nonce with stale=true', () => {
    const n = nonceOf(auth.challenge());
    const nonce = n.slice(0, 10) + (n[10] === 'A' ? 'B' : 'A') + n.slice(11);
    expect(auth.verify(authorization({ nonce }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-nonce',
      stale: true,
      username: USER,
    });
  });

  it('refuses the E2.3 credentials, whose nonce this relay did not issue, as bad-nonce', () => {
    expect(auth.verify(authorization({ nonce: NONCE }), URI)).to.deep.equal({
      ok: false,
      reason: 'bad-nonce',
      stale: true,
      username: USER,
    });
  });

  it('accepts nonces issued by another authenticator sharing the secret', () => {
    const a = new DigestAuthenticator({ realm: REALM, users: auth.users, secret: 'k' });
    const b = new DigestAuthenticator({ realm: REALM, users: auth.users, secret: 'k' });
    expect(b.verify(authorization({ nonce: nonceOf(a.challenge()) }), URI).ok).to.equal(true);
  });

  it('refuses a replayed nonce-count as replay with stale=true', () => {
    const v = authorization();
    auth.verify(v, URI);
    expect(auth.verify(v, URI)).to.deep.equal({
      ok: false,
      reason: 'replay',
      stale: true,
      username: 'alice',
    });
  });

  it('accepts the same nonce again with a higher nonce-count', () => {
    const nonce = nonceOf(auth.challenge());
    auth.verify(authorization({ nonce }), URI);
    expect(auth.verify(authorization({ nonce, nc: '00000002' }), URI).ok).to.equal(true);
  });

  it('does not let a failed attempt burn a nonce-count', () => {
    const nonce = nonceOf(auth.challenge());
    auth.verify(authorization({ nonce, nc: '00000009', password: 'wrong' }), URI);
    expect(auth.verify(authorization({ nonce, nc: '00000001' }), URI).ok).to.equal(true);
  });

  it('uses a replaced user store', () => {
    auth.users = FileUserStore.fromMap({ alice: 'new-pw' });
    expect(auth.verify(authorization({ password: 'new-pw' }), URI).ok).to.equal(true);
  });

  it('accepts a user whose store entry is the E2.14 HA1', () => {
    auth.users = FileUserStore.fromMap({ alice: HA1 });
    expect(auth.verify(authorization(), URI).ok).to.equal(true);
  });

  it('accepts a UTF-8 user name sent as octets', () => {
    auth.users = FileUserStore.fromMap({ 'j\u00fcrgen': 'pw' });
    const wireName = Buffer.from('j\u00fcrgen', 'utf8').toString('latin1');
    const nonce = nonceOf(auth.challenge());
    const ha1 = computeHA1('j\u00fcrgen', REALM, 'pw');
    const response = computeResponse({ ha1, nonce, nc: NC, cnonce: CNONCE, qop: 'auth', uri: URI });
    const v = formatDigestCredentials({
      username: wireName,
      realm: REALM,
      nonce,
      uri: URI,
      response,
      qop: 'auth',
      cnonce: CNONCE,
      nc: NC,
    });
    const r = auth.verify(v, URI);
    expect(r.ok && r.username).to.equal('j\u00fcrgen');
  });
});
