/**
 * Use-Path tokens (RFC 4976 §5.1, §6.4): the session-id part of a relay URI handed out in the 200 to
 * AUTH. A token is unguessable (≈119 random bits), bound to the connection the AUTH arrived on and to
 * the client URI that authenticated, and dies at its Expires or when that connection closes.
 */
import type { MsrpUri } from '../msrp/uri.js';
import { randomId } from '../msrp/serializer.js';

/** One issued Use-Path token. */
export interface Token<P> {
  /** The session-id of the relay URI. */
  readonly id: string;
  /** The relay URI as handed out in Use-Path. */
  readonly uri: string;
  /** The connection (peer) the AUTH arrived on; requests toward the client go there. */
  readonly owner: P;
  /** The client's URI (the AUTH From-Path), as written and parsed. */
  readonly clientUri: string;
  readonly clientParsed: MsrpUri;
  /** The authenticated user name ('' when authentication is off). */
  readonly username: string;
  /** Expiry, ms since the epoch. */
  readonly expiresAt: number;
}

/** Tokens one client connection may hold at once (a client normally needs one per session). */
export const MAX_TOKENS_PER_OWNER = 64;

/**
 * Where a token counts against a cap: a client's connection holds at most {@link MAX_TOKENS_PER_OWNER};
 * the tokens of AUTHs another relay forwarded (RFC 4976 §5.1: one per client behind it) count in a
 * group of their own with a cap of its own (`--max-relayed-tokens`). Past its cap, a group's oldest
 * token is revoked.
 */
export interface TokenCap {
  readonly group: unknown;
  readonly max: number;
}

/** The live tokens of one relay. */
export class TokenTable<P> {
  private readonly tokens = new Map<string, Token<P>>();
  private readonly byOwner = new Map<P, Set<string>>();
  /** Token ids by cap group, oldest first; with each token's group in {@link groupOf}. */
  private readonly groups = new Map<unknown, Set<string>>();
  private readonly groupOf = new Map<string, unknown>();

  /** Number of live (not yet swept) tokens. */
  get size(): number {
    return this.tokens.size;
  }

  /**
   * Issues a token for `owner`; `makeUri` turns the token id into the Use-Path URI. It counts against
   * `cap` (default: the owner's {@link MAX_TOKENS_PER_OWNER}).
   */
  issue(
    owner: P,
    client: { uri: string; parsed: MsrpUri },
    username: string,
    expiresAt: number,
    makeUri: (id: string) => string,
    cap: TokenCap = { group: owner, max: MAX_TOKENS_PER_OWNER },
  ): Token<P> {
    const id = randomId(20);
    const token: Token<P> = {
      id,
      uri: makeUri(id),
      owner,
      clientUri: client.uri,
      clientParsed: client.parsed,
      username,
      expiresAt,
    };
    this.tokens.set(id, token);
    let set = this.byOwner.get(owner);
    if (set === undefined) this.byOwner.set(owner, (set = new Set()));
    set.add(id);
    let group = this.groups.get(cap.group);
    if (group === undefined) this.groups.set(cap.group, (group = new Set()));
    group.add(id);
    this.groupOf.set(id, cap.group);
    // Bounded per group: past the cap the oldest token of the group is revoked.
    if (group.size > cap.max) {
      const oldest = this.tokens.get(group.values().next().value!);
      if (oldest !== undefined) this.delete(oldest);
    }
    return token;
  }

  /** The live token with this id, or undefined when unknown or expired. */
  get(id: string, now = Date.now()): Token<P> | undefined {
    const t = this.tokens.get(id);
    if (t === undefined) return undefined;
    if (t.expiresAt <= now) {
      this.delete(t);
      return undefined;
    }
    return t;
  }

  /** True when `owner` holds at least one live token. */
  hasOwner(owner: P): boolean {
    return (this.byOwner.get(owner)?.size ?? 0) > 0;
  }

  /** Drops every token of `owner` (its connection closed: RFC 4976 §6.4 binds tokens to it). */
  dropOwner(owner: P): number {
    const set = this.byOwner.get(owner);
    if (set === undefined) return 0;
    for (const id of set) {
      this.tokens.delete(id);
      this.leaveGroup(id);
    }
    this.byOwner.delete(owner);
    return set.size;
  }

  /** Removes expired tokens; returns how many. */
  sweep(now = Date.now()): number {
    let n = 0;
    for (const t of this.tokens.values()) {
      if (t.expiresAt <= now) {
        this.delete(t);
        n++;
      }
    }
    return n;
  }

  private delete(t: Token<P>): void {
    this.tokens.delete(t.id);
    this.leaveGroup(t.id);
    const set = this.byOwner.get(t.owner);
    set?.delete(t.id);
    if (set?.size === 0) this.byOwner.delete(t.owner);
  }

  private leaveGroup(id: string): void {
    const key = this.groupOf.get(id);
    this.groupOf.delete(id);
    const group = this.groups.get(key);
    group?.delete(id);
    if (group?.size === 0) this.groups.delete(key);
  }
}
