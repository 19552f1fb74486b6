/**
 * Clients behind a proxy: the address a load balancer or reverse proxy says it forwards for, so that
 * logs, the AUTH lockout and the per-IP limit see the client instead of the proxy.
 *
 * - Stream listeners (TCP, TLS): the PROXY protocol header, version 1 (text) or 2 (binary), that HAProxy,
 *   nginx (`proxy_protocol on`), AWS NLB and others send first on each connection, before any TLS octet.
 *   Required on every connection from an address in `--proxy-protocol-from`.
 * - WebSocket listeners: the `X-Forwarded-For` header of an upgrade request from an address in
 *   `--trusted-proxies` (HTTP reverse proxies, which append the address they got the request from).
 *
 * Two lists, not one: a proxy that forwards TCP as it is (no PROXY header) passes along whatever its
 * clients write, X-Forwarded-For included, and a client behind an HTTP proxy could write a PROXY header
 * if one were optional. From any other address neither is looked for.
 */
import { BlockList, isIP, type Socket } from 'node:net';

/** The set of proxy addresses and networks whose word about the client is taken. */
export class TrustedProxies {
  private readonly list = new BlockList();
  readonly size: number;

  /** `entries`: addresses or `address/prefix` networks, IPv4 or IPv6 (validated by the config). */
  constructor(entries: readonly string[]) {
    this.size = entries.length;
    for (const e of entries) {
      const { address, prefix } = parseProxyEntry(e);
      const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
      if (prefix === undefined) this.list.addAddress(address, type);
      else this.list.addSubnet(address, prefix, type);
    }
  }

  /** True when `address` (as a socket reports it; IPv4-mapped IPv6 counts as its IPv4) is trusted. */
  has(address: string | undefined): boolean {
    if (this.size === 0 || address === undefined) return false;
    const bare = address.replace(/%.*$/, '');
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
    if (mapped !== null) return this.list.check(mapped[1]!, 'ipv4');
    const family = isIP(bare);
    return family !== 0 && this.list.check(bare, family === 6 ? 'ipv6' : 'ipv4');
  }
}

/**
 * An entry of `--trusted-proxies`: an IPv4 or IPv6 address, or a network `address/prefix`. Throws an
 * Error with a one-line reason when it is neither.
 */
export function parseProxyEntry(entry: string): { address: string; prefix: number | undefined } {
  const slash = entry.indexOf('/');
  const address = slash < 0 ? entry : entry.slice(0, slash);
  const family = isIP(address);
  if (family === 0 || address.includes('%'))
    throw new Error('expected an IP address or network (no zone id), e.g. 10.0.0.0/8 or 2001:db8::/32');
  if (slash < 0) return { address, prefix: undefined };
  const text = entry.slice(slash + 1);
  const prefix = Number(text);
  if (!/^\d{1,3}$/.test(text) || prefix > (family === 6 ? 128 : 32))
    throw new Error(`expected a prefix length of 0 to ${family === 6 ? 128 : 32} after the /`);
  return { address, prefix };
}

/**
 * The client an `X-Forwarded-For` value names: the right-most address that is not itself a trusted
 * proxy (each proxy appends the address it got the request from, so entries to the left of the last
 * untrusted one were written by the client and prove nothing). Undefined when there is none to take
 * (no header, or an entry that is not an IP address where the walk reaches it).
 */
export function forwardedClient(
  header: string | string[] | undefined,
  trusted: TrustedProxies,
): string | undefined {
  if (header === undefined) return undefined;
  const entries = (Array.isArray(header) ? header.join(',') : header).split(',');
  for (let i = entries.length - 1; i >= 0; i--) {
    const address = bareAddress(entries[i]!.trim());
    if (address === undefined) return undefined;
    if (!trusted.has(address)) return address;
  }
  return undefined;
}

/** An address as X-Forwarded-For writes it (`1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:5678`). */
function bareAddress(text: string): string | undefined {
  if (isIP(text) !== 0) return text;
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(text);
  if (v6 !== null) return isIP(v6[1]!) === 6 ? v6[1] : undefined;
  const v4 = /^([\d.]+):\d+$/.exec(text);
  return v4 !== null && isIP(v4[1]!) === 4 ? v4[1] : undefined;
}

/** Where a PROXY header says the connection comes from; null for LOCAL / UNKNOWN (the socket's own). */
export type ProxiedSource = { address: string; port: number } | null;

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
/** Longest version 1 line, CRLF included (the specification's 107). */
const V1_MAX = 107;
/** Longest version 2 header read: 16 octets and the address block, TLVs included (HAProxy sends < 1 KiB). */
const V2_MAX = 16 + 4096;

/** A PROXY header that could not be read: the connection is closed with this reason in the log. */
export class ProxyHeaderError extends Error {
  /** True when the connection closed before sending anything (a proxy's TCP health check). */
  readonly silent: boolean;

  constructor(message: string, silent = false) {
    super(message);
    this.silent = silent;
  }
}

/**
 * What a buffer starting a connection holds: a whole PROXY header (`length` octets, the source), no
 * header at all (`length` 0: the octets are the protocol's own), or not enough octets yet (null).
 * Throws a {@link ProxyHeaderError} for a malformed header.
 */
