import { expect } from 'chai';
import { QueueBudget } from '../../lib/relay/outbound-writer.js';

describe('QueueBudget', () => {
  it('is under pressure past its total until back under half, with the floor as the limit meanwhile', () => {
    const b = new QueueBudget(1000, 64);
    b.add(900);
    expect([b.pressing, b.limit(500)]).to.deep.equal([false, 500]);
    b.add(200); // 1,100
    expect([b.pressing, b.limit(500), b.limit(10)]).to.deep.equal([true, 64, 10]);
    b.sub(600); // 500: not under half yet
    expect(b.pressing).to.equal(true);
    b.sub(1); // 499
    expect([b.pressing, b.limit(500)]).to.deep.equal([false, 500]);
  });

  it('ends its pressure for totals past 2 GiB too (a 32-bit shift made half of 4 GiB 0)', () => {
    const gib = 1024 ** 3;
    const b = new QueueBudget(8 * gib, 64 * 1024);
    b.add(9 * gib);
    expect(b.pressing).to.equal(true);
    b.sub(6 * gib); // 3 GiB, under half of 8
    expect(b.pressing).to.equal(false);
  });
});
