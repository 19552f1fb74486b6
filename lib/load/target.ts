/**
 * Addressing, strictly by RFC 4976 and nothing else, so the tester works against any relay:
 *
 * - an endpoint connects to the relay and sends AUTH with To-Path `msrp[s]://user@host:port;tcp` (`;ws`
 *   over WebSocket, RFC 7977 §3.5), answering the Digest challenge;
 * - the 200 carries Use-Path; the endpoint's a=path is reverse(Use-Path) + its own URI (§5.2);
 * - a SEND's To-Path is the sender's Use-Path followed by the receiver's a=path (digest §2.4).
 *
 * This file turns the target options into a {@link LoadTarget} and builds the URIs and connect options.
 */
import type { ConnectionOptions } from 'node:tls';
import type { EndpointOptions } from '../client/endpoint.js';
import { formatUri, parseUri } from '../msrp/uri.js';
import { randomId } from '../msrp/serializer.js';
import { createError, ErrorCodes, type MsrpError } from '../errors.js';

/** How endpoints reach the relay. */
export type LoadTransport = 'tcp' | 'tls' | 'ws' | 'wss';

/** Where the relay is. */
export interface LoadTarget {
  transport: LoadTransport;
  /** Host to connect to (IPv6 without brackets). */
  host: string;
  port: number;
  /** WebSocket URL (ws/wss only). */
  wsUrl?: string;
  /** Host written in AUTH To-Path URIs (brackets kept for IPv6). */
  authHost: string;
  /** The target as given, for the report. */
  display: string;
}

/** A one-line `MSRP_ERR_CONFIG` error naming the flag. */
function optionError(message: string): MsrpError {
  return createError(ErrorCodes.CONFIG, message, 0, true);
}

const TRANSPORTS: readonly LoadTransport[] = ['tcp', 'tls', 'ws', 'wss'];
const MSRP_PORT = 2855;

function stripBrackets(host: string): string {
  return host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
}

function parseWsTarget(text: string): LoadTarget {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw optionError(`--target-ws must be a URL like ws://host:port/path (got "${text}")`);
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') {
    throw optionError(`--target-ws must start with ws:// or wss:// (got "${text}")`);
  }
  const transport = url.protocol === 'wss:' ? 'wss' : 'ws';
  const port = url.port === '' ? (transport === 'wss' ? 443 : 80) : Number(url.port);
  return {
    transport,
    host: stripBrackets(url.hostname),
    port,
    wsUrl: url.href,
    authHost: url.hostname,
    display: text,
  };
}

function parseMsrpTarget(text: string): LoadTarget {
  if (/^msrps?:\/\//i.test(text)) {
    let uri;
    try {
      uri = parseUri(text);
    } catch {
      throw optionError(`--target must be an MSRP URI like msrp://host:port;tcp (got "${text}")`);
    }
    if (uri.transport !== 'tcp') {
      throw optionError(`--target must use ;tcp (for WebSocket give --target-ws ws://...) (got "${text}")`);
    }
    const transport = uri.scheme === 'msrps' ? 'tls' : 'tcp';
    return {
      transport,
      host: stripBrackets(uri.host),
      port: uri.port ?? MSRP_PORT,
      authHost: uri.host,
      display: text,
    };
  }
  const m = /^(\[[^\]]+\]|[^:/\s]+)(?::(\d{1,5}))?$/.exec(text);
  const port = m?.[2] === undefined ? MSRP_PORT : Number(m[2]);
  if (m === null || port < 1 || port > 65535) {
    throw optionError(
      `--target must be msrp://host:port;tcp, msrps://host:port;tcp or host:port (got "${text}")`,
    );
  }
  return { transport: 'tcp', host: stripBrackets(m[1]!), port, authHost: m[1]!, display: text };
}

