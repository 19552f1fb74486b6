import { expect } from 'chai';
import { randomBytes } from 'node:crypto';
import { getHeader } from '../../lib/msrp/message.js';
import { parseUri } from '../../lib/msrp/uri.js';
import type { RelayOptions } from '../../lib/relay/relay.js';
import { Harness, nextMessage, USERS } from '../helpers/relay.js';
import {
  ecCertificate,
  fingerprintOf,
  otherCertificate,
  presentedFingerprint,
  testCertificate,
} from '../helpers/tls.js';
import { portOf, wssRelayOptions } from '../helpers/ws.js';

function tlsRelayOptions(): RelayOptions {
  const { cert, key } = testCertificate();
  return { listen: [], tlsListen: [{ host: '127.0.0.1', port: 0 }], tls: { cert, key, ca: cert } };
}

describe('relay over TLS (msrps)', () => {
  const h = new Harness();
  afterEach(() => h.cleanup());

  it('authenticates over TLS and hands out an msrps Use-Path', async () => {
    const relay = await h.relay(tlsRelayOptions());
    const ep = await h.connect(relay, { tls: { ca: testCertificate().cert, servername: 'localhost' } });
    const res = await ep.auth({
      relayUri: `msrps://alice@127.0.0.1:${relay.addresses()[0]!.port};tcp`,
      username: 'alice',
      password: USERS.alice,
    });
    expect(res.kind === 'response' && res.statusCode).to.equal(200);
    const usePath = parseUri(getHeader(res.headers, 'use-path')!);
    expect(usePath.scheme).to.equal('msrps');
    expect(usePath.port).to.equal(relay.addresses()[0]!.port);
  });

  it('carries a 1 MiB file between two TLS relays chained over msrps', async () => {
    const r1 = await h.relay(tlsRelayOptions());
    const r2 = await h.relay(tlsRelayOptions());
    const tls = { ca: testCertificate().cert, servername: 'localhost' };
    const alice = await h.connect(r1, { tls });
    await alice.auth({
      relayUri: `msrps://alice@127.0.0.1:${r1.addresses()[0]!.port};tcp`,
      username: 'alice',
      password: USERS.alice,
    });
    const bob = await h.connect(r2, { tls });
    await bob.auth({
      relayUri: `msrps://bob@127.0.0.1:${r2.addresses()[0]!.port};tcp`,
      username: 'bob',
      password: USERS.bob,
    });
    const file = randomBytes(1024 * 1024);
    const got = nextMessage(bob, 10_000);
    const res = await alice.send({ toPath: alice.toPathFor(bob.path), body: file, chunkSize: 64 * 1024 });
    expect(res.statuses.every((s) => s === 200)).to.equal(true);
    expect((await got).body.equals(file)).to.equal(true);
  });

  it('presents a replaced certificate from the next handshake on, TLS and WSS, and keeps live connections', async () => {
    const first = testCertificate();
    const renewed = otherCertificate();
    const relay = await h.relay(wssRelayOptions());
    const tlsPort = portOf(relay, 'tls');
    const wssPort = portOf(relay, 'wss');
    expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(first.cert));
    const ep = await h.connect(relay, { tls: { ca: [first.cert, renewed.cert], servername: 'localhost' } });
    const relayUri = `msrps://alice@127.0.0.1:${tlsPort};tcp`;
    const before = await ep.auth({ relayUri, username: 'alice', password: USERS.alice });
    expect(before.kind === 'response' && before.statusCode).to.equal(200);

    relay.setTlsCredentials({ cert: renewed.cert, key: renewed.key });

    expect(await presentedFingerprint(tlsPort)).to.equal(fingerprintOf(renewed.cert));
    expect(await presentedFingerprint(wssPort)).to.equal(fingerprintOf(renewed.cert));
    expect(relay.tlsCertificate()?.fingerprint256).to.equal(fingerprintOf(renewed.cert));
    expect(relay.tlsCertificate()?.subject).to.equal('CN=localhost-renewed');
    // The connection made before the swap still carries requests.
    const again = await ep.auth({ relayUri, username: 'alice', password: USERS.alice });
    expect(again.kind === 'response' && again.statusCode).to.equal(200);
    expect(ep.isClosed).to.equal(false);
  });

  it('refuses a certificate with another certificate’s key and keeps presenting the old one', async () => {
    const first = testCertificate();
    const renewed = otherCertificate();
    const relay = await h.relay(tlsRelayOptions());
    const port = portOf(relay, 'tls');
    expect(() => relay.setTlsCredentials({ cert: renewed.cert, key: first.key })).to.throw();
    // OpenSSL itself loads a certificate with a key of another type, then fails every handshake.
    expect(() => relay.setTlsCredentials({ cert: ecCertificate().cert, key: first.key })).to.throw(
      /not the certificate's own/,
    );
    expect(await presentedFingerprint(port)).to.equal(fingerprintOf(first.cert));
    expect(relay.tlsCertificate()?.fingerprint256).to.equal(fingerprintOf(first.cert));
  });

  it('reports no certificate without a TLS or WSS listener, even with TLS material', async () => {
    const { cert, key } = testCertificate();
    expect((await h.relay()).tlsCertificate()).to.equal(null);
    expect((await h.relay({ tls: { cert, key } })).tlsCertificate()).to.equal(null);
  });
});
