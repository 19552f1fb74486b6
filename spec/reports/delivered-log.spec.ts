import { expect } from 'chai';
import fc from 'fast-check';
import { DeliveredLog } from '../../lib/reports/delivered-log.js';

/**
 * The behaviour DeliveredLog keeps, written plainly: string keys in a Map, a ring of slots in write order
 * (renewal keeps a key's slot), the oldest slot evicted when the ring is full, expired keys dropped on
 * lookup and by expire() from the oldest up to the first live, unexpired one.
 */
class ModelLog {
  private readonly slotOf = new Map<string, number>();
  private readonly sessions = new Map<string, number>();
  private readonly keys: Array<[string, string] | undefined>;
  private readonly until: number[];
  private head = 0;
  private tail = 0;
  private window = 0;

  constructor(
    private readonly max: number,
    private readonly ttl: number,
  ) {
    this.keys = new Array<[string, string] | undefined>(max);
    this.until = new Array<number>(max).fill(0);
  }

  get size(): number {
    return this.slotOf.size;
  }

  remember(session: string, id: string, now: number): void {
    const old = this.slotOf.get(session + '\u0000' + id);
    if (old !== undefined) {
      this.until[old] = now + this.ttl;
      return;
    }
    if (this.window === this.max) this.advanceTail();
    const slot = this.head;
    this.keys[slot] = [session, id];
    this.until[slot] = now + this.ttl;
    this.slotOf.set(session + '\u0000' + id, slot);
    this.sessions.set(session, (this.sessions.get(session) ?? 0) + 1);
    this.head = (slot + 1) % this.max;
    this.window++;
  }

  has(session: string, id: string, now: number): boolean {
    const slot = this.slotOf.get(session + '\u0000' + id);
    if (slot === undefined) return false;
    if (this.until[slot]! <= now) {
      this.clear(slot);
      return false;
    }
    return true;
  }

  hasSession(session: string): boolean {
    return this.sessions.has(session);
  }

  expire(now: number): void {
    while (this.window > 0) {
      if (this.keys[this.tail] !== undefined && this.until[this.tail]! > now) return;
      this.advanceTail();
    }
  }

  private advanceTail(): void {
    if (this.keys[this.tail] !== undefined) this.clear(this.tail);
    this.tail = (this.tail + 1) % this.max;
    this.window--;
  }

  private clear(slot: number): void {
    const [session, id] = this.keys[slot]!;
    this.slotOf.delete(session + '\u0000' + id);
    const n = this.sessions.get(session)! - 1;
    if (n === 0) this.sessions.delete(session);
    else this.sessions.set(session, n);
    this.keys[slot] = undefined;
  }
}

type Op =
  | { op: 'remember' | 'has'; session: number; id: number; dt: number }
  | { op: 'expire'; dt: number }
  | { op: 'hasSession'; session: number };

const SESSIONS = ['msrp://a.example.com:2855/s1;tcp', 'msrp://a.example.com:2855/s2;tcp', 'ab', 'a', ''];
const idOf = (n: number): string => `Id${n}`;