/** Resolves `target` / `targetWs` / `transport` / `authHost` into a {@link LoadTarget}. */
export function resolveTarget(opts: {
  target?: string;
  targetWs?: string;
  transport?: LoadTransport;
  authHost?: string;
}): LoadTarget {
  if (opts.transport !== undefined && !TRANSPORTS.includes(opts.transport)) {
    throw optionError(`--transport must be tcp, tls, ws or wss (got "${String(opts.transport)}")`);
  }
  if (opts.target !== undefined && opts.targetWs !== undefined) {
    throw optionError('--target and --target-ws exclude each other; give one');
  }
  let t: LoadTarget;
  if (opts.targetWs !== undefined) {
    t = parseWsTarget(opts.targetWs);
    if (opts.transport !== undefined && opts.transport !== t.transport) {
      throw optionError(`--transport ${opts.transport} conflicts with --target-ws ${opts.targetWs}`);
    }
  } else {
    const text = opts.target ?? `msrp://127.0.0.1:${MSRP_PORT};tcp`;
    t = parseMsrpTarget(text);
    if (opts.transport === 'ws' || opts.transport === 'wss') {
      throw optionError(`--transport ${opts.transport} needs --target-ws ${opts.transport}://host:port/path`);
    }
    if (opts.transport !== undefined && opts.transport !== t.transport) {
      if (/^msrps?:\/\//i.test(text)) {
        throw optionError(
          `--transport ${opts.transport} conflicts with --target ${text} (msrp:// is tcp, msrps:// is tls)`,
        );
      }
      t.transport = opts.transport;
    }
  }
  if (opts.authHost !== undefined) {
    if (!/^(\[[0-9a-f:.]+\]|[A-Za-z0-9._~%!$&'()*+,=-]+)$/i.test(opts.authHost)) {
      throw optionError(`--auth-host must be a host name or address (got "${opts.authHost}")`);
    }
    t.authHost = opts.authHost;
  }
  return t;
}

/** Whether the transport runs over TLS (msrps). */
export function isSecure(t: LoadTarget): boolean {
  return t.transport === 'tls' || t.transport === 'wss';
}

/**
 * The AUTH To-Path: the relay's device URI with the user as userinfo and no session-id, e.g.
 * `msrps://alice@relay.example.com:2855;tcp` (RFC 4976 §5.1; `;ws` over WebSocket, RFC 7977 §3.5).
 */
export function authUri(t: LoadTarget, username?: string): string {
  const uri = {
    scheme: isSecure(t) ? ('msrps' as const) : ('msrp' as const),
    host: t.authHost,
    port: t.port,
    transport: t.wsUrl === undefined ? 'tcp' : 'ws',
    params: [],
    ...(username === undefined ? {} : { user: encodeURIComponent(username) }),
  };
  return formatUri(uri);
}

/**
 * A fresh session URI for one endpoint: a random `.invalid` host (the relay routes toward us by the
 * connection, never by this URI) and a random session-id (≥ 80 bits).
 */
export function endpointUri(t: LoadTarget): string {
  const scheme = isSecure(t) ? 'msrps' : 'msrp';
  const transport = t.wsUrl === undefined ? 'tcp' : 'ws';
  return `${scheme}://${randomId(12).toLowerCase()}.invalid:${MSRP_PORT}/${randomId(16)};${transport}`;
}

/** What the TLS layer needs, from the CA and `insecure` settings. */
export function tlsOptions(t: LoadTarget, ca: string | undefined, insecure: boolean): ConnectionOptions {
  const o: ConnectionOptions = { rejectUnauthorized: !insecure };
  if (ca !== undefined) o.ca = ca;
  // SNI only for names (RFC 6066 §3: literal addresses are not sent).
  if (!/^[\d.]+$/.test(t.host) && !t.host.includes(':')) o.servername = t.host;
  return o;
}

/**
 * Options for `MsrpEndpoint.connect`: TCP or TLS to host:port, or `ws: { url }` for WebSocket targets
 * (RFC 7977; the `msrp` subprotocol is offered by the client, TLS settings go to the `ws` client).
 */
export function connectOptions(
  t: LoadTarget,
  ca: string | undefined,
  insecure: boolean,
  extra: Partial<EndpointOptions>,
): EndpointOptions {
  const opts: EndpointOptions = { host: t.host, port: t.port, uri: endpointUri(t), ...extra };
  if (t.wsUrl !== undefined) {
    opts.ws = { url: t.wsUrl };
    if (t.transport === 'wss') {
      const { rejectUnauthorized, ca: trusted, servername } = tlsOptions(t, ca, insecure);
      opts.ws.options = {
        rejectUnauthorized,
        ...(trusted && { ca: trusted }),
        ...(servername && { servername }),
      };
    }
  } else if (t.transport === 'tls') {
    opts.tls = tlsOptions(t, ca, insecure);
  }
  return opts;
}
