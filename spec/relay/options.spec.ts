import { expect } from 'chai';
import { resolveRelayOptions } from '../../lib/relay/options.js';

describe('resolveRelayOptions', () => {
  it('defaults the report policy to on-ack with dedupe over 10,000 delivered reports', () => {
    expect(resolveRelayOptions({}).reports).to.deep.equal({
      mode: 'on-ack',
      dedupe: true,
      dedupeEntries: 10_000,
      processing: false,
    });
  });

  it('passes --reports-dedupe-entries through to the report policy', () => {
    const r = resolveRelayOptions({ reports: 'on-receipt', reportsDedupeEntries: 250_000 }).reports;
    expect([r.mode, r.dedupeEntries]).to.deep.equal(['on-receipt', 250_000]);
  });
});
