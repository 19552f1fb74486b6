/**
 * Self-signed certificates for localhost / 127.0.0.1, made once per test run with openssl (on every
 * machine of this project; .ci/run needs nothing more).
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { tempDir } from './temp.js';

/** A certificate and its key, PEM, with the files they were read from. */
export interface TestCertificate {
  cert: Buffer;
  key: Buffer;
  certPath: string;
  keyPath: string;
}

const cached = new Map<string, TestCertificate>();

/**
 * A certificate and key valid for DNS:localhost and IP:127.0.0.1, for two days. Each `commonName` gets
 * a certificate (and key) of its own: `otherCertificate()` is a second one, for replacing the first.
 */
export function testCertificate(commonName = 'localhost', keyType: 'rsa' | 'ec' = 'rsa'): TestCertificate {
  const known = cached.get(commonName);
  if (known !== undefined) return known;
  const dir = tempDir('msrp-tls-');
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      ...(keyType === 'rsa' ? ['rsa:2048'] : ['ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1']),
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${commonName}`,
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  const made = { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
  cached.set(commonName, made);
  return made;
}

/** A second certificate for localhost, with its own key (CN `localhost-renewed`). */
export function otherCertificate(): TestCertificate {
  return testCertificate('localhost-renewed');
}

/** A certificate for localhost with an EC (P-256) key (CN `localhost-ec`). */
export function ecCertificate(): TestCertificate {
  return testCertificate('localhost-ec', 'ec');
}

/** The SHA-256 fingerprint of the certificate a TLS server on 127.0.0.1:`port` presents now. */
export function presentedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      const fp = socket.getPeerCertificate().fingerprint256;
      socket.end();
      resolve(fp);
    });
    socket.setTimeout(5000, () => socket.destroy(new Error('TLS handshake timed out')));
    socket.once('error', reject);
  });
}

/** The SHA-256 fingerprint of a PEM certificate, as `getPeerCertificate()` spells it. */
export function fingerprintOf(pem: Buffer): string {
  return new X509Certificate(pem).fingerprint256;
}
