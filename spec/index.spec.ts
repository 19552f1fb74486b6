import { expect } from 'chai';
import * as api from '../lib/index.js';

describe('public API (lib/index.ts)', () => {
  it('exports the relay, the client, the codec and the load tester', () => {
    for (const name of [
      'createRelay',
      'MsrpEndpoint',
      'MsrpParser',
      'parseUri',
      'serializeRequest',
      'runLoad',
    ]) {
      expect(typeof (api as Record<string, unknown>)[name], name).to.equal('function');
    }
  });

  it('starts a relay that a client authenticates to, through the package entry point only', async () => {
    const relay = api.createRelay({ listen: [{ host: '127.0.0.1', port: 0 }], auth: false });
    await relay.listen();
    const { port } = relay.addresses()[0]!;
    const ep = await api.MsrpEndpoint.connect({ host: '127.0.0.1', port });
    const res = await ep.auth({ relayUri: `msrp://127.0.0.1:${port};tcp` });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    expect(ep.usePath).to.have.length(1);
    await ep.close();
    await relay.close(100);
  });
});
