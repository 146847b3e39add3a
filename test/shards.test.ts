import { createServer, type Server } from 'node:http';
import OpenAI, { toFile } from 'openai';
import { Queue } from 'bullmq';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { everyTag } from '../src/shared/keys.js';
import { WEBHOOK_QUEUE } from '../src/webhooks/webhook-delivery.js';
import { partsOf } from '../src/shared/batches/sharded-batch.js';
import { startWorker } from './helpers/in-process-worker.js';
import {
  createTestEnv,
  runCli,
  spawnWorker,
  testLogger,
  waitFor,
  type TestEnv,
  type WorkerProcess,
} from './helpers/test-env.js';

const TOKEN = 'shards-token';
const line = (i: number, users: number) =>
  JSON.stringify({
    custom_id: `r${i}`,
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'gpt-4o-mini', user: `u${i % users}`, messages: [{ role: 'user', content: `hi ${i}` }] },
  });

/** CHATQ_SHARDS > 1 on one Redis (the cluster tests run the same over three masters). */
describe('sharded batches (CHATQ_SHARDS=4)', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c();
  });
  async function setUp(): Promise<{ env: TestEnv; sim: Simulator }> {
    const env = await createTestEnv(undefined, { shards: 4 });
    const sim = await startSimulator({ latencyMs: 2, jitterMs: 1, recordMessages: false });
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    return { env, sim };
  }

  it('a batch made with the OpenAI SDK runs over every shard; the API reads it whole and in order; one webhook event for the batch, none for its parts', async () => {
    const { env, sim } = await setUp();
    const events: { type: string; data: { id: string } }[] = [];
    const receiver: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        events.push(JSON.parse(body) as (typeof events)[number]);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => receiver.close(r)));
    const hooks = {
      CHATQ_WEBHOOK_URL: `http://127.0.0.1:${(receiver.address() as { port: number }).port}/`,
      CHATQ_WEBHOOK_SECRET: 'whsec_c2hhcmRzLXRlc3Qtc2VjcmV0LXNoYXJkcy10ZXN0',
    };
    const api = await startApiService(env.config({ CHATQ_API_TOKENS: TOKEN, ...hooks }), testLogger(), 0);
    cleanups.push(() => api.close());
    const worker: WorkerProcess = spawnWorker(env.env({ CHATQ_BASE_URL: sim.url, ...hooks }));
    cleanups.push(async () => worker.child.kill('SIGKILL'));

    const client = new OpenAI({ apiKey: TOKEN, baseURL: `${api.url}/v1` });
    const input = Array.from({ length: 200 }, (_, i) => line(i, 40)).join('\n');
    const file = await client.files.create({ file: await toFile(Buffer.from(input), 'in.jsonl'), purpose: 'batch' });
    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const done = await waitFor(
      'the batch to complete',
      async () => {
        const b = await client.batches.retrieve(created.id);
        return b.status === 'completed' ? b : undefined;
      },
      60_000,
      200,
    );
    expect(done.request_counts).toEqual({ total: 200, completed: 200, failed: 0 });
    const lines = (await (await client.files.content(done.output_file_id!)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { custom_id: string });
    expect(lines.map((l) => l.custom_id)).toEqual(Array.from({ length: 200 }, (_, i) => `r${i}`));

    // Its requests sit in every shard's part; requests are read by their ids.
    const parts = await Promise.all(
      env.keys.shards.map((k, i) => env.redis.llen(k.batchRequests(`${created.id}_s${i}of4`))),
    );
    expect(
      parts.every((n) => n > 0),
      JSON.stringify(parts),
    ).toBe(true);
    expect(parts.reduce((a, b) => a + b, 0)).toBe(200);
    const usage = await (
      await fetch(`${api.url}/v1/usage?group_by=batch`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json();
    expect(usage.data.find((r: { key?: string; batch?: string }) => (r.key ?? r.batch) === created.id)).toMatchObject({
      requests: 200,
    });

    await waitFor('the batch event', async () => events.some((e) => e.type === 'batch.completed'), 20_000);
    // Every event emitted is delivered: no tag's event list holds one, no delivery waits or runs.
    const queue = new Queue(WEBHOOK_QUEUE, { connection: env.redis, prefix: env.keys.prefix });
    await waitFor('every event delivered', async () => {
      const lists = await Promise.all(everyTag(env.keys).map((k) => env.redis.llen(k.events)));
      const counts = await queue.getJobCounts('active', 'waiting', 'delayed', 'prioritized');
      return lists.every((n) => n === 0) && Object.values(counts).every((n) => n === 0);
    });
    await queue.close();
    expect(events.map((e) => [e.type, e.data.id])).toEqual([['batch.completed', created.id]]);
    expect(events.some((e) => e.data.id.includes('_s'))).toBe(false);
  });

  it('a completion window expires every part: the batch ends "expired" once they all have, with one event', async () => {
    const env = await createTestEnv(undefined, { shards: 4 });
    const sim = await startSimulator({ latencyMs: 250, jitterMs: 0, recordMessages: false });
    cleanups.push(
      () => env.cleanup(),
      () => sim.close(),
    );
    const worker = spawnWorker(env.env({ CHATQ_BASE_URL: sim.url, CHATQ_RECONCILE_MS: '200' }));
    cleanups.push(async () => worker.child.kill('SIGKILL'));
    // 8 users x 10 turns at 250 ms: about 2.5 s of work per user, in a 2 s window.
    const lines = Array.from({ length: 80 }, (_, i) =>
      JSON.stringify({
        custom_id: `t${i}`,
        user: `slow-${i % 8}`,
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: `turn ${i}` }],
      }),
    );
    const submitted = await env.submit(lines, { completionWindow: { text: '2s', ms: 2_000 } });
    const expired = await waitFor(
      'the batch to expire',
      async () => {
        const b = await env.batch(submitted.batchId);
        return b.status === 'expired' ? b : undefined;
      },
      30_000,
    );
    expect(expired.expired).toBeGreaterThan(0);
    expect(expired.succeeded + expired.expired).toBe(80);
    const parts = await Promise.all(
      env.keys.shards.map((k, i) => env.redis.hget(k.batch(`${submitted.batchId}_s${i}of4`), 'status')),
    );
    expect(
      parts.every((s) => s === 'expired' || s === 'completed'),
      JSON.stringify(parts),
    ).toBe(true);
    // The batch's own record ends too, and its one event is recorded (on the list: this worker has no webhooks to
    // deliver it, so it leaves it there for a process that has).
    await waitFor(
      'the record to end',
      async () => (await env.redis.hget(env.keys.batch(submitted.batchId), 'status')) === 'expired',
      20_000,
    );
    const events = (await env.redis.lrange(env.keys.events, 0, -1)).map((e) => JSON.parse(e) as { batch: string });
    expect(events.filter((e) => e.batch === submitted.batchId)).toEqual([
      expect.objectContaining({ type: 'batch.expired', batch: submitted.batchId }),
    ]);
  });

  it('another CHATQ_SHARDS is refused while work written under this one is unfinished, with a message that says what to do', async () => {
    const { env, sim } = await setUp();
    const submitted = await env.submit(
      Array.from({ length: 20 }, (_, i) =>
        JSON.stringify({
          custom_id: `c${i}`,
          user: `u${i}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
        }),
      ),
    );
    const other = env.env({ CHATQ_SHARDS: '2', CHATQ_BASE_URL: sim.url });
    const worker = await runCli(['worker'], other, 30_000);
    expect(worker.code).toBe(2);
    expect(worker.stderr).toMatch(/unfinished work written with CHATQ_SHARDS=4 \(now 2\)/);
    expect(worker.stderr).not.toMatch(/\n\s+at /);
    const enqueue = await runCli(['status', submitted.batchId], other);
    expect(enqueue.code).toBe(2);

    // Once that work is done (here: cancelled), the count may change, and the batch still reads whole.
    expect((await runCli(['cancel', submitted.batchId], env.env())).code).toBe(0);
    const status = await runCli(['status', submitted.batchId, '--json'], other);
    expect(status.code, status.stderr).toBe(0);
    expect(JSON.parse(status.stdout).batch).toMatchObject({ status: 'cancelled', cancelled: 20 });
  });

  it('a cancel that comes after every part has completed, before the batch record ends, leaves the batch "completed"', async () => {
    const { env, sim } = await setUp();
    const submitted = await env.submit(Array.from({ length: 40 }, (_, i) => line(i, 8)));
    // A worker without the producer services: nothing ends the batch record from its parts but the cancel.
    const pool = await startWorker(env.config({ CHATQ_RECONCILE_MS: '3600000' }), sim.url);
    cleanups.push(() => pool.close());
    const parts = (await env.redis.hget(env.keys.batch(submitted.batchId), 'shards'))!;
    expect(Number(parts)).toBe(4);
    await waitFor(
      'every part done',
      async () => {
        const all = partsOf(env.keys, submitted.batchId, { shards: parts });
        const statuses = await Promise.all(all.map((p) => env.redis.hget(p.keys.batch(p.id), 'status')));
        return statuses.every((st) => st === 'completed');
      },
      30_000,
    );
    expect(await env.redis.hget(env.keys.batch(submitted.batchId), 'status')).toBe('in_progress');
    const r = await runCli(['cancel', submitted.batchId], env.env());
    expect(r.code, r.stderr).toBe(0);
    expect(await env.batch(submitted.batchId)).toMatchObject({ status: 'completed', succeeded: 40, cancelled: 0 });
  });
});
