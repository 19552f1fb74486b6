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

  it('forgets a pair on success', () => {
    const l = make(2);
    l.fail('10.0.0.1', 'alice', 0);
    l.succeed('10.0.0.1', 'alice');
    expect(l.fail('10.0.0.1', 'alice', 1)).to.equal(null);
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

  it('does not count a new pair when every entry is locked', () => {
    const l = make(1, 10_000, 2);
    expect([l.fail('10.0.0.1', 'a', 0), l.fail('10.0.0.2', 'b', 1)]).to.deep.equal(['user', 'user']);
    expect(l.fail('10.0.0.3', 'c', 2)).to.equal(null);
    expect([l.size, l.isLocked('10.0.0.1', 'a', 3), l.isLocked('10.0.0.3', 'c', 3)]).to.deep.equal([
      2,
      true,
      false,
    ]);
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
