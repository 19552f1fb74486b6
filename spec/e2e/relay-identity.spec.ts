/**
 * Relays that know each other (RFC 4976 §6.2-§6.4, digest §2.5, §2.6): tokens granted through another
 * relay, the number one relay link may hold, and mutually authenticated TLS between relays.
 */
import { expect } from 'chai';
import { Harness, nextMessage, USERS } from '../helpers/relay.js';

describe('tokens granted through another relay', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('keeps the sessions of more than 64 clients behind one relay link', async function () {
    this.timeout(20_000);
    const r1 = await h.relay({ auth: false });
    const r2 = await h.relay({ auth: false });
    const first = await h.client(r1, 'alice');
    await h.authThrough(first, r2, 'alice');
    for (let i = 0; i < 70; i++) {
      const c = await h.client(r1, 'carol');
      await h.authThrough(c, r2, 'carol');
    }
    const bob = await h.client(r2, 'bob');
    const got = nextMessage(first, 5000);
    const res = await bob.send({ toPath: bob.toPathFor(first.path), body: Buffer.from('hi') });
    expect(res.statuses).to.deep.equal([200]);
    expect((await got).body.toString()).to.equal('hi');
  });

  it('revokes the oldest relayed token past --max-relayed-tokens, and a client past its own 64', async function () {
    this.timeout(20_000);
    const r1 = await h.relay({ auth: false });
    const r2 = await h.relay({ auth: false, maxRelayedTokens: 3 });
    const clients = [];
    for (let i = 0; i < 4; i++) {
      const c = await h.client(r1, 'carol');
      await h.authThrough(c, r2, 'carol');
      clients.push(c);
    }
    // A client of R2 itself with 65 AUTHs on its one connection: its first token goes.
    const bob = await h.client(r2, 'bob');
    const bobFirst = bob.usePath[0]!;
    for (let i = 0; i < 64; i++) {
      const res = await bob.auth({ relayUri: h.relayUri(r2, 'bob'), username: 'bob', password: USERS.bob });
      expect(res.kind === 'response' && res.statusCode).to.equal(200);
    }
    const dave = await h.client(r2, 'alice');
    const statuses = [];
    for (const c of clients)
      statuses.push((await dave.send({ toPath: dave.toPathFor(c.path), body: 'x' })).statuses[0]);
    const toBob = await dave.send({ toPath: `${bobFirst} ${bob.uri}`, body: 'x' });
    expect({ statuses, toBob: toBob.statuses }).to.deep.equal({
      statuses: [481, 200, 200, 200],
      toBob: [481],
    });
  });
});
