import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startLocalRedis } from '../../src/cli/local-redis.js';
import { ImportFailedError } from '../../src/producer/import-errors.js';
import { submitBatch } from '../../src/producer/submit-batch.js';
import { newBatchId } from '../../src/shared/ids.js';
import { createBatchRecord } from '../../src/shared/batches/batch-imports.js';
import { readBatchRequests } from '../../src/shared/batches/read-store.js';
import { loadPrices } from '../../src/shared/usage/pricing.js';
import { reconcileLanes } from '../../src/worker/maintenance/reconcile-lanes.js';
import { RequestStore } from '../../src/worker/store/request-store.js';
import { startSimulator } from '../../src/simulator/simulator-server.js';
import { createTestEnv, REDIS_URL, runCli, spawnWorker, waitFor, type TestEnv } from '../helpers/test-env.js';

const line = (i: number, pad = 0) =>
  JSON.stringify({
    custom_id: `r${i}`,
    user: `u${i % 50}`,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `hello ${i} ${'x'.repeat(pad)}` }],
  });
const tmpFile = (name: string, lines: string[]) => {
  const file = join(mkdtempSync(join(tmpdir(), 'chatq-import-')), name);
  writeFileSync(file, `${lines.join('\n')}\n`);
  return file;
};
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at /);

