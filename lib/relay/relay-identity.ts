/**
 * A relay proven by its TLS certificate (RFC 4976 §6.2, digest §2.5, §2.6). On an accepted TLS
 * connection, a client certificate that verifies against `--relay-ca` makes the peer a relay, whose host
 * names are the certificate's; on a connection this relay dialed over `msrps`, the next hop's server
 * certificate, checked for the host dialed, proves the same. What such a relay is granted: the tokens of
 * the AUTHs it forwarded live on past its connection and serve any connection of its (§2.6 step 4).
 */
import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { checkServerIdentity, type DetailedPeerCertificate, type PeerCertificate } from 'node:tls';
import { hostKey } from '../msrp/uri.js';
import type { Connection } from '../transport/connection.js';

/** Hosts whose answer one identity keeps (a relay's URIs name one or two hosts; a bound for the rest). */
const CHECKED_MAX = 16;

/** The host names a verified certificate proves, checked as TLS checks a server's (SAN, then CN). */
export class RelayIdentity {
  private readonly checked = new Map<string, boolean>();

  constructor(private readonly cert: DetailedPeerCertificate) {}

  /**
   * True when one of the certificates the handshake verified this one by (itself, its issuers up to the
   * trusted root) has a fingerprint in `trusted`. A dialed next hop's certificate is verified against
   * `--tls-ca` and Node's roots; this tells whether it also chains to a `--relay-ca` CA.
   */
  chainsTo(trusted: ReadonlySet<string>): boolean {
    let c: DetailedPeerCertificate | undefined = this.cert;
    for (let depth = 0; c !== undefined && depth < 10; depth++) {
      if (trusted.has(c.fingerprint256)) return true;
      if (c.issuerCertificate === c) break; // a self-signed root points at itself
      c = c.issuerCertificate;
    }
    return false;
  }

  /** The certificate's SHA-256 fingerprint: what its relay's tokens are counted by. */
  get fingerprint(): string {
    return this.cert.fingerprint256;
  }

  /** The certificate's subject names, for logs: its subjectAltName, else its CN. */
  get names(): string {
    return this.cert.subjectaltname ?? `CN=${String(this.cert.subject?.CN ?? '')}`;
  }

  /** True when the certificate is valid for `host` (a URI host: a name, an IPv4 or a bracketed IPv6). */
  matches(host: string): boolean {
    const key = hostKey(host);
    const known = this.checked.get(key);
    if (known !== undefined) return known;
    const bare = key.startsWith('[') ? key.slice(1, -1) : key;
    // An IPv6 literal that hostKey could not canonicalize, or a name with escapes left, is no host.
    const ok = (key.startsWith('[') ? isIP(bare) === 6 : !bare.includes('%')) && verify(bare, this.cert);
    if (this.checked.size < CHECKED_MAX) this.checked.set(key, ok);
    return ok;
  }
}

function verify(host: string, cert: PeerCertificate): boolean {
  try {
    return checkServerIdentity(host, cert) === undefined;
  } catch {
    return false;
  }
}

/** The identity a connection's peer proved with its certificate (see {@link Connection.verifiedCertificate}), or null. */
export function verifiedIdentity(conn: Connection): RelayIdentity | null {
  const cert = conn.verifiedCertificate?.() ?? null;
  return cert === null ? null : new RelayIdentity(cert);
}

/** The SHA-256 fingerprints of the certificates in `ca` (PEM, one or several blocks per item). */
export function caFingerprints(
  ca: string | Buffer | ReadonlyArray<string | Buffer> | undefined,
): Set<string> {
  const out = new Set<string>();
  const items = ca === undefined ? [] : Array.isArray(ca) ? ca : [ca as string | Buffer];
  for (const item of items) {
    const text = typeof item === 'string' ? item : item.toString('latin1');
    for (const pem of text.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []) {
      try {
        out.add(new X509Certificate(pem).fingerprint256);
      } catch {
        // not a certificate: TLS refuses it at start, nothing to trust here
      }
    }
  }
  return out;
}