export function parseProxyHeader(buf: Buffer): { length: number; source: ProxiedSource } | null {
  if (startsWith(buf, V2_SIGNATURE)) {
    if (buf.length < V2_SIGNATURE.length) return null;
    return parseV2(buf);
  }
  if (startsWith(buf, V1_PREFIX)) {
    if (buf.length < V1_PREFIX.length) return null;
    return parseV1(buf);
  }
  return { length: 0, source: null };
}

/** True when `buf` and `prefix` agree on their common length (a short `buf` may still become it). */
function startsWith(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.length > 0 && buf.compare(prefix, 0, n, 0, n) === 0;
}

function parseV1(buf: Buffer): { length: number; source: ProxiedSource } | null {
  const lf = buf.indexOf(0x0a);
  if (lf < 0) {
    if (buf.length >= V1_MAX) throw new ProxyHeaderError('PROXY v1 line longer than 107 octets');
    return null;
  }
  if (lf + 1 > V1_MAX || buf[lf - 1] !== 0x0d) throw new ProxyHeaderError('PROXY v1 line not ended by CRLF');
  const fields = buf.toString('latin1', 0, lf - 1).split(' ');
  const length = lf + 1;
  if (fields[1] === 'UNKNOWN') return { length, source: null };
  const [, proto, src, , sport] = fields;
  const family = proto === 'TCP4' ? 4 : proto === 'TCP6' ? 6 : 0;
  const port = Number(sport);
  if (
    fields.length !== 6 ||
    family === 0 ||
    isIP(src!) !== family ||
    isIP(fields[3]!) !== family ||
    !/^\d{1,5}$/.test(sport!) ||
    port > 65535 ||
    !/^\d{1,5}$/.test(fields[5]!)
  )
    throw new ProxyHeaderError('malformed PROXY v1 line');
  return { length, source: { address: src!, port } };
}

function parseV2(buf: Buffer): { length: number; source: ProxiedSource } | null {
  if (buf.length < 16) return null;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) throw new ProxyHeaderError('PROXY v2 header of an unknown version');
  const command = verCmd & 0x0f;
  if (command > 1) throw new ProxyHeaderError('PROXY v2 header with an unknown command');
  const body = buf.readUInt16BE(14);
  if (16 + body > V2_MAX) throw new ProxyHeaderError('PROXY v2 header too long');
  if (buf.length < 16 + body) return null;
  const length = 16 + body;
  if (command === 0) return { length, source: null }; // LOCAL: the proxy's own connection (a health check)
  const family = buf[13]! >> 4;
  if (family === 1 && body >= 12) {
    const a = buf.subarray(16, 20);
    return { length, source: { address: `${a[0]}.${a[1]}.${a[2]}.${a[3]}`, port: buf.readUInt16BE(24) } };
  }
  if (family === 2 && body >= 36) {
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(buf.readUInt16BE(16 + i * 2).toString(16));
    return { length, source: { address: compactV6(groups), port: buf.readUInt16BE(48) } };
  }
  if (family === 0 || family === 3) return { length, source: null }; // UNSPEC, UNIX: nothing to take
  throw new ProxyHeaderError('PROXY v2 address block too short for its family');
}

/** An IPv6 address from its eight hex groups, the longest run of zeros written `::`. */
function compactV6(groups: string[]): string {
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLen) [best, bestLen] = [i, j - i];
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/**
 * Reads the PROXY header a connection must start with, from a socket whose data nobody else reads yet;
 * what follows the header is put back (`unshift`) for the protocol's reader. Resolves with the source
 * (null: a header that names none, LOCAL or UNKNOWN) or rejects with a {@link ProxyHeaderError} (no
 * header, a malformed one, a socket error or close, nothing decided within `timeoutMs`: null for a
 * caller whose own timer closes the socket); the caller closes the socket then.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number | null): Promise<ProxiedSource> {
  return new Promise((resolve, reject) => {
    let seen: Buffer = Buffer.alloc(0);
    const done = (): void => {
      if (timer !== null) clearTimeout(timer);
      socket.off('data', onData);
      socket.off('close', onClose);
      socket.off('error', onError);
      socket.pause();
    };
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
      let parsed: ReturnType<typeof parseProxyHeader>;
      try {
        parsed = parseProxyHeader(seen);
      } catch (err) {
        done();
        reject(err as Error);
        return;
      }
      if (parsed === null) return;
      done();
      if (parsed.length === 0) {
        reject(new ProxyHeaderError('no PROXY header'));
        return;
      }
      if (parsed.length < seen.length) socket.unshift(seen.subarray(parsed.length));
      resolve(parsed.source);
    };
    const onClose = (): void => {
      done();
      reject(new ProxyHeaderError('closed before the PROXY header ended', seen.length === 0));
    };
    // A reset (ECONNRESET) before the header: without a listener the error would end the process.
    const onError = (err: NodeJS.ErrnoException): void => {
      done();
      const what = err.code ?? 'socket error';
      reject(new ProxyHeaderError(`${what} before the PROXY header ended`, seen.length === 0));
    };
    const timer =
      timeoutMs === null
        ? null
        : setTimeout(() => {
            done();
            reject(new ProxyHeaderError('no PROXY header decision in time'));
          }, timeoutMs);
    timer?.unref();
    socket.on('data', onData);
    socket.once('close', onClose);
    socket.on('error', onError);
  });
}
