/**
 * Relay chaining under stress (found by the seventh session's chaining audit): one connection between two
 * relays carrying chunks both ways, and next hops that stop reading, fail their handshake or go away
 * with chunks still queued toward them. Each sender hears of every chunk the relay answered 200 but could
 * not forward (RFC 4976 §6.5, digest §2.7, §2.11).
 */
import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { Harness, nextMessage, sleep, USERS } from '../helpers/relay.js';

describe('relay chaining under stress', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('keeps a relay-to-relay connection moving when it carries slow receivers both ways', async function () {
    this.timeout(30_000);
    // Before, each relay paused its reading of the connection for the chunks queued on it toward the
    // other (its own 200s counted it as a producer): each waited for the other to read, for good.
    const opts = { maxQueuedBytes: 64 * 1024 };
    const r1 = await h.relay(opts);
    const r2 = await h.relay(opts);
    // alice is behind R1 and R2 (RFC 4976 §5.1 AUTH through R1): R2 reaches her on the connection R1 opened.
    const alice = await h.client(r1, 'alice');
    const t1 = alice.usePath[0]!;
    const viaR1 = await alice.auth({
      relayUri: `${t1} ${h.relayUri(r2)}`,
      username: 'alice',
      password: USERS.alice,
    });
    expect(viaR1.kind === 'response' && viaR1.statusCode).to.equal(200);
    alice.usePath = [t1, alice.usePath[0]!];
    const bob = await h.client(r2, 'bob');
    const carol = await h.client(r1, 'carol'); // R1 → R2 toward bob
    const dave = await h.client(r2, 'carol'); // R2 → R1 toward alice, on the same connection
    const toBobBody = randomBytes(32 * 1024 * 1024); // past what the kernel's buffers absorb
    const toAliceBody = randomBytes(32 * 1024 * 1024);
    const toBob = nextMessage(bob, 12_000).then(
      (m) => m.body.equals(toBobBody),
      (e: Error) => e.message,
    );
    const toAlice = nextMessage(alice, 12_000).then(
      (m) => m.body.equals(toAliceBody),
      (e: Error) => e.message,
    );
    alice.socket.pause();
    bob.socket.pause();
    const s1 = carol.send({ toPath: carol.toPathFor(bob.path), body: toBobBody, chunkSize: 64 * 1024 });
    const s2 = dave.send({ toPath: dave.toPathFor(alice.path), body: toAliceBody, chunkSize: 64 * 1024 });
    await sleep(1500);
    alice.socket.resume();
    bob.socket.resume();
    const res = {
      toBob: await toBob,
      toAlice: await toAlice,
      pausedReaders: [r1.stats().pausedReaders, r2.stats().pausedReaders],
    };
    await Promise.race([Promise.all([s1, s2]), sleep(100)]).catch(() => undefined);
    expect(res).to.deep.equal({ toBob: true, toAlice: true, pausedReaders: [0, 0] });
  });
});
