import { expect } from 'chai';
import { createHash } from 'node:crypto';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import {
  parseAuthenticationInfo,
  parseDigestChallenge,
  formatDigestCredentials,
} from '../../lib/msrp/digest.js';
import { parseUri } from '../../lib/msrp/uri.js';
import type { Relay } from '../../lib/relay/relay.js';
import { connect, type Socket } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { captureLogger, Harness, next, until, USERS, type LogLine } from '../helpers/relay.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * An AUTH from `ep` to `relayUri` answering the relay's challenge with Digest credentials computed for
 * `uri` (RFC 4976 §5.1 wants the rightmost To-Path URI there) and `password`.
 */
async function authForUri(
  ep: MsrpEndpoint,
  relayUri: string,
  user: string,
  password: string,
  uri: string,
  cnonce: string,
): Promise<Frame> {
  const ch = await ep.request({ method: 'AUTH', toPath: relayUri, fromPath: ep.uri });
  const c = parseDigestChallenge(getHeader(ch.headers, 'www-authenticate')!);
  const ha1 = md5(`${user}:${c.realm}:${password}`);
  const response = md5(`${ha1}:${c.nonce}:00000001:${cnonce}:auth:${md5(`AUTH:${uri}`)}`);
  const authorization = formatDigestCredentials({
    username: user,
    realm: c.realm,
    nonce: c.nonce,
    uri,
    response,
    qop: 'auth',
    cnonce,
    nc: '00000001',
  });
  return ep.request({
    method: 'AUTH',
    toPath: relayUri,
    fromPath: ep.uri,
    headers: [['Authorization', authorization]],
  });
}

