import { createServer, connect, type Server, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/**
 * A TCP link to `target` that can be cut and healed, as a firewall DROP does: while cut, nothing passes either way
 * and nothing is refused (the sockets just stall); once healed, what was held back flows again (TCP retransmits).
 */
export interface CuttableLink {
  url: string;
  cut(): void;
  heal(): void;
  close(): Promise<void>;
}

export async function cuttableLink(target: { host: string; port: number }, scheme = 'redis'): Promise<CuttableLink> {
  const pairs = new Set<[Socket, Socket]>();
  let isCut = false;
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    const pair: [Socket, Socket] = [client, upstream];
    pairs.add(pair);
    if (isCut) for (const s of pair) s.pause();
    client.pipe(upstream);
    upstream.pipe(client);
    const end = () => {
      pairs.delete(pair);
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end).on('close', end);
    upstream.on('error', end).on('close', end);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `${scheme}://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cut() {
      isCut = true;
      for (const pair of pairs) for (const s of pair) s.pause();
    },
    heal() {
      isCut = false;
      for (const pair of pairs) for (const s of pair) s.resume();
    },
    async close() {
      for (const pair of pairs) for (const s of pair) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
