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
import { pemCertificates } from '../util/pem.js';

/** Hosts whose answer one identity keeps (a relay's URIs name one or two hosts; a bound for the rest). */
const CHECKED_MAX = 16;

/** The host names a verified certificate proves, checked as TLS checks a server's (SAN, then CN). */
export class RelayIdentity {
  private readonly checked = new Map<string, boolean>();
  private chainVerdict: { trusted: readonly X509Certificate[]; ok: boolean } | null = null;

  constructor(private readonly cert: DetailedPeerCertificate) {}

  /**
   * True when this certificate is one of `trusted` or is signed, through the chain the peer sent, by one
   * of them: each link checked here (issuer name, signature, the issuer a CA within its dates), since
   * the chain Node hands back is rebuilt from what the peer sent, not the one OpenSSL verified, which
   * was checked against `--tls-ca` or Node's roots (review: a forged intermediate named after the
   * public root and pointing at the relay CA passed a fingerprint check). A dialed next hop's
   * certificate is thereby checked against `--relay-ca` too. Cached per `trusted` list.
   */
  chainsTo(trusted: readonly X509Certificate[], now = Date.now()): boolean {
    if (this.chainVerdict?.trusted === trusted) return this.chainVerdict.ok;
    const ok = verifyChain(this.cert, trusted, now);
    this.chainVerdict = { trusted, ok };
    return ok;
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

/** Longest chain followed from a peer's certificate toward a trusted one. */
const MAX_CHAIN = 8;

function verifyChain(
  leaf: DetailedPeerCertificate,
  trusted: readonly X509Certificate[],
  now: number,
): boolean {
  let node: DetailedPeerCertificate = leaf;
  let child: X509Certificate;
  try {
    child = new X509Certificate(leaf.raw);
  } catch {
    return false;
  }
  for (let depth = 0; depth < MAX_CHAIN; depth++) {
    for (const t of trusted) {
      if (child.fingerprint256 === t.fingerprint256 || signedBy(child, t, now)) return true;
    }
    const next: DetailedPeerCertificate | undefined = node.issuerCertificate;
    if (next === undefined || next === node || next.raw === undefined) return false;
    let parent: X509Certificate;
    try {
      parent = new X509Certificate(next.raw);
    } catch {
      return false;
    }
    if (!signedBy(child, parent, now)) return false;
    node = next;
    child = parent;
  }
  return false;
}

/** True when `issuer` is a CA, valid at `now`, whose name and key issued `child` and whose signature it bears. */
function signedBy(child: X509Certificate, issuer: X509Certificate, now: number): boolean {
  try {
    return (
      issuer.ca &&
      Date.parse(issuer.validFrom) <= now &&
      now <= Date.parse(issuer.validTo) &&
      child.checkIssued(issuer) &&
      child.verify(issuer.publicKey)
    );
  } catch {
    return false;
  }
}

/** The certificates in `ca` (PEM, one or several blocks per item), parsed; what does not parse is left out. */
export function caCertificates(
  ca: string | Buffer | ReadonlyArray<string | Buffer> | undefined,
): X509Certificate[] {
  const out: X509Certificate[] = [];
  const items = ca === undefined ? [] : Array.isArray(ca) ? ca : [ca as string | Buffer];
  for (const item of items) {
    const text = typeof item === 'string' ? item : item.toString('latin1');
    for (const pem of pemCertificates(text)) {
      try {
        out.push(new X509Certificate(pem));
      } catch {
        // not a certificate: TLS refuses it at start, nothing to trust here
      }
    }
  }
  return out;
}
