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

/** Longer From-Path URIs are not learned (they are dialed as before): a relay's own are short. */
const MAX_URI_LENGTH = 256;

/** What one connection taught: its URIs, and the last From-Path URI seen on it (text and key). */
interface Learned {
  last: string;
  lastKey: string;
  keys: Set<string>;
}

/** A learned URI: the connection that carries it, and the certificate group it counts in. */
interface Entry<P> {
  peer: P;
  group: string;
}

export class ReturnPaths<P> {
  private readonly byUri = new Map<string, Entry<P>>();
  private readonly byPeer = new Map<P, Learned>();
  /** Keys by certificate (fingerprint), oldest first: every connection of one relay counts together. */
  private readonly byGroup = new Map<string, Set<string>>();

  /** `maxPerGroup`: URIs one relay (one certificate) may teach; past it the oldest is forgotten. */
  constructor(private readonly maxPerGroup: number) {}

  /** URIs known. */
  get size(): number {
    return this.byUri.size;
  }

  /**
   * A request from `peer`, a connection proven by the certificate `group` names, came with `first` as its
   * first From-Path URI (text as sent; `parse` reads it). The newest connection to bring a URI takes it.
   */
  learn(peer: P, group: string, first: string, parse: (text: string) => MsrpUri | null): void {
    let learned = this.byPeer.get(peer);
    // The usual case: the same session again, still carried here.
    if (learned !== undefined && learned.last === first && this.byUri.get(learned.lastKey)?.peer === peer)
      return;
    if (first.length > MAX_URI_LENGTH) return;
    const uri = parse(first);
    if (uri === null) return;
    const key = uriKey(uri);
    // A copy: `first` is cut from the request's header, which it would keep alive.
    const text = ownString(first);
    if (learned === undefined) {
      learned = { last: text, lastKey: key, keys: new Set() };
      this.byPeer.set(peer, learned);
    }
    learned.last = text;
    learned.lastKey = key;
    const before = this.byUri.get(key);
    if (before?.peer === peer) return;
    if (before !== undefined) this.drop(key, before);
    this.byUri.set(key, { peer, group });
    learned.keys.add(key);
    let keys = this.byGroup.get(group);
    if (keys === undefined) {
      keys = new Set();
      this.byGroup.set(group, keys);
    }
    keys.add(key);
    if (keys.size > this.maxPerGroup) {
      const oldest = keys.values().next().value!;
      this.drop(oldest, this.byUri.get(oldest)!);
    }
  }

  /** The connection that brought `uri`, if it has not closed since. */
  lookup(uri: MsrpUri): P | undefined {
    return this.byUri.size === 0 ? undefined : this.byUri.get(uriKey(uri))?.peer;
  }

  /** `peer` closed: what it taught is forgotten. */
  forget(peer: P): void {
    const learned = this.byPeer.get(peer);
    if (learned === undefined) return;
    for (const key of learned.keys) {
      const entry = this.byUri.get(key);
      if (entry?.peer === peer) this.drop(key, entry);
    }
    this.byPeer.delete(peer);
  }

  private drop(key: string, entry: Entry<P>): void {
    this.byUri.delete(key);
    this.byPeer.get(entry.peer)?.keys.delete(key);
    const keys = this.byGroup.get(entry.group);
    if (keys === undefined) return;
    keys.delete(key);
    if (keys.size === 0) this.byGroup.delete(entry.group);
  }
}
