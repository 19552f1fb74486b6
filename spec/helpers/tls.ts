/**
 * A self-signed certificate for localhost / 127.0.0.1, made once per test run with openssl (on every
 * machine of this project; .ci/run needs nothing more).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

let cached: { cert: Buffer; key: Buffer; certPath: string; keyPath: string } | undefined;

/** Certificate and key (PEM) valid for DNS:localhost and IP:127.0.0.1. */
export function testCertificate(): { cert: Buffer; key: Buffer; certPath: string; keyPath: string } {
  if (cached) return cached;
  const dir = mkdtempSync(join(tmpdir(), 'msrp-tls-'));
  const certPath = join(dir, 'cert.pem');
  const keyPath = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  cached = { cert: readFileSync(certPath), key: readFileSync(keyPath), certPath, keyPath };
  return cached;
}
