import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { CLI, createTestEnv, testLogger, waitFor } from './helpers/test-env.js';

const TOKEN = 'tok-store-down';

describe('the API server when Redis goes away', () => {
  it('answers 503 within a second from the first request after Redis went down', async () => {
    const local = await startLocalRedis({ appendfsync: 'off' });
    const env = await createTestEnv(local.url);
    const api = await startApiService(env.config({ CHATQ_API_TOKENS: TOKEN }), testLogger(), 0);
    try {
      const get = async () => {
        const t0 = performance.now();
        const r = await fetch(`${api.url}/v1/batches`, { headers: { authorization: `Bearer ${TOKEN}` } });
        return { status: r.status, ms: performance.now() - t0 };
      };
      expect((await get()).status).toBe(200);
      local.process.kill('SIGKILL');
      await new Promise((r) => local.process.once('exit', r));
      // At once, as a client that happens to call just then.
      const answers = await Promise.all([get(), get(), get()]);
      for (const a of answers) {
        expect(a.status).toBe(503);
        expect(a.ms).toBeLessThan(1_000);
      }
    } finally {
      await api.close();
      env.redis.disconnect();
    }
  });

  it('`chatq serve` exits on SIGTERM while Redis is out of reach', async () => {
    const local = await startLocalRedis({ appendfsync: 'off' });
    const env = await createTestEnv(local.url);
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as AddressInfo;
        probe.close(() => resolve(free));
      });
    });
    const child = spawn(process.execPath, [CLI, 'serve', '--port', String(port)], {
      env: env.env({ CHATQ_API_TOKENS: TOKEN }),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    try {
      await waitFor('the server listening', async () => stderr.includes('chatq API at'), 20_000).catch((err: Error) => {
        throw new Error(`${err.message}: ${stderr}`);
      });
      local.process.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 500));
      child.kill('SIGTERM');
      const bound = new Promise((r) => setTimeout(() => r('still running'), 15_000));
      expect(await Promise.race([exited.then(() => 'exited'), bound]), stderr).toBe('exited');
    } finally {
      child.kill('SIGKILL');
      env.redis.disconnect();
    }
  });
});
