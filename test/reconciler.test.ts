import { UnrecoverableError, Worker } from 'bullmq';
import { QUEUE_NAME } from '../src/shared/keys.js';
import { describe, expect, it } from 'vitest';
import { reconcileLanes } from '../src/worker/reconcile-lanes.js';
import { RequestStore } from '../src/worker/request-store.js';
import { waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const line = (user: string, i: number) => JSON.stringify({ custom_id: `${user}-${i}`, user, model: 'gpt-4o-mini', messages: [{ role: 'user', content: `[seq ${i}]` }] });

describe('lane reconciler', () => {
  const w = useWorld();

  it('re-adds lane heads whose BullMQ job was lost (a crash between the Lua script and the add)', async () => {
    const submitted = await w.env.submit(['ann', 'bob', 'cyd'].flatMap((u) => [line(u, 0), line(u, 1)]));
    // Simulate the crash window: the lanes hold their requests, BullMQ holds nothing.
    await w.env.queue.obliterate({ force: true });
    expect(await w.env.queue.count()).toBe(0);

    const store = new RequestStore(w.env.redis, w.env.keys, 3600, w.env.queue);
    const report = await reconcileLanes(w.env.redis, w.env.keys, w.env.queue, store, 'test', 1_000, { ttlS: 3600, usageDays: 90 });
    expect(report).toMatchObject({ lanes: 3, readded: 3, lostJobs: 0 });
    // A second pass finds the jobs in place (and waits for the lock).
    await w.env.redis.del(w.env.keys.reconcilerLock);
    expect(await reconcileLanes(w.env.redis, w.env.keys, w.env.queue, store, 'test', 1_000, { ttlS: 3600, usageDays: 90 })).toMatchObject({ lanes: 3, readded: 0, lostJobs: 0, endedImports: 0 });

    await w.startWorker();
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch.succeeded).toBe(6);
    expect(w.sim.stats().outOfOrder).toBe(0);
    expect(await w.env.redis.scard(w.env.keys.lanes)).toBe(0);
  });

  it('fails a request whose job BullMQ gave up on, and hands the lane to the next request', async () => {
    const submitted = await w.env.submit([line('dan', 0), line('dan', 1)]);
    // A worker takes the job and BullMQ fails it for good (as after too many stalls).
    const taker = new Worker(QUEUE_NAME, null, { connection: w.env.redis.duplicate(), prefix: w.env.prefix, autorun: false });
    const job = (await taker.getNextJob('token-1'))!;
    expect(job.id).toBe(`${submitted.batchId}-1`);
    await job.moveToFailed(new UnrecoverableError('job stalled more than allowable limit'), 'token-1', false);
    await taker.close();

    const store = new RequestStore(w.env.redis, w.env.keys, 3600, w.env.queue);
    const report = await reconcileLanes(w.env.redis, w.env.keys, w.env.queue, store, 'test', 1_000, { ttlS: 3600, usageDays: 90 });
    expect(report?.lostJobs).toBe(1);

    await w.startWorker();
    const batch = await waitForBatch(w.env, submitted.batchId);
    expect(batch).toMatchObject({ succeeded: 1, failed: 1, errors: { worker_lost: 1 } });
  });
});
