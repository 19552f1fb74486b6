import { expect } from 'chai';
import { AuthLockout } from '../../lib/relay/auth-lockout.js';

describe('AuthLockout', () => {
  const make = (failures = 3, windowMs = 1000, maxEntries = 100, maxPerAddress = 64): AuthLockout =>
    new AuthLockout({ failures, windowMs, maxEntries, maxPerAddress });

  it('locks a pair at the limit, and says so once', () => {
    const l = make();
    expect([l.fail('10.0.0.1', 'alice', 0), l.fail('10.0.0.1', 'alice', 10)]).to.deep.equal([null, null]);
    expect(l.isLocked('10.0.0.1', 'alice', 20)).to.equal(false);
    expect(l.fail('10.0.0.1', 'alice', 20)).to.equal('user');
    expect(l.isLocked('10.0.0.1', 'alice', 21)).to.equal(true);
    expect([l.isLocked('10.0.0.2', 'alice', 21), l.isLocked('10.0.0.1', 'bob', 21)]).to.deep.equal([
      false,
      false,
    ]);
    // A failure while locked is not a guess (the relay refuses it unchecked): nothing more to say.
    expect(l.fail('10.0.0.1', 'alice', 22)).to.equal(null);
    expect(l.lockedCount(21)).to.equal(1);
  });

  it('ends a lockout a window after the last failure', () => {
    const l = make(2, 1000);
    l.fail('10.0.0.1', 'alice', 0);
    l.fail('10.0.0.1', 'alice', 500);
    expect([l.isLocked('10.0.0.1', 'alice', 1499), l.isLocked('10.0.0.1', 'alice', 1500)]).to.deep.equal([
      true,
      false,
    ]);
    // Counting starts afresh once it ended, even before a sweep.
    expect(l.fail('10.0.0.1', 'alice', 1500)).to.equal(null);
    expect(l.fail('10.0.0.1', 'alice', 1501)).to.equal('user');
  });

  it('gives back the slot of a lockout that ended before the sweep, whatever comes next', () => {
    // Fuzz audit: log in right after a lockout ends (before the sweep), then fail again: the new lockout
    // overwrote the old one without giving its slot back. After 64 of them one address had no slot left,
    // and three single guesses for three names locked out every user there without a marker.
    const l = make(3, 1000, 1000, 4);
    let t = 0;
    for (const user of ['m1', 'm2', 'm3', 'm4']) {
      for (let n = 0; n < 3; n++) l.fail('10.0.0.1', user, t++);
      t += 1000; // the lockout ends; no sweep runs
      l.succeed('10.0.0.1', user, t++);
      for (let n = 0; n < 3; n++) l.fail('10.0.0.1', user, t++);
    }
    t += 1000;
    // Three names, one wrong guess each: nothing to lock.
    expect(['u1', 'u2', 'u3'].map((u) => l.fail('10.0.0.1', u, t++))).to.deep.equal([null, null, null]);
    expect(l.isLocked('10.0.0.1', 'erin', t)).to.equal(false);
    // The sweep, a window after the last failure, finds every entry (none kept its old place).
    l.sweep(t + 1000);
    expect([l.size, l.lockedCount(t + 1000)]).to.deep.equal([0, 0]);
  });

  it('starts a new run after a gap of a window', () => {
    const l = make(2, 1000);
    l.fail('10.0.0.1', 'alice', 0);
    expect(l.fail('10.0.0.1', 'alice', 1000)).to.equal(null);
    expect(l.fail('10.0.0.1', 'alice', 1999)).to.equal('user');
  });

  it('counts an IPv6 /64 as one address, and an IPv4-mapped address as its IPv4 address', () => {
    const l = make(2);
    l.fail('2001:db8:1:2::10', 'alice', 0);
    l.fail('2001:db8:1:2:ffff::1', 'alice', 1);
    expect(l.isLocked('2001:db8:1:2::99', 'alice', 2)).to.equal(true);
    expect(l.isLocked('2001:db8:1:3::10', 'alice', 2)).to.equal(false);
    l.fail('::ffff:192.0.2.7', 'bob', 0);
    l.fail('192.0.2.7', 'bob', 1);
    expect(l.isLocked('192.0.2.7', 'bob', 2)).to.equal(true);
  });

  it("forgets a pair's failures on success, keeping it as a marker", () => {
    const l = make(2);
    l.fail('10.0.0.1', 'alice', 0);
    l.succeed('10.0.0.1', 'alice', 1);
    expect(l.fail('10.0.0.1', 'alice', 2)).to.equal(null);
    expect(l.size).to.equal(1);
  });

  it('never lifts a lockout to make room: junk names evict unlocked pairs only', () => {
    const l = make(2, 10_000, 10);
    l.fail('10.0.0.1', 'alice', 0);
    l.fail('10.0.0.1', 'alice', 1); // locked
    l.fail('10.0.0.9', 'carol', 2); // counting, oldest unlocked
    for (let i = 0; i < 50; i++) l.fail(`10.0.1.${i}`, `junk${i}`, 10 + i);
    expect(l.size).to.equal(10);
    expect(l.isLocked('10.0.0.1', 'alice', 100)).to.equal(true);
    // carol's count was evicted: she starts again.
    expect(l.fail('10.0.0.9', 'carol', 101)).to.equal(null);
  });

  it('lifts the oldest lockout to count a new pair when every entry is locked', () => {
    // Never fail open: a new pair is always counted. Filling the table with lockouts took a guess each.
    const l = make(1, 10_000, 2);
    expect([l.fail('10.0.0.1', 'a', 0), l.fail('10.0.0.2', 'b', 1)]).to.deep.equal(['user', 'user']);
    expect(l.fail('10.0.0.3', 'c', 2)).to.equal('user');
    expect([
      l.size,
      l.isLocked('10.0.0.1', 'a', 3),
      l.isLocked('10.0.0.2', 'b', 3),
      l.isLocked('10.0.0.3', 'c', 3),
    ]).to.deep.equal([2, false, true, true]);
  });

  it('counts the names of an address past its share in one overflow entry, which locks names it holds no pair for', () => {
    const l = make(3, 10_000, 1000, 4);
    l.fail('10.0.0.1', 'alice', 0); // alice holds a pair (counting)
    for (let i = 0; i < 3; i++) l.fail('10.0.0.1', `n${i}`, 1 + i); // the address's share is full now
    expect(l.size).to.equal(4);
    // Further names count together: three of them lock the overflow entry.
    expect([
      l.fail('10.0.0.1', 'x', 10),
      l.fail('10.0.0.1', 'y', 11),
      l.fail('10.0.0.1', 'z', 12),
    ]).to.deep.equal([null, null, 'address']);
    expect(l.size).to.equal(5);
    // Any name without a pair of its own is refused now (so a 403 tells nothing about which names exist);
    // alice, who has one and is not locked, is not; other addresses are not.
    expect([
      l.isLocked('10.0.0.1', 'bob', 13),
      l.isLocked('10.0.0.1', 'alice', 13),
      l.isLocked('10.0.0.2', 'bob', 13),
    ]).to.deep.equal([true, false, false]);
  });

  it('does not let the overflow refuse users who logged in from the address (markers)', () => {
    // One client behind a shared address sprays; users who got in from it within the window stay judged
    // by their own entry (clients re-AUTH well within the window, which keeps their marker).
    const l = make(3, 10_000, 1000, 2);
    l.succeed('10.0.0.1', 'bob', 0);
    l.fail('10.0.0.1', 'n0', 1);
    l.fail('10.0.0.1', 'n1', 2); // both slots taken
    for (let i = 0; i < 3; i++) l.fail('10.0.0.1', `x${i}`, 3 + i); // the overflow locks
    expect([l.isLocked('10.0.0.1', 'bob', 10), l.isLocked('10.0.0.1', 'carol', 10)]).to.deep.equal([
      false,
      true,
    ]);
    // bob mistypes: counted on his own entry, not refused.
    expect(l.fail('10.0.0.1', 'bob', 11)).to.equal(null);
  });

  it('starts a name that gets a slot of its own from the overflow count', () => {
    const l = make(3, 10_000, 1000, 1);
    l.fail('10.0.0.1', 'n0', 0); // the one slot
    l.fail('10.0.0.1', 'victim', 1);
    l.fail('10.0.0.1', 'victim', 2); // overflow at 2
    l.succeed('10.0.0.1', 'n0', 3); // frees the slot (n0 is a marker now)
    // victim's next failure opens a pair at the overflow's count: it locks at 3, not 3 failures later.
    expect(l.fail('10.0.0.1', 'victim', 4)).to.equal('user');
  });

  it('does not let fail() open a pair for a name the overflow refuses', () => {
    const l = make(1, 10_000, 1000, 1);
    expect(l.fail('10.0.0.1', 'n0', 0)).to.equal('user'); // the one slot, locked at once
    expect(l.fail('10.0.0.1', 'x', 1)).to.equal('address');
    expect(l.fail('10.0.0.1', 'y', 2)).to.equal(null); // refused by the overflow: no pair made
    expect(l.isLocked('10.0.0.1', 'y', 3)).to.equal(true);
  });

  it('keys a long user name by its hash, so entries stay small', () => {
    const l = make(2);
    const long = 'u'.repeat(15_000);
    l.fail('10.0.0.1', long, 0);
    expect(l.fail('10.0.0.1', long, 1)).to.equal('user');
    expect(l.isLocked('10.0.0.1', long, 2)).to.equal(true);
    expect(l.isLocked('10.0.0.1', 'u'.repeat(14_999), 2)).to.equal(false);
  });

  it('sweeps entries a window old, locked or not', () => {
    const l = make(2, 1000);
    l.fail('10.0.0.1', 'a', 0);
    l.fail('10.0.0.1', 'b', 600);
    l.fail('10.0.0.1', 'b', 700); // locked
    l.sweep(1000);
    expect(l.size).to.equal(1);
    l.sweep(1700);
    expect(l.size).to.equal(0);
  });

  it('does nothing with 0 failures', () => {
    const l = make(0);
    for (let i = 0; i < 5; i++) expect(l.fail('10.0.0.1', 'a', i)).to.equal(null);
    expect([l.isLocked('10.0.0.1', 'a', 5), l.size]).to.deep.equal([false, 0]);
  });
});
