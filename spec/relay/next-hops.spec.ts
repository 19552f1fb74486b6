import { expect } from 'chai';
import { createServer } from 'node:net';
import { rootCertificates } from 'node:tls';
import { parseUri } from '../../lib/msrp/uri.js';
import { NextHops } from '../../lib/relay/next-hops.js';
import type { Peer } from '../../lib/relay/peer.js';
import type { StreamConnection } from '../../lib/transport/connection.js';
import { testCertificate } from '../helpers/tls.js';

/** A port nothing listens on (bound, then closed). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('NextHops (relay chaining, RFC 4976 §6.4)', function () {
  this.timeout(10_000);

  it('builds one TLS context for every msrps dial, and a new one when the CAs change', async () => {
    // Built per dial, a context parsed every bundled root: 12-22 ms of CPU and ~0.5 MB kept per dial,
    // one dial per SEND while a next relay refused connections.
    const hops = new NextHops({ ca: [...rootCertificates, testCertificate().cert] });
    const conns: StreamConnection[] = [];
    const dialOnce = async (): Promise<void> => {
      const port = await closedPort();
      const closed = new Promise<void>((resolve) => {
        hops.dial(parseUri(`msrps://127.0.0.1:${port}/x;tcp`), (conn, key) => {
          conns.push(conn);
          conn.attach({ onData: () => {}, onDrain: () => {}, onClose: () => resolve() });
          return { closing: false, isClosed: false, established: false, dialKey: key } as unknown as Peer;
        });
      });
      await closed;
    };
    for (let i = 0; i < 3; i++) await dialOnce();
    expect(conns).to.have.length(3);
    expect(hops.contextsMade).to.equal(1);
    hops.setCa(undefined);
    await dialOnce();
    expect(hops.contextsMade).to.equal(2);
  });
});
