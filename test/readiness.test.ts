import { rmSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { freePort, startLocalRedis } from '../src/cli/local-redis.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { createTestEnv, spawnWorker, testLogger, waitFor } from './helpers/test-env.js';

/** The status and body of a GET (null while nothing answers). */
async function probe(url: string): Promise<{ status: number; body: Record<string, unknown> } | null> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  } catch {
    return null;
  }
}

describe('readiness: /readyz says whether a process can take work, /healthz that it is alive', () => {
  it('the API server and a worker (--health-port) answer 503 while Redis is down and 200 once it is back', async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    const env = await createTestEnv(redis.url);
    const sim = await startSimulator({ latencyMs: 0 });
    const api = await startApiService(env.config({ CHATQ_API_TOKENS: 'token' }), testLogger(), 0);
    const healthPort = await freePort();
    const worker = spawnWorker(env.env({ CHATQ_BASE_URL: sim.url }), ['--health-port', String(healthPort)]);
    const both = [`${api.url}/readyz`, `http://127.0.0.1:${healthPort}/readyz`];
    let back = redis;
    try {
      for (const url of both) {
        const ready = await waitFor(`${url} ready`, async () => {
          const r = await probe(url);
          return r?.status === 200 ? r : undefined;
        });
        expect(ready.body).toMatchObject({ status: 'ready' });
      }
      expect((await probe(`http://127.0.0.1:${healthPort}/healthz`))?.status).toBe(200);

      // Redis gone (killed: its directory stays for the restart).
      redis.process.kill('SIGKILL');
      for (const url of both) {
        const down = await waitFor(`${url} not ready`, async () => {
          const r = await probe(url);
          return r?.status === 503 ? r : undefined;
        });
        expect(down.body).toMatchObject({ status: 'not_ready' });
        expect(String(down.body.reason)).toMatch(/redis/i);
      }
      // Alive all the same: a process manager must not restart it for Redis's sake.
      for (const url of [`http://127.0.0.1:${healthPort}/healthz`, `${api.url}/healthz`])
        await waitFor(`${url} alive`, async () => (await probe(url))?.status === 200, 15_000);

      back = await startLocalRedis({ port: redis.port, dir: redis.dir, appendfsync: 'off' });
      for (const url of both) {
        await waitFor(`${url} ready again`, async () => (await probe(url))?.status === 200, 30_000);
      }
    } finally {
      // Whatever failed, Redis comes back first: closing the API and cleaning up need it.
      const killed = redis.process.exitCode !== null || redis.process.signalCode !== null;
      if (back === redis && killed)
        back = await startLocalRedis({ port: redis.port, dir: redis.dir, appendfsync: 'off' });
      worker.child.kill('SIGKILL');
      await worker.exited;
      await api.close();
      await sim.close();
      await env.cleanup();
      await back.stop();
      rmSync(redis.dir, { recursive: true, force: true });
    }
    // Longer than its named waits together (each says which one timed out), however slow the machine.
  }, 180_000);
});
