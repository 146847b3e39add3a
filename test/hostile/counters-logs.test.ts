import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../../src/cli/local-redis.js';
import { readBatchRequests } from '../../src/shared/batches/read-store.js';
import { startSimulator } from '../../src/simulator/simulator-server.js';
import { startWorker } from '../helpers/in-process-worker.js';
import { createTestEnv, spawnWorker, waitFor, waitForBatch } from '../helpers/test-env.js';

const line = (u: string) =>
  JSON.stringify({ custom_id: u, user: u, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });

describe('honest counters and quiet logs', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });

  it('attempts count upstream calls only; claims that died before their call are counted apart', async () => {
    const env = await createTestEnv();
    const sim = await startSimulator();
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    const submitted = await env.submit(Array.from({ length: 12 }, (_, i) => line(`u${i}`)));
    // RPM 1: one call goes, the others wait for capacity, holding their claims; then the worker is killed.
    const vars = {
      CHATQ_BASE_URL: sim.url,
      CHATQ_LOCK_MS: '1000',
      CHATQ_TIMEOUT_MS: '3000',
      CHATQ_RECONCILE_MS: '300',
    };
    const doomed = spawnWorker(env.env({ ...vars, CHATQ_RPM: '1' }));
    cleanups.push(async () => doomed.child.kill('SIGKILL'));
    await waitFor('the first call', async () => sim.stats().answered >= 1, 20_000);
    // Its result written, and runs begun beyond it that wait for capacity.
    await waitFor('runs waiting for capacity beside the first result', async () => {
      let claims = 0;
      for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId)) claims += r.claims;
      return (await env.batch(submitted.batchId)).succeeded === 1 && claims > sim.stats().calls;
    });
    doomed.child.kill('SIGKILL');
    await doomed.exited;
    const pool = await startWorker(env.config(vars), sim.url);
    cleanups.push(() => pool.close());
    await waitForBatch(env, submitted.batchId, 60_000);
    let attempts = 0;
    let claims = 0;
    for await (const r of readBatchRequests(env.redis, env.keys, submitted.batchId)) {
      attempts += r.attempts;
      claims += r.claims;
    }
    expect(attempts).toBe(sim.stats().calls);
    expect(claims).toBeGreaterThan(attempts);
  });

  it('a worker starts without Node warnings, and logs a Redis outage once, as JSON', async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    cleanups.push(() => redis.stop());
    const env = await createTestEnv(redis.url);
    const sim = await startSimulator({ latencyMs: 5 });
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    await env.submit(Array.from({ length: 40 }, (_, i) => line(`u${i}`)));
    const worker = spawnWorker(
      env.env({ CHATQ_BASE_URL: sim.url, CHATQ_RPM: '30', CHATQ_CONCURRENCY: '40', LOG_LEVEL: 'info' }),
    );
    cleanups.push(async () => worker.child.kill('SIGKILL'));
    await waitFor('calls waiting for capacity', async () => sim.stats().answered >= 2, 20_000);
    // Redis goes away for two seconds.
    const port = redis.port;
    redis.process.kill('SIGKILL');
    await new Promise((r) => setTimeout(r, 2_000));
    const back = await startLocalRedis({ port, appendfsync: 'off' });
    // Stopped last, after the clients that use it.
    cleanups.unshift(() => back.stop());
    await waitFor('the worker back on Redis', async () => /redis connection restored/.test(worker.stderr()), 30_000);
    worker.child.kill('SIGTERM');
    await worker.exited;
    const lines = worker
      .stderr()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(worker.stderr()).not.toMatch(/Warning|MaxListeners/);
    const plain = lines.filter((l) => !l.startsWith('{'));
    // The one human line is the start-up banner.
    expect(plain.filter((l) => !l.startsWith('chatq worker:'))).toEqual([]);
    const lost = lines.filter((l) => l.startsWith('{') && /redis connection lost/.test(l));
    expect(lost.length).toBeGreaterThanOrEqual(1);
    expect(lost.length).toBeLessThanOrEqual(3);
  });
});