describe('DeliveredLog', () => {
  it('remembers, renews, evicts the oldest and expires keys', () => {
    const log = new DeliveredLog(2, 1000);
    log.remember('s', 'm1', 0);
    log.remember('s', 'm2', 10);
    expect([log.has('s', 'm1', 20), log.has('s', 'm2', 20), log.has('t', 'm1', 20)]).to.deep.equal([
      true,
      true,
      false,
    ]);
    // Renewed in its slot: still the oldest, so the next key evicts it.
    log.remember('s', 'm1', 500);
    log.remember('s', 'm3', 600);
    expect([log.has('s', 'm1', 700), log.has('s', 'm2', 700), log.has('s', 'm3', 700)]).to.deep.equal([
      false,
      true,
      true,
    ]);
    expect(log.size).to.equal(2);
    log.expire(1010);
    expect(log.has('s', 'm2', 1010)).to.equal(false);
    expect([log.size, log.hasSession('s')]).to.deep.equal([1, true]);
    log.expire(1600);
    expect([log.size, log.hasSession('s')]).to.deep.equal([0, false]);
  });

  it('claims a key once while it lasts; a failed claim is not a delivered one for has()', () => {
    const log = new DeliveredLog(4, 1000);
    expect([
      log.claim('s', 'm1', 0, false),
      log.claim('s', 'm1', 10, false),
      log.claim('s', 'm1', 10, true),
    ]).to.deep.equal([true, false, false]);
    expect(log.has('s', 'm1', 20)).to.equal(true);
    expect([
      log.claim('s', 'f1', 0, true),
      log.has('s', 'f1', 20),
      log.claim('s', 'f1', 20, false),
    ]).to.deep.equal([true, false, false]);
    // Only delivered entries mark their session; forget() takes a claim back.
    expect([log.hasSession('s'), log.hasSession('t')]).to.deep.equal([true, false]);
    log.claim('t', 'f2', 0, true);
    expect(log.hasSession('t')).to.equal(false);
    log.forget('s', 'm1');
    expect([log.hasSession('s'), log.claim('s', 'm1', 30, false)]).to.deep.equal([false, true]);
    // Expired: claimed anew, in a new slot.
    expect([log.claim('s', 'm1', 1030, true), log.has('s', 'm1', 1031), log.size]).to.deep.equal([
      true,
      false,
      3,
    ]);
  });

  it('keeps keys that differ only in where the session ends apart', () => {
    const log = new DeliveredLog(10, 1000);
    log.remember('ab', 'c', 0);
    expect(log.has('a', 'bc', 1)).to.equal(false);
    expect(log.has('ab', 'c', 1)).to.equal(true);
  });

  it('behaves as the plain Map model over random operations, with table cells shifted on removal', () => {
    const op: fc.Arbitrary<Op> = fc.oneof(
      fc.record({
        op: fc.constantFrom('remember' as const, 'has' as const),
        session: fc.nat(SESSIONS.length - 1),
        id: fc.nat(40),
        dt: fc.nat(300),
      }),
      fc.record({ op: fc.constant('expire' as const), dt: fc.nat(600) }),
      fc.record({ op: fc.constant('hasSession' as const), session: fc.nat(SESSIONS.length - 1) }),
    );
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 12 }),
        fc.array(op, { maxLength: 300 }),
        fc.tuple(fc.integer(), fc.integer()),
        (max, ops, seeds) => {
          // The seeds are part of the counterexample, so a failure replays with the same table layout.
          const log = new DeliveredLog(max, 1000, seeds);
          const model = new ModelLog(max, 1000);
          let now = 0;
          for (const o of ops) {
            if (o.op === 'hasSession') {
              expect(log.hasSession(SESSIONS[o.session]!)).to.equal(model.hasSession(SESSIONS[o.session]!));
              continue;
            }
            now += o.dt;
            if (o.op === 'expire') {
              log.expire(now);
              model.expire(now);
            } else if (o.op === 'remember') {
              log.remember(SESSIONS[o.session]!, idOf(o.id), now);
              model.remember(SESSIONS[o.session]!, idOf(o.id), now);
            } else {
              const s = SESSIONS[o.session]!;
              expect(log.has(s, idOf(o.id), now), `has ${s} ${o.id}`).to.equal(model.has(s, idOf(o.id), now));
            }
            expect(log.size).to.equal(model.size);
          }
        },
      ),
      { numRuns: 300 },
    );
  });

  it('keeps the last keys findable through many evictions in a small table (runs wrap its end)', () => {
    const max = 4; // 8 cells: probe runs often cross from the last cell to the first
    const log = new DeliveredLog(max, 1000);
    for (let i = 0; i < 20_000; i++) {
      log.remember('s', `m${i}`, 0);
      for (let k = Math.max(0, i - max + 1); k <= i; k++) {
        if (!log.has('s', `m${k}`, 1)) expect.fail(`m${k} lost after m${i}`);
      }
      expect(log.size).to.equal(Math.min(i + 1, max));
    }
  });

  it('finds every one of many live keys (long probe runs)', () => {
    const max = 5000;
    const log = new DeliveredLog(max, 1000);
    for (let i = 0; i < 3 * max; i++) log.remember(`msrp://h/s${i % 7};tcp`, `m${i}`, 0);
    let found = 0;
    for (let i = 0; i < 3 * max; i++) if (log.has(`msrp://h/s${i % 7};tcp`, `m${i}`, 1)) found++;
    expect(found).to.equal(max);
    for (let i = 2 * max; i < 3 * max; i++)
      expect(log.has(`msrp://h/s${i % 7};tcp`, `m${i}`, 1)).to.equal(true);
  });
});
