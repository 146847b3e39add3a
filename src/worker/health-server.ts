import { createServer, type ServerResponse } from 'node:http';

export type Readiness = { ready: true } | { ready: false; reason: string };

const send = (res: ServerResponse, status: number, body: unknown) => {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store' }).end(text);
};

/**
 * A worker's probes for process managers (`chatq worker --health-port`): GET /healthz answers 200 while the process
 * runs; GET /readyz answers 200 while it can take work and 503 with the reason when not (Redis out of reach, shutting
 * down). Nothing else is served, and nothing is read from a request but its method and path.
 */
export async function startHealthServer(
  port: number,
  host: string,
  readiness: () => Promise<Readiness>,
): Promise<{ close(): Promise<void> }> {
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, { error: 'only GET' });
    if (path === '/healthz') return send(res, 200, { status: 'ok' });
    if (path !== '/readyz') return send(res, 404, { error: 'GET /healthz or /readyz' });
    readiness().then(
      (r) =>
        r.ready ? send(res, 200, { status: 'ready' }) : send(res, 503, { status: 'not_ready', reason: r.reason }),
      (err: unknown) => send(res, 503, { status: 'not_ready', reason: (err as Error).message }),
    );
  });
  server.keepAliveTimeout = 5_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return {
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
