/**
 * Test set-up: relays on 127.0.0.1 port 0 and authenticated endpoints, all closed after each test.
 */
import { MsrpEndpoint, type EndpointOptions, type ReceivedMessage } from '../../lib/client/endpoint.js';
import type { Frame } from '../../lib/msrp/message.js';
import { uriHost } from '../../lib/msrp/uri.js';
import type { Logger } from '../../lib/relay/logger.js';
import { createRelay, type Relay, type RelayOptions } from '../../lib/relay/relay.js';
import { FileUserStore } from '../../lib/relay/users.js';

/** Users every test relay knows. */
export const USERS = { alice: 'alice-pw', bob: 'bob-pw', carol: 'carol-pw' } as const;

/** Tracks what a test opened so `cleanup()` can close it. */
export class Harness {
  readonly relays: Relay[] = [];
  readonly endpoints: MsrpEndpoint[] = [];

  async relay(options: RelayOptions = {}): Promise<Relay> {
    const relay = createRelay({
      listen: [{ host: '127.0.0.1', port: 0 }],
      users: FileUserStore.fromMap({ ...USERS }),
      realm: 'test.realm',
      ...options,
    });
    await relay.listen();
    this.relays.push(relay);
    return relay;
  }

  /** The relay's AUTH URI (device URI, no session-id). */
  relayUri(relay: Relay, user = 'alice'): string {
    const a = relay.addresses()[0]!;
    return `msrp://${user}@${uriHost(a.host)}:${a.port};tcp`;
  }

  async connect(relay: Relay, options: Partial<EndpointOptions> = {}): Promise<MsrpEndpoint> {
    const a = relay.addresses()[0]!;
    const ep = await MsrpEndpoint.connect({ host: a.host, port: a.port, ...options });
    this.endpoints.push(ep);
    return ep;
  }

  /** Connects and authenticates `user` (password from USERS). */
  async client(
    relay: Relay,
    user: keyof typeof USERS,
    options: Partial<EndpointOptions> = {},
  ): Promise<MsrpEndpoint> {
    const ep = await this.connect(relay, options);
    const res = await ep.auth({
      relayUri: this.relayUri(relay, user),
      username: user,
      password: USERS[user],
    });
    if (res.kind !== 'response' || res.statusCode !== 200) throw new Error(`AUTH for ${user} failed`);
    return ep;
  }

  /**
   * Authenticates `user` (already a client of its first relay, `ep`) to `second` through the first
   * (RFC 4976 §5.1: To-Path = its first Use-Path, then the second relay) and sets `ep.usePath` to both
   * tokens, outermost first. Returns the second token.
   */
  async authThrough(ep: MsrpEndpoint, second: Relay, user: keyof typeof USERS): Promise<string> {
    const t1 = ep.usePath[0]!;
    const res = await ep.auth({
      relayUri: `${t1} ${this.relayUri(second, user)}`,
      username: user,
      password: USERS[user],
    });
    if (res.kind !== 'response' || res.statusCode !== 200)
      throw new Error(`AUTH for ${user} through a relay failed`);
    const t2 = ep.usePath[0]!;
    ep.usePath = [t1, t2];
    return t2;
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.endpoints.map((e) => e.close()));
    await Promise.all(this.relays.map((r) => r.close(100)));
    this.endpoints.length = 0;
    this.relays.length = 0;
  }
}

/** Resolves with the next `event` emitted by `ep` (rejects after `ms`). */
export function next<T = Frame>(
  ep: MsrpEndpoint,
  event: 'message' | 'report' | 'request' | 'close',
  ms = 5000,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ep.off(event, on);
      reject(new Error(`timed out waiting for ${event}`));
    }, ms);
    const on = (v: T): void => {
      clearTimeout(timer);
      resolve(v);
    };
    ep.once(event, on);
  });
}

/** Resolves with the next reassembled message. */
export function nextMessage(ep: MsrpEndpoint, ms = 5000): Promise<ReceivedMessage> {
  return next<ReceivedMessage>(ep, 'message', ms);
}

/** Resolves after `ms` milliseconds (for a wait nothing observable ends; prefer {@link until}). */
export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `cond` until it holds (rejects after `ms`). */
export async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** One line a {@link captureLogger} kept. */
export interface LogLine {
  level: string;
  fields: Record<string, unknown>;
  msg: string;
}

/** A logger that keeps every line, at every level, in `lines`. */
export function captureLogger(lines: LogLine[]): Logger {
  const at =
    (level: string) =>
    (fields: Record<string, unknown>, msg: string): void => {
      lines.push({ level, fields, msg });
    };
  return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
