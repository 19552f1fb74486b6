/**
 * RelayIdentity.chainsTo: a dialed next hop counts as a relay of ours only when its certificate is, or is
 * signed through the chain it sent by, a `--relay-ca` certificate, each link's signature checked: Node
 * rebuilds the chain it hands back from what the peer sent, so a fingerprint found in it proves nothing
 * (review of af3063f: a forged intermediate named after the public root, pointing at the relay CA).
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { DetailedPeerCertificate } from 'node:tls';
import { caCertificates, RelayIdentity } from '../../lib/relay/relay-identity.js';
import { tempDir } from '../helpers/temp.js';

/** Runs openssl in `dir`. */
function ssl(dir: string, ...args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A self-signed CA `name` (key `<file>.key`, certificate `<file>.pem`). */
function ca(dir: string, file: string, name: string): void {
  ssl(
    dir,
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-keyout',
    `${file}.key`,
    '-out',
    `${file}.pem`,
  );
}

/** Certificate `<file>.pem` for the key of `<keyFile>.key`, subject `name`, signed by `<by>`. */
function issue(dir: string, file: string, keyFile: string, name: string, by: string, ext: string): void {
  writeFileSync(join(dir, `${file}.ext`), ext);
  ssl(dir, 'req', '-new', '-key', `${keyFile}.key`, '-subj', `/CN=${name}`, '-out', `${file}.csr`);
  ssl(
    dir,
    'x509',
    '-req',
    '-in',
    `${file}.csr`,
    '-CA',
    `${by}.pem`,
    '-CAkey',
    `${by}.key`,
    '-days',
    '2',
    '-set_serial',
    String(Math.floor(Math.random() * 1e9)),
    '-extfile',
    `${file}.ext`,
    '-out',
    `${file}.pem`,
  );
}

/** The chain as Node hands it back: each certificate with `issuerCertificate` the next, the last its own. */
function chain(dir: string, ...files: string[]): DetailedPeerCertificate {
  const certs = files.map((f) => new X509Certificate(readFileSync(join(dir, `${f}.pem`))));
  const nodes = certs.map(
    (c) => ({ raw: c.raw, fingerprint256: c.fingerprint256 }) as DetailedPeerCertificate,
  );
  nodes.forEach((n, i) => (n.issuerCertificate = nodes[i + 1] ?? n));
  return nodes[0]!;
}

describe('RelayIdentity.chainsTo (--relay-ca for a dialed next hop)', () => {
  const dir = tempDir('msrp-chain-');
  before(function () {
    this.timeout(20_000);
    ca(dir, 'relayca', 'Relay CA');
    ca(dir, 'public', 'Public Root');
    ca(dir, 'fakeca', 'Relay CA'); // another key under the relay CA's name
    ssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'leaf.key');
    const leafExt = 'subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n';
    issue(dir, 'public-leaf', 'leaf', 'localhost', 'public', leafExt);
    issue(dir, 'relay-leaf', 'leaf', 'localhost', 'relayca', leafExt);
    ssl(dir, 'genpkey', '-algorithm', 'EC', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-out', 'mid.key');
    issue(dir, 'mid', 'mid', 'Relay Intermediate', 'relayca', 'basicConstraints=critical,CA:TRUE\n');
    issue(dir, 'mid-leaf', 'leaf', 'localhost', 'mid', leafExt);
    // The forgery: the public root's name and key, "issued" by a CA named like the relay CA.
    issue(dir, 'forged', 'public', 'Public Root', 'fakeca', 'basicConstraints=critical,CA:TRUE\n');
  });
  const trusted = (): X509Certificate[] => caCertificates(readFileSync(join(dir, 'relayca.pem')));

  it('takes a certificate the relay CA signed, directly or through an intermediate it sent', () => {
    const direct = new RelayIdentity(chain(dir, 'relay-leaf', 'relayca'));
    const viaMid = new RelayIdentity(chain(dir, 'mid-leaf', 'mid', 'relayca'));
    expect([direct.chainsTo(trusted()), viaMid.chainsTo(trusted())]).to.deep.equal([true, true]);
  });

  it('refuses one the public root signed, and a forged chain that names the relay CA', () => {
    const publicOnly = new RelayIdentity(chain(dir, 'public-leaf', 'public'));
    const forged = new RelayIdentity(chain(dir, 'public-leaf', 'forged', 'relayca'));
    expect([publicOnly.chainsTo(trusted()), forged.chainsTo(trusted())]).to.deep.equal([false, false]);
  });

  it('takes a trusted certificate itself (a self-signed relay certificate given as --relay-ca)', () => {
    const self = new RelayIdentity(chain(dir, 'relayca'));
    expect(self.chainsTo(trusted())).to.equal(true);
    expect(self.chainsTo(caCertificates(readFileSync(join(dir, 'public.pem'))))).to.equal(false);
  });
});
