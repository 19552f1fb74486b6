import { expect } from 'chai';
import { ExpiringKeys } from '../../lib/reports/expiring-keys.js';

describe('ExpiringKeys', () => {
  it('holds a key until its expiry, and drops it at that time', () => {
    const dropped: string[] = [];
    const keys = new ExpiringKeys(10, (k) => dropped.push(k));
    keys.add('a', 1000);
    keys.add('b', 1500);
    keys.expire(999);
    expect([keys.has('a'), keys.has('b'), keys.size]).to.deep.equal([true, true, 2]);
    keys.expire(1000);
    expect([keys.has('a'), keys.has('b'), keys.size]).to.deep.equal([false, true, 1]);
    keys.expire(1500);
    expect(keys.size).to.equal(0);
    expect(dropped).to.deep.equal(['a', 'b']);
  });

  it('drops the oldest key when one more than max is added', () => {
    const dropped: string[] = [];
    const keys = new ExpiringKeys(3, (k) => dropped.push(k));
    for (const k of ['a', 'b', 'c', 'd', 'e']) keys.add(k, 10_000);
    expect([...['a', 'b', 'c', 'd', 'e'].map((k) => keys.has(k))]).to.deep.equal([
      false,
      false,
      true,
      true,
      true,
    ]);
    expect(dropped).to.deep.equal(['a', 'b']);
  });

  it('renews a key that is added again: the old expiry no longer drops it', () => {
    const keys = new ExpiringKeys(10);
    keys.add('a', 1000);
    keys.add('b', 1200);
    keys.add('a', 2000);
    keys.expire(1500);
    expect([keys.has('a'), keys.has('b'), keys.expiry('a')]).to.deep.equal([true, false, 2000]);
    // Eviction order follows the renewal too: 'a' is now the newest.
    const small = new ExpiringKeys(2);
    small.add('a', 1);
    small.add('b', 2);
    small.add('a', 3);
    small.add('c', 4);
    expect([small.has('a'), small.has('b'), small.has('c')]).to.deep.equal([true, false, true]);
  });

  it('renews a key added again in the same millisecond: the oldest other key is evicted, not it', () => {
    const dropped: string[] = [];
    const keys = new ExpiringKeys(2, (k) => dropped.push(k));
    keys.add('a', 1000);
    keys.add('b', 1000);
    keys.add('a', 1000);
    keys.add('c', 1000);
    expect([keys.has('a'), keys.has('b'), keys.has('c')]).to.deep.equal([true, false, true]);
    expect(dropped).to.deep.equal(['b']); // a renewal is not a drop
  });

  it('deletes a key at once and tells onDrop', () => {
    const dropped: string[] = [];
    const keys = new ExpiringKeys(10, (k) => dropped.push(k));
    keys.add('a', 1000);
    keys.delete('a');
    keys.delete('a');
    keys.expire(5000);
    expect([keys.has('a'), dropped]).to.deep.equal([false, ['a']]);
  });

  it('keeps its queue proportional to the keys held under heavy churn', () => {
    const keys = new ExpiringKeys(100);
    let now = 0;
    for (let i = 0; i < 200_000; i++) {
      keys.add(`k${i % 150}`, ++now + 1000); // renewals and evictions
      if (i % 1000 === 0) keys.expire(now);
    }
    expect(keys.size).to.equal(100);
    const queue = (keys as unknown as { queueKeys: string[] }).queueKeys;
    expect(queue.length).to.be.at.most(2 * 100 + 1024 + 1);
  });

  it('evicts in constant time per key however many were evicted before', () => {
    // 400,000 adds through a full set of 100,000: with a scan from the front of a Map this never ends.
    const keys = new ExpiringKeys(100_000);
    for (let i = 0; i < 400_000; i++) keys.add(`session ${i}`, 1e12);
    expect(keys.size).to.equal(100_000);
    expect(keys.has('session 299999')).to.equal(false);
    expect(keys.has('session 300000')).to.equal(true);
  }).timeout(20_000);
});
