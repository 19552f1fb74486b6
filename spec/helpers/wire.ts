/**
 * Raw frames for tests that must control exactly what goes on the wire (a chunk cut before its end-line,
 * a response to a forwarded transaction id), and a tap of what an endpoint's socket receives.
 */
import { randomBytes } from 'node:crypto';
import type { MsrpEndpoint } from '../../lib/client/endpoint.js';
import type { Relay } from '../../lib/relay/relay.js';
import { until } from './relay.js';

/** Everything `ep`'s socket receives from now on, as latin1 text. */
export function tap(ep: MsrpEndpoint): { text: () => string } {
  const parts: string[] = [];
  ep.socket.on('data', (d: Buffer) => parts.push(d.toString('latin1')));
  return { text: () => parts.join('') };
}

/** The head of a SEND from `from` to `to` (through the relay), up to and including its blank line. */
export function sendHead(
  from: MsrpEndpoint,
  to: MsrpEndpoint,
  tid: string,
  headers: Array<[string, string]>,
  contentType = 'text/plain',
): string {
  const lines = headers.map(([name, value]) => `${name}: ${value}\r\n`).join('');
  return (
    `MSRP ${tid} SEND\r\nTo-Path: ${from.toPathFor(to.path)}\r\nFrom-Path: ${from.uri}\r\n` +
    `${lines}Content-Type: ${contentType}\r\n\r\n`
  );
}

/** A response from `responder` to the relay for transaction `tid` (To-Path: `to`, the relay's URI). */
export function responseTo(responder: MsrpEndpoint, to: string, tid: string, status: string): Buffer {
  return Buffer.from(
    `MSRP ${tid} ${status}\r\nTo-Path: ${to}\r\nFrom-Path: ${responder.uri}\r\n-------${tid}$\r\n`,
    'latin1',
  );
}

/** A request from `ep` the relay refuses itself (481: no such token), so a response waits toward `ep`. */
export function refusedRequest(
  ep: MsrpEndpoint,
  relayAt: { host: string; port: number },
  tid: string,
): Buffer {
  return Buffer.from(
    `MSRP ${tid} NICKNAME\r\nTo-Path: msrp://${relayAt.host}:${relayAt.port}/NoSuchToken00000000;tcp ` +
      `msrp://x.invalid:1/y;tcp\r\nFrom-Path: ${ep.uri}\r\n-------${tid}$\r\n`,
    'latin1',
  );
}

/** Writes `bytes` from `ep` and resolves once the relay has read them (its TCP connections' bytesIn). */
export async function writeRead(relay: Relay, ep: MsrpEndpoint, bytes: Buffer): Promise<void> {
  const before = relay.stats().bytesIn.tcp;
  ep.write(bytes);
  await until(() => relay.stats().bytesIn.tcp >= before + bytes.length, 3000, 'the write read by the relay');
}

/**
 * Sends a whole chunk of `size` random octets (`Byte-Range: 1-size/size`) from `from` (TCP) to `to`, its
 * end-line but the flag read by the relay before the `$` follows; resolves with the body once `$` is written.
 */
export async function sendFlagLate(
  relay: Relay,
  from: MsrpEndpoint,
  to: MsrpEndpoint,
  tid: string,
  messageId: string,
  size: number,
): Promise<Buffer> {
  const body = randomBytes(size);
  const head = sendHead(from, to, tid, [
    ['Message-ID', messageId],
    ['Byte-Range', `1-${size}/${size}`],
  ]);
  await writeRead(
    relay,
    from,
    Buffer.concat([Buffer.from(head, 'latin1'), body, Buffer.from(`\r\n-------${tid}`, 'latin1')]),
  );
  from.write(Buffer.from('$\r\n', 'latin1'));
  return body;
}
