import { connect, createServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';

/** A TCP proxy that holds every chunk `oneWayMs` in each direction: a slow link (the kernel here has no netem). */
export interface DelayProxy {
  host: string;
  port: number;
  close(): Promise<void>;
}

function delayed(from: Socket, to: Socket, ms: number): void {
  // Equal delays fire in the order they were set: the stream's bytes keep their order.
  from.on('data', (chunk: Buffer) => setTimeout(() => to.writable && to.write(chunk), ms));
  from.on('end', () => setTimeout(() => to.end(), ms));
}

export async function delayProxy(listenHost: string, target: { host: string; port: number }, oneWayMs: number): Promise<DelayProxy> {
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
      s.on('close', () => sockets.delete(s));
    }
    delayed(client, upstream, oneWayMs);
    delayed(upstream, client, oneWayMs);
  });
  await new Promise<void>((r) => server.listen(0, listenHost, () => r()));
  return {
    host: listenHost,
    port: (server.address() as AddressInfo).port,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
