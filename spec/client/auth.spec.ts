import { expect } from 'chai';
import { createHash } from 'node:crypto';
import { AuthError, MsrpEndpoint } from '../../lib/client/endpoint.js';
import { runLoad } from '../../lib/load/runner.js';
import { parseDigestCredentials, type DigestCredentials } from '../../lib/msrp/digest.js';
import { getHeader, type Frame } from '../../lib/msrp/message.js';
import { serializeResponse } from '../../lib/msrp/serializer.js';
import { fakeMsrpServer } from '../helpers/fake-server.js';

const md5 = (s: string): string => createHash('md5').update(s).digest('hex');

/**
 * A relay that challenges every AUTH without credentials with `challenge`, keeps the credentials of
 * the others and grants them with `usePath` (its port written in for `PORT`).
 */
async function scriptedRelay(
  challenge: string,
  usePath = 'msrp://127.0.0.1:PORT/s1;tcp',
): Promise<{ port: number; credentials: DigestCredentials[]; close(): Promise<void> }> {
  const credentials: DigestCredentials[] = [];
  const fake = await fakeMsrpServer((socket, port) => (f: Frame): void => {
    if (f.kind !== 'request' || f.method !== 'AUTH') return;
    const authorization = getHeader(f.headers, 'authorization');
    if (authorization !== undefined) credentials.push(parseDigestCredentials(authorization));
    socket.write(
      serializeResponse({
        transactionId: f.transactionId,
        statusCode: authorization === undefined ? 401 : 200,
        toPath: f.headers[1]![1],
        fromPath: f.headers[0]![1],
        headers:
          authorization === undefined
            ? [['WWW-Authenticate', challenge]]
            : [
                ['Use-Path', usePath.replace('PORT', String(port))],
                ['Expires', '600'],
              ],
      }),
    );
  });
  return { port: fake.port, credentials, close: fake.close };
}

describe('MsrpEndpoint.auth against other relays (RFC 4976 §5.1, RFC 2617 §3.2.2)', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const c of closers.splice(0)) await c();
  });

  async function authAgainst(
    challenge: string,
    usePath?: string,
  ): Promise<{ ep: MsrpEndpoint; sent: DigestCredentials[]; auth: Promise<Frame> }> {
    const relay = await scriptedRelay(challenge, usePath);
    const ep = await MsrpEndpoint.connect({ host: '127.0.0.1', port: relay.port });
    closers.push(
      () => ep.close(),
      () => relay.close(),
    );
    const auth = ep.auth({
      relayUri: `msrp://127.0.0.1:${relay.port};tcp`,
      username: 'alice',
      password: 'pw',
    });
    return { ep, sent: relay.credentials, auth };
  }

  it('echoes opaque and the algorithm, with the qop=auth response', async () => {
    const { ep, sent, auth } = await authAgainst(
      'Digest realm="r", nonce="n1", qop="auth,auth-int", opaque="op4que", algorithm=MD5',
    );
    expect((await auth).kind === 'response' && ((await auth) as { statusCode: number }).statusCode).to.equal(
      200,
    );
    const c = sent[0]!;
    expect([c.opaque, c.algorithm, c.qop, c.nc]).to.deep.equal(['op4que', 'MD5', 'auth', '00000001']);
    const ha2 = md5(`AUTH:${c.uri}`);
    expect(c.response).to.equal(md5(`${md5('alice:r:pw')}:n1:00000001:${c.cnonce!}:auth:${ha2}`));
    expect(ep.usePath).to.have.length(1);
  });

  it('answers MD5-sess with the session HA1', async () => {
    const { sent, auth } = await authAgainst('Digest realm="r", nonce="n2", qop="auth", algorithm=MD5-sess');
    await auth;
    const c = sent[0]!;
    const ha1 = md5(`${md5('alice:r:pw')}:n2:${c.cnonce!}`);
    expect(c.response).to.equal(md5(`${ha1}:n2:00000001:${c.cnonce!}:auth:${md5(`AUTH:${c.uri}`)}`));
  });

  it('answers a challenge without qop in the RFC 2069 form', async () => {
    const { sent, auth } = await authAgainst('Digest realm="r", nonce="n3"');
    await auth;
    const c = sent[0]!;
    expect([c.qop, c.nc, c.cnonce]).to.deep.equal([undefined, undefined, undefined]);
    expect(c.response).to.equal(md5(`${md5('alice:r:pw')}:n3:${md5(`AUTH:${c.uri}`)}`));
  });

  it('refuses an algorithm it cannot compute, and a qop list without auth', async () => {
    for (const challenge of [
      'Digest realm="r", nonce="n", qop="auth", algorithm=SHA-256',
      'Digest realm="r", nonce="n", qop="auth-int"',
    ]) {
      const { sent, auth } = await authAgainst(challenge);
      const err: unknown = await auth.then(
        () => null,
        (e: unknown) => e,
      );
      expect(err, challenge).to.be.instanceOf(AuthError);
      expect(sent).to.deep.equal([]);
    }
  });

  it('refuses a 200 whose Use-Path does not parse, and the load tester names it as a setup failure', async () => {
    // Kamailio's msrp module with use_path_addr "msrp://host:port" (its README's form) writes this.
    const bad = 'msrp://msrp://127.0.0.1:PORT/s1;tcp';
    const { ep, auth } = await authAgainst('Digest realm="r", nonce="n", qop="auth"', bad);
    const err: unknown = await auth.then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).to.be.instanceOf(AuthError);
    expect((err as AuthError).reason).to.equal('AUTH 200 with an invalid Use-Path');
    expect(ep.usePath).to.deep.equal([]);

    const relay = await scriptedRelay('Digest realm="r", nonce="n", qop="auth"', bad);
    closers.push(() => relay.close());
    const r = await runLoad({
      target: `127.0.0.1:${relay.port}`,
      users: [{ username: 'alice', password: 'pw' }],
      sessions: 2,
      messages: 2,
      drain: 0.2,
      timeout: 0.5,
      progress: false,
    });
    expect(r.sessions.setupErrors).to.deep.equal({ 'AUTH 200 with an invalid Use-Path': 2 });
    expect(r.messages.sent).to.equal(0);
  });
});
