/**
 * Which connection, opened to us by a relay its client certificate proved (`--relay-ca`), carries each
 * URI of that relay: a request toward one of them goes back over that connection instead of a new dial
 * to the URI's authority. RFC 4976 lets a relay send on any connection to the next relay (digest §2.6
 * step 7), and a relay that binds each connection to one session (AG Projects' msrprelay,
 * docs/architecture.md "Interoperability") takes a session's return traffic only on the connection it
 * opened for it. Learned only from requests on such connections, whose first From-Path URI the relay
 * checked against the certificate (`fromAllowed`): a stranger's From-Path would otherwise divert traffic
 * meant for that relay to the stranger.
 */
import { uriKey, type MsrpUri } from '../msrp/uri.js';
import { ownString } from '../util/own-string.js';

/** What one connection taught: its URIs, oldest first, and the last From-Path URI text seen on it. */
interface Learned {
  last: string;
  keys: Set<string>;
}

export class ReturnPaths<P> {
  private readonly byUri = new Map<string, P>();
  private readonly byPeer = new Map<P, Learned>();

  /** `maxPerPeer`: URIs one connection may teach; past it the oldest it taught is forgotten. */
  constructor(private readonly maxPerPeer: number) {}

  /** URIs known. */
  get size(): number {
    return this.byUri.size;
  }

  /**
   * A request from `peer`, a proven relay's own connection, came with `first` as its first From-Path
   * URI (text as sent; `parse` reads it). The newest connection to bring a URI takes it.
   */
  learn(peer: P, first: string, parse: (text: string) => MsrpUri | null): void {
    let learned = this.byPeer.get(peer);
    if (learned !== undefined && learned.last === first) return; // the usual case: same session again
    const uri = parse(first);
    if (uri === null) return;
    // A copy: `first` is cut from the request's header, which it would keep alive.
    const text = ownString(first);
    if (learned === undefined) {
      learned = { last: text, keys: new Set() };
      this.byPeer.set(peer, learned);
    }
    learned.last = text;
    const key = uriKey(uri);
    const before = this.byUri.get(key);
    if (before === peer) return;
    if (before !== undefined) this.byPeer.get(before)?.keys.delete(key);
    this.byUri.set(key, peer);
    learned.keys.add(key);
    if (learned.keys.size > this.maxPerPeer) {
      const oldest = learned.keys.values().next().value!;
      learned.keys.delete(oldest);
      this.byUri.delete(oldest);
    }
  }

  /** The connection that brought `uri`, if it has not closed since. */
  lookup(uri: MsrpUri): P | undefined {
    return this.byUri.size === 0 ? undefined : this.byUri.get(uriKey(uri));
  }

  /** `peer` closed: what it taught is forgotten. */
  forget(peer: P): void {
    const learned = this.byPeer.get(peer);
    if (learned === undefined) return;
    for (const key of learned.keys) if (this.byUri.get(key) === peer) this.byUri.delete(key);
    this.byPeer.delete(peer);
  }
}
