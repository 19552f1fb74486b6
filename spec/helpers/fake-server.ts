/**
 * A scripted MSRP peer for specs that need a relay behaving unlike ours: a TCP server on 127.0.0.1 that
 * parses each connection's frames with the project's parser and hands them to the script.
 */
import { createServer, type Socket } from 'node:net';
import { FrameCollector } from '../../lib/msrp/frame-collector.js';
import type { Frame } from '../../lib/msrp/message.js';
import { MsrpParser } from '../../lib/msrp/parser.js';

export interface FakeServer {
  readonly port: number;
  /** Destroys every open connection, then closes the server. */
  close(): Promise<void>;
}

/**
 * Listens on `host` (127.0.0.1 unless given; port 0). For each connection `onConnection` gets the socket and the server's
 * port, and returns what handles that connection's whole frames.
 */
export async function fakeMsrpServer(
  onConnection: (socket: Socket, port: number) => (frame: Frame) => void,
  host = '127.0.0.1',
): Promise<FakeServer> {
  const sockets = new Set<Socket>();
  let port = 0;
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    const parser = new MsrpParser(new FrameCollector(onConnection(socket, port), () => {}));
    socket.on('data', (d: Buffer) => parser.write(d));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  port = (server.address() as { port: number }).port;
  return {
    port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
