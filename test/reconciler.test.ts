import { UnrecoverableError, Worker } from 'bullmq';
import { QUEUE_NAME } from '../src/shared/keys.js';
import { describe, expect, it } from 'vitest';
import { reconcileLanes } from '../src/worker/maintenance/reconcile-lanes.js';
import type { StartedRequest } from '../src/worker/store/request-claims.js';
import { RequestStore } from '../src/worker/store/request-store.js';
import { startFaultProxy } from './helpers/fault-proxy.js';
import { createTestEnv, REDIS_URL, waitFor, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const line = (user: string, i: number) =>
  JSON.stringify({
    custom_id: `${user}-${i}`,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `[seq ${i}]` }],
  });

describe('lane reconciler', () => {
  const w = useWorld();

  it('re-adds lane heads whose BullMQ job was lost (a crash between the Lua script and the add)', async () => {
    const submitted = await w.env.submit(['ann', 'bob', 'cyd'].flatMap((u) => [line(u, 0), line(u, 1)]));
    // Simulate the crash window: the lanes hold their requests, BullMQ holds nothing.
    await w.env.queue.obliterate({ force: true });
    expect(await w.env.queue.count()).toBe(0);

    const store = new RequestStore([w.env.redis], w.env.keys, 3600, w.env.queues);
    // A pass interval (here 2 ms) after their admission, heads without a job count as lost.
    const enqueuedAt = Date.now();
    await waitFor('a 2 ms interval gone by', async () => Date.now() > enqueuedAt + 2, 1_000, 1);
    const report = await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 2, {
      ttlS: 3600,
      usageDays: 90,
    });
    expect(report).toMatchObject({ lanes: 3, readded: 3, lostJobs: 0 });
    // A second pass finds the jobs in place (and waits for the lock).
    await w.env.redis.del(w.env.keys.reconcilerLock);
    expect(
      await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 1_000, { ttlS: 3600, usageDays: 90 }),
    ).toMatchObject({ lanes: 3, readded: 0, lostJobs: 0, endedImports: 0 });

    await w.startWorker();
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch.succeeded).toBe(6);
    expect(w.sim.stats().outOfOrder).toBe(0);
    expect(await w.env.redis.scard(w.env.keys.lanes)).toBe(0);
  });

  it('leaves alone a head whose job is still being added (admitted within the pass interval); past it, re-adds it', async () => {
    const submitted = await w.env.submit([line('eve', 0)]);
    const id = `${submitted.batchId}-1`;
    // The head was admitted to the queue just now; its job is not there yet (as between finish-request.lua and the
    // worker's add, a moment that grows on a busy machine).
    await w.env.queue.remove(id);
    const store = new RequestStore([w.env.redis], w.env.keys, 3600, w.env.queues);
    const pass = async (intervalMs: number) => {
      await w.env.redis.del(w.env.keys.reconcilerLock);
      return reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', intervalMs, {
        ttlS: 3600,
        usageDays: 90,
      });
    };
    expect(await pass(60_000)).toMatchObject({ lanes: 1, readded: 0 });
    expect(await w.env.queue.getJob(id)).toBeUndefined();
    // Once a pass interval has gone by since it was admitted, its job counts as lost.
    const admitted = Number(await w.env.redis.zscore(w.env.keys.queued('default'), id));
    await waitFor('a 5 ms interval gone by', async () => Date.now() > admitted + 5, 1_000, 1);
    expect(await pass(5)).toMatchObject({ lanes: 1, readded: 1 });
    expect(await w.env.queue.getJob(id)).toBeDefined();
  });

  it('fails a request whose job BullMQ gave up on, and hands the lane to the next request', async () => {
    const submitted = await w.env.submit([line('dan', 0), line('dan', 1)]);
    // A worker takes the job and BullMQ fails it for good (as after too many stalls).
    const taker = new Worker(QUEUE_NAME, null, {
      connection: w.env.redis.duplicate(),
      prefix: w.env.prefix,
      autorun: false,
    });
    const job = (await taker.getNextJob('token-1'))!;
    expect(job.id).toBe(`${submitted.batchId}-1`);
    await job.moveToFailed(new UnrecoverableError('job stalled more than allowable limit'), 'token-1', false);
    await taker.close();

    const store = new RequestStore([w.env.redis], w.env.keys, 3600, w.env.queues);
    const report = await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 1_000, {
      ttlS: 3600,
      usageDays: 90,
    });
    expect(report?.lostJobs).toBe(1);

    await w.startWorker();
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch).toMatchObject({ succeeded: 1, failed: 1, errors: { worker_lost: 1 } });
  });

  it('a lane handed to a live job is left alone; once that job is gone, its head is added again', async () => {
    const submitted = await w.env.submit([line('eve', 0), line('eve', 1), line('eve', 2)]);
    const [first, second] = [`${submitted.batchId}-1`, `${submitted.batchId}-2`];
    const store = new RequestStore([w.env.redis], w.env.keys, 3600, w.env.queues);
    const retention = { ttlS: 3600, usageDays: 90 };
    // The first request's job runs it and goes on with the lane: the second request is handed to that job.
    const started = (await store.start(first)) as StartedRequest;
    expect(started.id).toBe(first);
    const handed = await store.finish(
      first,
      started,
      {
        status: 'succeeded',
        usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, reasoning_tokens: 0 },
        costNano: 0,
        attempts: [],
      },
      first,
    );
    // The second request comes back claimed for that job's next run, in the same round trip.
    expect(handed?.id).toBe(second);
    expect(await w.env.redis.hmget(w.env.keys.request(second), 'status', 'claims', 'served_by')).toEqual([
      'running',
      '1',
      first,
    ]);
    // Should the job run again (its worker died), it serves the same request.
    expect(((await store.start(first)) as StartedRequest).id).toBe(second);
    expect(await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 1_000, retention)).toMatchObject({
      readded: 0,
    });
    expect(await w.env.queue.getJob(second)).toBeUndefined();
    // The serving job disappears (its worker died and BullMQ dropped it): the head gets a job of its own.
    await w.env.queue.obliterate({ force: true });
    await w.env.redis.del(w.env.keys.reconcilerLock);
    expect(await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 1_000, retention)).toMatchObject({
      readded: 1,
    });
    expect(await w.env.queue.getJob(second)).toBeDefined();
    await w.startWorker();
    expect(await waitForBatch(w.env, submitted.batchId)).toMatchObject({ succeeded: 3 });
    expect(w.sim.stats().outOfOrder).toBe(0);
  });

  it('repairs nothing in a run where nothing failed, however often it passes', async () => {
    const users = Array.from({ length: 40 }, (_, u) => `r${u}`);
    const submitted = await w.env.submit(Array.from({ length: 15 }, (_, i) => users.map((u) => line(u, i))).flat());
    await w.startWorker({ CHATQ_CONCURRENCY: '20' });
    const store = new RequestStore([w.env.redis], w.env.keys, 3600, w.env.queues);
    let passes = 0;
    let readded = 0;
    while ((await w.env.batch(submitted.batchId)).status !== 'completed') {
      await w.env.redis.del(w.env.keys.reconcilerLock);
      const report = await reconcileLanes(w.env.redis, w.env.keys, w.env.queues, store, 'test', 1_000, {
        ttlS: 3600,
        usageDays: 90,
      });
      passes += 1;
      readded += report?.readded ?? 0;
    }
    expect(passes).toBeGreaterThan(5);
    expect(readded).toBe(0);
  });

  it('holds its lock for as long as a pass takes: no second pass starts meanwhile', async () => {
    const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
    const env = await createTestEnv(proxy.url);
    try {
      await env.submit([line('eve', 0)]);
      // The pass's scan of the lanes gets its reply 1.5 s late: a pass longer than its 500 ms lock.
      proxy.add({ command: 'SSCAN', anyArg: env.keys.lanes, fault: 'hold', holdMs: 1_500 });
      const store = new RequestStore([env.redis], env.keys, 3600, env.queues);
      const retention = { ttlS: 3600, usageDays: 90 };
      const slow = reconcileLanes(env.redis, env.keys, env.queues, store, 'slow', 500, retention);
      await new Promise((r) => setTimeout(r, 1_000));
      const other = await reconcileLanes(w.env.redis, env.keys, env.queues, store, 'other', 500, retention);
      expect(other).toBeNull();
      expect(await slow).toMatchObject({ lanes: 1 });
      expect(proxy.fired()).toBe(1);
    } finally {
      await env.cleanup();
      await proxy.close();
    }
  });
});