describe('relay AUTH (RFC 4976 §5, §6.3)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('challenges an AUTH without credentials with Digest realm, nonce and qop="auth"', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const res = await ep.request({ method: 'AUTH', toPath: h.relayUri(relay), fromPath: ep.uri });
    expect(res.kind === 'response' && res.statusCode).to.equal(401);
    expect(res.headers[0]).to.deep.equal(['To-Path', ep.uri]);
    const c = parseDigestChallenge(getHeader(res.headers, 'www-authenticate')!);
    expect(c.realm).to.equal('test.realm');
    expect(c.qop).to.equal('auth');
    expect(c.nonce.length).to.be.greaterThan(16);
  });

  it('grants a Use-Path token, Expires and Authentication-Info with rspauth for good credentials', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const relayUri = h.relayUri(relay);
    const res = await ep.auth({ relayUri, username: 'alice', password: USERS.alice, expires: 900 });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    const usePath = parseUri(getHeader(res.headers, 'use-path')!);
    expect(usePath.port).to.equal(relay.addresses()[0]!.port);
    expect(usePath.transport).to.equal('tcp');
    expect(usePath.sessionId).to.match(/^[A-Za-z0-9]{20}$/);
    expect(getHeader(res.headers, 'expires')).to.equal('900');
    const info = parseAuthenticationInfo(getHeader(res.headers, 'authentication-info')!);
    expect(info.qop).to.equal('auth');
    expect(info.nc).to.equal('00000001');
    expect(info.rspauth).to.match(/^[0-9a-f]{32}$/);
  });

  it('hands out a different token for every AUTH on one connection', async () => {
    const relay = await h.relay();
    const ep = await h.client(relay, 'alice');
    const first = ep.usePath[0];
    await ep.auth({ relayUri: h.relayUri(relay), username: 'alice', password: USERS.alice });
    expect(ep.usePath[0]).to.not.equal(first);
    expect(relay.tokens.size).to.equal(2);
  });

  it('answers a wrong password with a new 401 without stale', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const res = await ep.auth({ relayUri: h.relayUri(relay), username: 'alice', password: 'wrong' });
    expect(res.kind === 'response' && res.statusCode).to.equal(401);
    expect(parseDigestChallenge(getHeader(res.headers, 'www-authenticate')!).stale).to.not.equal(true);
  });

  it('closes the connection after three failed AUTH attempts', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const closed = next(ep, 'close');
    for (let i = 0; i < 3; i++) {
      const res = await ep.auth({ relayUri: h.relayUri(relay), username: 'alice', password: `bad${i}` });
      expect(res.kind === 'response' && res.statusCode).to.equal(401);
    }
    await closed;
    expect(ep.isClosed).to.equal(true);
  });

  it('counts failed AUTH attempts since the last granted one, not over the connection life', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const relayUri = h.relayUri(relay);
    const fail = async (i: number): Promise<void> => {
      const res = await ep.auth({ relayUri, username: 'alice', password: `bad${i}` });
      expect(res.kind === 'response' && res.statusCode).to.equal(401);
    };
    await fail(0);
    await fail(1);
    const ok = await ep.auth({ relayUri, username: 'alice', password: USERS.alice });
    expect(ok.kind === 'response' && ok.statusCode).to.equal(200);
    await fail(2);
    await fail(3);
    // Four failures in all, never three in a row: the connection still serves.
    const again = await ep.auth({ relayUri, username: 'alice', password: USERS.alice });
    expect(again.kind === 'response' && again.statusCode).to.equal(200);
    expect(ep.isClosed).to.equal(false);
  });

  it('rejects an Authorization whose uri is not the rightmost To-Path URI', async () => {
    const relay = await h.relay();
    const ep = await h.connect(relay);
    const uri = 'msrp://elsewhere.example.com:2855;tcp';
    const res = await authForUri(ep, h.relayUri(relay), 'alice', USERS.alice, uri, 'abcdef');
    expect(res.kind === 'response' && res.statusCode).to.equal(401);
  });

  it('keeps in a token its client URI only, not the rest of a long From-Path', async function () {
    // Memory audit: the token's URI was a slice of the From-Path header, which kept the whole header (up to
    // 16 KiB) alive: ~1 MiB a connection at 64 tokens.
    this.timeout(30_000);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const relay = await h.relay({ auth: false });
    const port = relay.addresses().find((a) => a.kind === 'tcp')!.port;
    const padding = Array.from({ length: 400 }, (_, i) => `msrp://pad${i}.invalid:9/p;tcp`).join(' ');
    gc();
    const before = process.memoryUsage().heapUsed;
    const sockets: Socket[] = [];
    for (let c = 0; c < 5; c++) {
      const s = connect(port, '127.0.0.1');
      sockets.push(s);
      // Counted, not kept: each 200 echoes the long From-Path in its To-Path.
      let ok = 0;
      s.on('data', (d: Buffer) => (ok += (d.toString('latin1').match(/ 200 OK\r\n/g) ?? []).length));
      await new Promise((r) => s.once('connect', r));
      for (let i = 0; i < 64; i++) {
        const tid = `au${c}x${i}xx`;
        s.write(
          `MSRP ${tid} AUTH\r\nTo-Path: msrp://127.0.0.1:${port};tcp\r\n` +
            `From-Path: msrp://c${c}.invalid:9/s${i};tcp ${padding}\r\n-------${tid}$\r\n`,
        );
      }
      await until(() => ok === 64, 5000, `64 tokens on connection ${c}`);
    }
    gc();
    const held = process.memoryUsage().heapUsed - before;
    for (const s of sockets) s.destroy();
    // 320 tokens: each From-Path is ~12 KB, 3.8 MB in all when every token kept its header.
    expect(held).to.be.below(1.5 * 1024 * 1024);
  });

  it('keeps no long request header alive through the URIs it caches for routing', async function () {
    // The router caches parsed URIs by their text (lib/relay/router.ts); a text cut from a header padded
    // to 6 KB kept that header alive, 6 KB per cached URI.
    this.timeout(30_000);
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const relay = await h.relay({ auth: false });
    const port = relay.addresses().find((a) => a.kind === 'tcp')!.port;
    const padding = Array.from({ length: 200 }, (_, i) => `msrp://pad${i}.invalid:9/p;tcp`).join(' ');
    gc();
    const before = process.memoryUsage().heapUsed;
    const s = connect(port, '127.0.0.1');
    let answered = 0;
    s.on('data', (d: Buffer) => (answered += (d.toString('latin1').match(/^MSRP \S+ \d{3}/gm) ?? []).length));
    await new Promise((r) => s.once('connect', r));
    for (let i = 0; i < 320; i++) {
      const tid = `sd${i}xxxx`;
      s.write(
        `MSRP ${tid} SEND\r\nTo-Path: msrp://127.0.0.1:${port}/nosuchtoken${i};tcp ${padding}\r\n` +
          `From-Path: msrp://c${i}.invalid:9/s${i};tcp ${padding}\r\nMessage-ID: m${i}\r\n-------${tid}$\r\n`,
      );
    }
    await until(() => answered === 320, 5000, '320 answers');
    gc();
    const held = process.memoryUsage().heapUsed - before;
    s.destroy();
    // 320 requests of two ~6 KB paths: 3.8 MB when each cached URI kept its header.
    expect(held).to.be.below(1.5 * 1024 * 1024);
  });

  it('answers 423 with Min-Expires or Max-Expires when Expires is out of bounds', async () => {
    const lines: LogLine[] = [];
    const relay = await h.relay({ authMinExpires: 100, authMaxExpires: 1000, logger: captureLogger(lines) });
    const ep = await h.connect(relay);
    const low = await ep.auth({
      relayUri: h.relayUri(relay),
      username: 'alice',
      password: USERS.alice,
      expires: 10,
    });
    expect(low.kind === 'response' && low.statusCode).to.equal(423);
    expect(getHeader(low.headers, 'min-expires')).to.equal('100');
    const high = await ep.auth({
      relayUri: h.relayUri(relay),
      username: 'alice',
      password: USERS.alice,
      expires: 5000,
    });
    expect(high.kind === 'response' && high.statusCode).to.equal(423);
    expect(getHeader(high.headers, 'max-expires')).to.equal('1000');
    // The credentials were verified: the log names the user (observability audit: it did not).
    const failed = lines.filter((l) => l.msg === 'AUTH failed').map((l) => [l.fields.user, l.fields.reason]);
    expect(failed).to.deep.equal([
      ['alice', 'Expires below the minimum'],
      ['alice', 'Expires above the maximum'],
    ]);
    // Operations audit: 21 digits (valid `1*DIGIT`, RFC 4976 §5.1) got 400 Bad Expires.
    const huge = await ep.auth({
      relayUri: h.relayUri(relay),
      username: 'alice',
      password: USERS.alice,
      expires: 1e20,
    });
    expect([
      huge.kind === 'response' && huge.statusCode,
      getHeader(huge.headers, 'max-expires'),
    ]).to.deep.equal([423, '1000']);
  });

  it('grants AUTH without a challenge when authentication is off', async () => {
    const relay = await h.relay({ auth: false });
    const ep = await h.connect(relay);
    const res = await ep.request({ method: 'AUTH', toPath: h.relayUri(relay), fromPath: ep.uri });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    expect(getHeader(res.headers, 'use-path')).to.match(/^msrp:\/\/127\.0\.0\.1:\d+\/[A-Za-z0-9]{20};tcp$/);
  });

  it('refuses to bind a token to a From-Path URI over 1,024 characters (400)', async () => {
    // Each token keeps that URI, 64 tokens a connection: unbounded, about 1 MiB per connection.
    const relay = await h.relay({ auth: false });
    const ep = await h.connect(relay);
    const long = `msrp://${'a'.repeat(1100)}.invalid:2855/s1;tcp`;
    const res = await ep.request({ method: 'AUTH', toPath: h.relayUri(relay), fromPath: long });
    expect(res.kind === 'response' && [res.statusCode, res.comment]).to.deep.equal([
      400,
      'From-Path URI too long',
    ]);
    expect(relay.tokens.size).to.equal(0);
    const ok = await ep.request({ method: 'AUTH', toPath: h.relayUri(relay), fromPath: ep.uri });
    expect(ok.kind === 'response' && ok.statusCode).to.equal(200);
  });

  it('closes a connection that sends no request within the probation period', async () => {
    const relay = await h.relay({ probationMs: 150 });
    const ep = await h.connect(relay);
    await next(ep, 'close', 3000);
    expect(ep.isClosed).to.equal(true);
  });

  it('closes a connection whose every request is refused within the probation period', async () => {
    // RFC 4976 §6.3: probation ends with a successful request, not with any request. The requests keep
    // coming every 100 ms, so the close cannot be the idle rule (silence for the probation period).
    const relay = await h.relay({ probationMs: 300 });
    const ep = await h.connect(relay);
    const statuses: number[] = [];
    const at = relay.addresses()[0]!;
    for (let i = 0; i < 15 && !ep.isClosed; i++) {
      ep.request({
        method: 'SEND',
        toPath: `msrp://${at.host}:${at.port}/NoSuchToken00000000;tcp msrp://x.invalid:1/y;tcp`,
        fromPath: ep.uri,
        headers: [['Message-ID', `refused${i}`]],
      }).then(
        (res) => res.kind === 'response' && statuses.push(res.statusCode),
        () => undefined,
      );
      await new Promise((r) => setTimeout(r, 100));
    }
    expect([ep.isClosed, statuses.length > 0 && statuses.every((c) => c === 481)]).to.deep.equal([
      true,
      true,
    ]);
  });

  describe('lockout of password guessing (--auth-lockout-failures)', () => {
    const status = (res: { kind: string; statusCode?: number }): number | undefined =>
      res.kind === 'response' ? res.statusCode : undefined;

    /** `n` wrong passwords for `user`, two per connection (a third would close it anyway). */
    async function guess(relay: Relay, user: string, n: number): Promise<number[]> {
      const codes: number[] = [];
      for (let i = 0; i < n; i += 2) {
        const ep = await h.connect(relay);
        for (let j = i; j < Math.min(n, i + 2); j++) {
          codes.push(
            status(await ep.auth({ relayUri: h.relayUri(relay), username: user, password: `bad${j}` }))!,
          );
        }
        ep.close();
      }
      return codes;
    }

    it('refuses a user from an address with 403, unchecked, after that many failed guesses', async () => {
      const lines: LogLine[] = [];
      const relay = await h.relay({ authLockoutFailures: 4, logger: captureLogger(lines) });
      expect(await guess(relay, 'alice', 4)).to.deep.equal([401, 401, 401, 401]);
      const ep = await h.connect(relay);
      // The right password now gets 403 with no challenge: guesses made while locked out learn nothing.
      const res = await ep.auth({ relayUri: h.relayUri(relay), username: 'alice', password: USERS.alice });
      expect([status(res), res.kind === 'response' && res.comment]).to.deep.equal([
        403,
        'Too many failed attempts, try later',
      ]);
      expect(getHeader(res.headers, 'www-authenticate')).to.equal(undefined);
      // Another user from the same address is not locked out.
      const other = await ep.auth({ relayUri: h.relayUri(relay), username: 'bob', password: USERS.bob });
      expect(status(other)).to.equal(200);
      const locked = lines.filter((l) => l.msg === 'AUTH locked out: too many failed attempts');
      expect(locked.map((l) => [l.fields.user, l.fields.failures])).to.deep.equal([['alice', 4]]);
      const failed = lines.filter((l) => l.msg === 'AUTH failed');
      expect(failed.map((l) => [l.fields.user, l.fields.result])).to.deep.equal([
        ['alice', 'failed'],
        ['alice', 'failed'],
        ['alice', 'failed'],
        ['alice', 'failed'],
        ['alice', 'locked-out'],
      ]);
      expect(relay.stats().counters.authLockouts).to.equal(1);
      expect(relay.stats().authLockedOut).to.equal(1);
      expect(relay.stats().counters.auth['locked-out']).to.equal(1);
    });

    it('lets the user in again once the lockout time has passed since the last failure', async () => {
      const relay = await h.relay({ authLockoutFailures: 2, authLockoutMs: 400 });
      expect(await guess(relay, 'alice', 2)).to.deep.equal([401, 401]);
      const ep = await h.connect(relay);
      const relayUri = h.relayUri(relay);
      expect(status(await ep.auth({ relayUri, username: 'alice', password: USERS.alice }))).to.equal(403);
      await new Promise((r) => setTimeout(r, 500));
      expect(status(await ep.auth({ relayUri, username: 'alice', password: USERS.alice }))).to.equal(200);
      expect(relay.stats().authLockedOut).to.equal(0);
    });

    it('forgets the failures of a user who then gets in, and counts only wrong credentials', async () => {
      const relay = await h.relay({ authLockoutFailures: 3 });
      const relayUri = h.relayUri(relay);
      expect(await guess(relay, 'carol', 2)).to.deep.equal([401, 401]);
      const ep = await h.connect(relay);
      expect(status(await ep.auth({ relayUri, username: 'carol', password: USERS.carol }))).to.equal(200);
      expect(await guess(relay, 'carol', 2)).to.deep.equal([401, 401]);
      // Credentials for another URI are a client's mistake, not a guess: they do not count.
      const ep2 = await h.connect(relay);
      const bad = await authForUri(
        ep2,
        relayUri,
        'carol',
        'wrong',
        'msrp://elsewhere.invalid:2855;tcp',
        'cn',
      );
      expect(status(bad)).to.equal(401);
      const ep3 = await h.connect(relay);
      expect(status(await ep3.auth({ relayUri, username: 'carol', password: USERS.carol }))).to.equal(200);
    });

    it('refuses names an address sprays past its 64 pairs, but not users logged in from it', async function () {
      this.timeout(15_000);
      const relay = await h.relay({ authLockoutFailures: 2 });
      const relayUri = h.relayUri(relay);
      const bobEp = await h.connect(relay);
      expect(status(await bobEp.auth({ relayUri, username: 'bob', password: USERS.bob }))).to.equal(200);
      // One client behind the same address sprays: 64 names take the address's pairs, 2 more lock the rest.
      for (let i = 0; i < 66; i++) await guess(relay, `spray${i}`, 1);
      const carolEp = await h.connect(relay);
      const carol = await carolEp.auth({ relayUri, username: 'carol', password: USERS.carol });
      const bob = await bobEp.auth({ relayUri, username: 'bob', password: USERS.bob });
      // carol has no entry from this address: refused while the spraying lockout lasts; bob logged in here.
      expect([status(carol), status(bob)]).to.deep.equal([403, 200]);
    });

    it('is off with 0', async () => {
      const relay = await h.relay({ authLockoutFailures: 0 });
      expect(await guess(relay, 'alice', 12)).to.deep.equal(Array(12).fill(401));
      const ep = await h.connect(relay);
      expect(
        status(await ep.auth({ relayUri: h.relayUri(relay), username: 'alice', password: USERS.alice })),
      ).to.equal(200);
    });
  });
});
