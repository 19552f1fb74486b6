/**
 * Use-Path tokens (RFC 4976 §5.1, §6.4): the session-id part of a relay URI handed out in the 200 to
 * AUTH. A token is unguessable (≈119 random bits), bound to the connection the AUTH arrived on and to
 * the client URI that authenticated, and dies at its Expires or when that connection closes; except one
 * granted through a relay proven by its certificate (digest §2.6 step 4), which is bound to that relay:
 * it outlives its connection (ownerless until another of that relay's takes it, {@link TokenTable.rebind}).
 */
import type { MsrpUri } from '../msrp/uri.js';
import { randomId } from '../msrp/serializer.js';

/** One issued Use-Path token. */
export interface Token<P> {
  /** The session-id of the relay URI. */
  readonly id: string;
  /** The relay URI as handed out in Use-Path. */
  readonly uri: string;
  /**
   * The connection (peer) the AUTH arrived on, or the one of its relay that took it since; requests
   * toward the client go there. Null for a relay-bound token whose connection closed.
   */
  readonly owner: P | null;
  /**
   * For a token granted through a relay proven by its certificate: that relay's host (`hostKey` of the
   * client URI's host). Undefined for a token bound to its connection.
   */
  readonly relay?: string;
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
    relay?: string,
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
      ...(relay !== undefined && { relay }),
    };
    this.tokens.set(id, token);
    this.own(owner, id);
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

  /**
   * Hands relay-bound `token` to `owner`, another connection of its relay, and returns the token as it
   * is now: a new object (route memos holding the old one see it changed).
   */
  rebind(token: Token<P>, owner: P): Token<P> {
    if (token.relay === undefined || this.tokens.get(token.id) !== token || token.owner === owner)
      return token;
    this.disown(token);
    const moved: Token<P> = { ...token, owner };
    this.tokens.set(token.id, moved);
    this.own(owner, token.id);
    return moved;
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

  /**
   * Drops every token of `owner` (its connection closed: RFC 4976 §6.4 binds tokens to it); relay-bound
   * ones are kept, ownerless. Returns how many it held.
   */
  dropOwner(owner: P): number {
    const set = this.byOwner.get(owner);
    if (set === undefined) return 0;
    for (const id of set) {
      const t = this.tokens.get(id);
      if (t?.relay !== undefined) {
        this.tokens.set(id, { ...t, owner: null });
        continue;
      }
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
    this.disown(t);
  }

  private own(owner: P, id: string): void {
    let set = this.byOwner.get(owner);
    if (set === undefined) this.byOwner.set(owner, (set = new Set()));
    set.add(id);
  }

  private disown(t: Token<P>): void {
    if (t.owner === null) return;
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
