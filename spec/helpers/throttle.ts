/**
 * A TCP proxy for specs: a client on a slow downlink.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A TCP proxy in front of the relay that passes relay→client octets at `rate` octets per second (the
 * client→relay direction unthrottled): a client on a slow downlink.
 */
export async function throttlingProxy(
  relayPort: number,
  rate: number,
): Promise<{ port: number; close(): void }> {
  const sockets: Socket[] = [];
  const server: Server = createServer((client) => {
    const up = connect(relayPort, '127.0.0.1');
    sockets.push(client, up);
    client.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      up.pause();
      client.write(d);
      setTimeout(() => up.resume(), (d.length / rate) * 1000);
    });
    const end = (): void => {
      client.destroy();
      up.destroy();
    };
    client.on('close', end);
    up.on('close', end);
    client.on('error', () => undefined);
    up.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as { port: number }).port,
    close: () => {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
}
