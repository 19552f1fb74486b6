import { expect } from 'chai';
import { uncorkAfterTurn } from '../../lib/io/uncork.js';

describe('uncorkAfterTurn', () => {
  it('uncorks every target once, after the I/O callbacks of the turn', async () => {
    const order: string[] = [];
    const a = { uncork: () => order.push('a') };
    const b = { uncork: () => order.push('b') };
    uncorkAfterTurn(a);
    uncorkAfterTurn(b);
    process.nextTick(() => order.push('tick'));
    await new Promise((resolve) => setImmediate(resolve));
    expect(order).to.deep.equal(['tick', 'a', 'b']);
  });

  it('still uncorks the other targets when one throws, then lets the error go on', async () => {
    const uncorked: string[] = [];
    const errors: unknown[] = [];
    const onError = (err: unknown): void => {
      errors.push(err);
    };
    // The error surfaces from the immediate, as any exception in a callback would.
    const listeners = process.listeners('uncaughtException');
    process.removeAllListeners('uncaughtException');
    process.on('uncaughtException', onError);
    try {
      uncorkAfterTurn({ uncork: () => uncorked.push('first') });
      uncorkAfterTurn({
        uncork: () => {
          throw new Error('boom');
        },
      });
      uncorkAfterTurn({ uncork: () => uncorked.push('third') });
      await new Promise((resolve) => setTimeout(resolve, 20));
    } finally {
      process.removeListener('uncaughtException', onError);
      for (const l of listeners) process.on('uncaughtException', l);
    }
    expect(uncorked).to.deep.equal(['first', 'third']);
    expect((errors[0] as Error).message).to.equal('boom');
    // The batching still works afterwards.
    let later = false;
    uncorkAfterTurn({ uncork: () => (later = true) });
    await new Promise((resolve) => setImmediate(resolve));
    expect(later).to.equal(true);
  });
});
