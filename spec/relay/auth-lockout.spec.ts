import { expect } from 'chai';
import { AuthLockout } from '../../lib/relay/auth-lockout.js';

describe('AuthLockout', () => {
  const make = (failures = 3, windowMs = 1000, maxEntries = 100): AuthLockout =>
    new AuthLockout({ failures, windowMs, maxEntries });

  it('locks a pair at the limit, and says so once', () => {
    const l = make();
    expect([l.fail('10.0.0.1', 'alice', 0), l.fail('10.0.0.1', 'alice', 10)]).to.deep.equal([false, false]);
    expect(l.isLocked('10.0.0.1', 'alice', 20)).to.equal(false);
    expect(l.fail('10.0.0.1', 'alice', 20)).to.equal(true);
    expect(l.isLocked('10.0.0.1', 'alice', 21)).to.equal(true);
    expect([l.isLocked('10.0.0.2', 'alice', 21), l.isLocked('10.0.0.1', 'bob', 21)]).to.deep.equal([
      false,
      false,
    ]);
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
  });

  it('starts a new run after a gap of a window', () => {
    const l = make(2, 1000);
    l.fail('10.0.0.1', 'alice', 0);
    expect(l.fail('10.0.0.1', 'alice', 1000)).to.equal(false);
    expect(l.fail('10.0.0.1', 'alice', 1999)).to.equal(true);
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
    expect(l.fail('10.0.0.1', 'alice', 1)).to.equal(false);
  });

  it('keeps at most maxEntries pairs, forgetting the least recently failed first', () => {
    const l = make(2, 1000, 3);
    l.fail('10.0.0.1', 'a', 0);
    l.fail('10.0.0.1', 'b', 1);
    l.fail('10.0.0.1', 'c', 2);
    l.fail('10.0.0.1', 'a', 3); // a is the newest now
    l.fail('10.0.0.1', 'd', 4); // b goes
    expect(l.size).to.equal(3);
    expect(l.isLocked('10.0.0.1', 'a', 5)).to.equal(true);
    expect(l.fail('10.0.0.1', 'b', 5)).to.equal(false);
  });

  it('sweeps pairs a window old', () => {
    const l = make(2, 1000);
    l.fail('10.0.0.1', 'a', 0);
    l.fail('10.0.0.1', 'b', 600);
    l.sweep(1000);
    expect(l.size).to.equal(1);
    l.sweep(1600);
    expect(l.size).to.equal(0);
  });

  it('does nothing with 0 failures', () => {
    const l = make(0);
    for (let i = 0; i < 5; i++) expect(l.fail('10.0.0.1', 'a', i)).to.equal(false);
    expect([l.isLocked('10.0.0.1', 'a', 5), l.size]).to.deep.equal([false, 0]);
  });
});