describe('imports always end', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  const env = async (url?: string) => {
    const e = await createTestEnv(url);
    cleanups.push(() => e.cleanup());
    return e;
  };

  it('a line nested 100,000 deep is one bad line; the batch is imported and the lines after it are enqueued', async () => {
    const e = await env();
    const deep = `{"user":"u","model":"m","messages":[{"role":"user","content":${'['.repeat(100_000)}${']'.repeat(100_000)}}]}`;
    const result = await e.submit([line(1), deep, line(3)]);
    expect(result).toMatchObject({ acceptedRequests: 2, rejectedLines: 1, status: 'in_progress' });
    expect(result.errors[0]).toMatchObject({ line: 2, message: expect.stringMatching(/nested deeper/) });
  });

  it('a chunk the enqueue script rejects fails the import: the batch ends "failed" with the reason, never finalised short', async () => {
    const e: TestEnv = await env();
    const batchId = newBatchId();
    await createBatchRecord(e.redis, e.keys, {
      batchId,
      project: 'default',
      name: 'broken',
      input: 'x.jsonl',
      metadata: {},
    });
    // After the first chunk, the batch's custom_id index becomes a key of the wrong type: every later chunk is refused.
    async function* input() {
      for (let i = 0; i < 3_000; i++) {
        if (i === 1_500) await e.redis.set(e.keys.batchCustomIds(batchId), 'not a hash');
        yield `${line(i)}\n`;
      }
    }
    await expect(
      submitBatch(
        {
          redis: e.redis,
          queues: e.queues,
          keys: e.keys,
          resultTtlS: 3600,
          prices: loadPrices(),
          userids: { secret: undefined, holdS: 0 },
        },
        () => Readable.from(input()),
        { source: 'x.jsonl', batchId },
      ),
    ).rejects.toBeInstanceOf(ImportFailedError);
    const batch = await e.batch(batchId);
    expect(batch.status).toBe('failed');
    expect(batch.importError).toMatchObject({
      code: 'redis_error',
      message: expect.stringMatching(/WRONGTYPE/),
      enqueued: batch.total,
    });
    expect(batch.total).toBeLessThan(3_000);
    // Counted once for /metrics (chatq_import_failures_total: the ChatqImportFailing alert).
    expect(await e.redis.hget(e.keys.metrics, 'import_failed')).toBe('1');
    // Default --on-import-error cancel: whatever was enqueued is cancelled; nothing is left to run.
    expect(batch.cancelled).toBe(batch.total);
    let queued = 0;
    for await (const r of readBatchRequests(e.redis, e.keys, batchId)) if (r.status !== 'cancelled') queued += 1;
    expect(queued).toBe(0);
  });

  it('Redis full in the middle of `chatq enqueue`: one clear line, exit 1, the batch "failed"; a re-run adds only what is missing', async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    cleanups.push(() => redis.stop());
    const e = await env(redis.url);
    const admin = new Redis(redis.url);
    cleanups.push(async () => admin.disconnect());
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 3 * 1024 * 1024));
    const file = tmpFile(
      'big.jsonl',
      Array.from({ length: 8_000 }, (_, i) => line(i, 400)),
    );
    const first = await runCli(['enqueue', file, '--on-import-error', 'keep'], e.env());
    expect(first.code).toBe(1);
    noStack(first.stderr);
    expect(first.stderr).toMatch(/Redis is out of memory/);
    const batchId = /(batch_[0-9a-f]{24})/.exec(first.stderr)![1]!;
    const failed = await e.batch(batchId);
    expect(failed.status).toBe('failed');
    expect(failed.total).toBeGreaterThan(0);
    expect(failed.total).toBeLessThan(8_000);
    // Memory comes back; the same file into the same batch adds the rest, and nothing twice.
    await admin.config('SET', 'maxmemory', '0');
    const again = await runCli(['enqueue', file, '--batch', batchId], e.env());
    expect(again.code, again.stderr).toBe(0);
    const batch = await e.batch(batchId);
    expect(batch).toMatchObject({ status: 'in_progress', total: 8_000, rejectedLines: 0 });
    const seen = new Set<string>();
    for await (const r of readBatchRequests(e.redis, e.keys, batchId)) seen.add(r.customId);
    expect(seen.size).toBe(8_000);
  });

  it('a REDIS_URL naming a database the server lacks is one clear error, and nothing is written to database 0', async () => {
    const e = await env();
    const file = tmpFile('one.jsonl', [line(1)]);
    const r = await runCli(['enqueue', file], e.env({ REDIS_URL: `${REDIS_URL.replace(/\/\d*$/, '')}/99` }));
    expect(r.code).toBe(2);
    noStack(r.stderr);
    expect(r.stderr).toMatch(/database 99/);
    expect(await e.redis.keys(`${e.prefix}:batch*`)).toEqual([]);
  });

  it('an import whose process died is ended by the reconciler, and a cancel of it does not hang in "cancelling"', async () => {
    const e = await env();
    const cancelled = newBatchId();
    await createBatchRecord(e.redis, e.keys, {
      batchId: cancelled,
      project: 'default',
      name: 'orphan',
      input: 'x.jsonl',
      metadata: {},
    });
    const r = await runCli(['cancel', cancelled], e.env());
    expect(r.code).toBe(0);
    expect((await e.batch(cancelled)).status).toBe('cancelled');

    const dead = newBatchId();
    await createBatchRecord(e.redis, e.keys, {
      batchId: dead,
      project: 'default',
      name: 'orphan',
      input: 'y.jsonl',
      metadata: {},
    });
    const store = new RequestStore([e.redis], e.keys, 3600, e.queues);
    // Older than the grace period (1 ms here): within the same millisecond the import would still count as starting.
    await new Promise((r) => setTimeout(r, 5));
    const report = await reconcileLanes(e.redis, e.keys, e.queues, store, 'test', 1, { ttlS: 3600, usageDays: 90 });
    expect(report).toMatchObject({ endedImports: 1 });
    expect(await e.batch(dead)).toMatchObject({
      status: 'failed',
      importError: { code: 'import_interrupted', enqueued: 0 },
    });
    expect(await e.redis.hget(e.keys.metrics, 'import_failed')).toBe('1');
  });

  it('Redis full mid-import with a worker running: "cancel" stops every request the import enqueued before more calls start; the worker says so once', async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    cleanups.push(() => redis.stop());
    const sim = await startSimulator({ latencyMs: 100 });
    cleanups.push(() => sim.close());
    const e = await env(redis.url);
    const admin = new Redis(redis.url);
    cleanups.push(async () => admin.disconnect());
    const worker = spawnWorker(
      e.env({ CHATQ_BASE_URL: sim.url, CHATQ_API_KEY: 'sim', CHATQ_CONCURRENCY: '10', LOG_LEVEL: 'info' }),
    );
    cleanups.push(async () => {
      worker.child.kill('SIGKILL');
      await worker.exited;
    });
    await waitFor('worker up', async () => /worker started/.test(worker.stderr()), 20_000);
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 12 * 1024 * 1024));
    // Many users, so that the worker has work from the first chunk on while the import goes on.
    const file = tmpFile(
      'big.jsonl',
      Array.from({ length: 40_000 }, (_, i) =>
        JSON.stringify({
          custom_id: `r${i}`,
          user: `u${i % 2_000}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: `hello ${i} ${'x'.repeat(100)}` }],
        }),
      ),
    );
    const first = await runCli(['enqueue', file], e.env());
    expect(first.code).toBe(1);
    const batchId = /(batch_[0-9a-f]{24})/.exec(first.stderr)![1]!;
    const callsAtFailure = sim.stats().calls;
    // Memory comes back; the worker ran all along. Nothing of the failed batch may start once it failed (the ten
    // calls in flight at the failure may end): counted once every request of it has ended, when none can start.
    await admin.config('SET', 'maxmemory', '0');
    const batch = await waitFor(
      'the failed batch settled',
      async () => {
        const b = await e.batch(batchId);
        return b.cancelled + b.succeeded + b.failed === b.total ? b : undefined;
      },
      30_000,
      200,
    );
    expect(batch.status).toBe('failed');
    expect(batch.total).toBeGreaterThan(100);
    expect(sim.stats().calls - callsAtFailure).toBeLessThanOrEqual(10);
    expect(batch.succeeded).toBeLessThanOrEqual(callsAtFailure + 10);
    expect(batch.cancelled).toBeGreaterThanOrEqual(batch.total - callsAtFailure - 10);
    // One line per Redis condition, not one per job.
    const oomLines = worker
      .stderr()
      .split('\n')
      .filter((l) => /OOM|out of memory/i.test(l));
    expect(oomLines.length).toBeLessThanOrEqual(5);
  });
});
