/**
 * WebSocket test set-up on top of spec/helpers/relay.ts: relays with a `ws`/`wss` listener, endpoints
 * connected over WebSocket and authenticated, and raw handshakes for the transport tests.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { WebSocket, type ClientOptions } from 'ws';
import { MsrpEndpoint, type EndpointOptions } from '../../lib/client/endpoint.js';
import type { Relay, RelayOptions } from '../../lib/relay/relay.js';
import { USERS, type Harness } from './relay.js';
import { testCertificate } from './tls.js';

/** Relay options with one TCP and one WebSocket listener on 127.0.0.1, any port. */
export function wsRelayOptions(extra: RelayOptions = {}): RelayOptions {
  return { listen: [{ host: '127.0.0.1', port: 0 }], wsListen: [{ host: '127.0.0.1', port: 0 }], ...extra };
}

/** Relay options with one TLS and one secure WebSocket listener, using the test certificate. */
export function wssRelayOptions(extra: RelayOptions = {}): RelayOptions {
  const { cert, key } = testCertificate();
  return {
    listen: [],
    tlsListen: [{ host: '127.0.0.1', port: 0 }],
    wssListen: [{ host: '127.0.0.1', port: 0 }],
    tls: { cert, key, ca: cert },
    ...extra,
  };
}

/** Port of the relay's first listener of `kind`. */
export function portOf(relay: Relay, kind: 'tcp' | 'tls' | 'ws' | 'wss'): number {
  const a = relay.addresses().find((x) => x.kind === kind);
  if (a === undefined) throw new Error(`relay has no ${kind} listener`);
  return a.port;
}

/** `ws://127.0.0.1:<port>/` (or `wss://`) of the relay's WebSocket listener. */
export function wsUrl(relay: Relay, secure = false): string {
  return `${secure ? 'wss' : 'ws'}://127.0.0.1:${portOf(relay, secure ? 'wss' : 'ws')}/`;
}

/** The relay's AUTH URI as a WebSocket client writes it (RFC 7977 §8.1.2: `;ws`, the WS port). */
export function wsRelayUri(relay: Relay, user: string, secure = false): string {
  return `${secure ? 'msrps' : 'msrp'}://${user}@127.0.0.1:${portOf(relay, secure ? 'wss' : 'ws')};ws`;
}

/** Connects an endpoint over WebSocket; closed by the harness's cleanup. */
export async function connectWs(
  h: Harness,
  relay: Relay,
  options: Partial<EndpointOptions> & { secure?: boolean; wsOptions?: ClientOptions } = {},
): Promise<MsrpEndpoint> {
  const secure = options.secure ?? false;
  const wsOptions = secure ? { ca: testCertificate().cert, ...options.wsOptions } : options.wsOptions;
  const ep = await MsrpEndpoint.connect({
    host: '127.0.0.1',
    port: 0,
    ...options,
    ws: { url: wsUrl(relay, secure), options: wsOptions },
  });
  h.endpoints.push(ep);
  return ep;
}

/** Connects over WebSocket and authenticates `user` with Digest. */
export async function wsClient(
  h: Harness,
  relay: Relay,
  user: keyof typeof USERS,
  options: Partial<EndpointOptions> & { secure?: boolean } = {},
): Promise<MsrpEndpoint> {
  const ep = await connectWs(h, relay, options);
  const res = await ep.auth({
    relayUri: wsRelayUri(relay, user, options.secure),
    username: user,
    password: USERS[user],
  });
  if (res.kind !== 'response' || res.statusCode !== 200) throw new Error(`AUTH for ${user} over WS failed`);
  return ep;
}

/** The outcome of a raw WebSocket handshake: the HTTP status and headers, and the socket if 101. */
export interface Handshake {
  status: number;
  headers: IncomingHttpHeaders;
  ws: WebSocket | null;
}

/** Opens a WebSocket with the given subprotocols and options; resolves with what the server answered. */
export function handshake(url: string, protocols: string[], options: ClientOptions = {}): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, options);
    let headers: IncomingHttpHeaders = {};
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('handshake timed out'));
    }, 5000);
    ws.once('upgrade', (res) => (headers = res.headers));
    ws.once('open', () => {
      clearTimeout(timer);
      resolve({ status: 101, headers, ws });
    });
    ws.once('unexpected-response', (req, res) => {
      clearTimeout(timer);
      const done = (): void => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, headers: res.headers, ws: null });
      };
      res.resume();
      res.once('end', done);
      res.once('error', done);
    });
    ws.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** Resolves with the WebSocket close code once `ws` has closed (rejects after `ms`). */
export function closeCode(ws: WebSocket, ms = 5000): Promise<number> {
  if (ws.readyState === WebSocket.CLOSED) return Promise.resolve(0);
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('timed out waiting for close')), ms);
    ws.once('close', (code: number) => {
      clearTimeout(timer);
      resolve(code);
    });
  });
}

/** Resolves with the next WebSocket message `ws` receives, as octets (rejects after `ms`). */
export function nextWsMessage(ws: WebSocket, ms = 5000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      ws.off('message', on);
      reject(new Error('timed out waiting for a WebSocket message'));
    }, ms);
    const on = (data: Buffer): void => {
      clearTimeout(timer);
      resolve(data);
    };
    ws.once('message', on);
  });
}
