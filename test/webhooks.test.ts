import { randomBytes } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import OpenAI from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../src/cli/api-service.js';
import { createBatchRecord } from '../src/shared/batches/batch-imports.js';
import { newBatchId } from '../src/shared/ids.js';
import { failImport } from '../src/shared/batches/import-failure.js';
import { startWebhookService } from '../src/webhooks/webhook-service.js';
import { useWorld } from './helpers/in-process-worker.js';
import { runCli, testLogger, waitFor, waitForBatch } from './helpers/test-env.js';

const SECRET = `whsec_${randomBytes(32).toString('base64')}`;
const TOKEN = 'hooks-token';
const line = (i: number, content = 'hi') =>
  JSON.stringify({ custom_id: `r${i}`, user: `u${i}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

interface Received {
  headers: IncomingHttpHeaders;
  body: string;
  answered: number;
}

describe('webhooks', () => {
  const w = useWorld();
  let api: ApiService;
  let receiver: Server;
  const received: Received[] = [];
  let failuresLeft = 2;

  beforeEach(async () => {
    received.length = 0;
    failuresLeft = 2;
    // A receiver that fails its first two deliveries, then accepts everything.
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        const answered = failuresLeft-- > 0 ? 500 : 200;
        received.push({ headers: req.headers, body, answered });
        res.writeHead(answered).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`;
    api = await startApiService(
      w.env.config({ CHATQ_API_TOKENS: TOKEN, CHATQ_WEBHOOK_URL: url, CHATQ_WEBHOOK_SECRET: SECRET }),
      testLogger(),
      0,
    );
  });
  afterEach(async () => {
    await api.close();
    await new Promise((r) => receiver.close(r));
  });

  it('batch events, signed per Standard Webhooks, verified by the openai SDK; retried with the same webhook-id', async () => {
    await w.startWorker();
    const completed = await w.env.submit([line(1), line(2)]);
    await waitForBatch(w.env, completed.batchId);

    const client = new OpenAI({ apiKey: 'unused', webhookSecret: SECRET });
    // The receiver failed twice, then accepted: three deliveries of one event, one webhook-id.
    await waitFor('three deliveries', async () => received.length >= 3, 30_000);
    const first = received.slice(0, 3);
    expect(first.map((r) => r.answered)).toEqual([500, 500, 200]);
    expect(new Set(first.map((r) => r.headers['webhook-id'])).size).toBe(1);
    for (const r of first) {
      const event = await client.webhooks.unwrap(r.body, r.headers as Record<string, string>);
      expect(event).toMatchObject({ object: 'event', type: 'batch.completed', data: { id: completed.batchId } });
    }
    await expect(
      client.webhooks.unwrap(
        first[0]!.body.replace('completed', 'cancelled'),
        first[0]!.headers as Record<string, string>,
      ),
    ).rejects.toThrow(/signature/);

    // Cancelled and failed batches are told too (one user's 40 turns of 1 s each: the cancel comes long before its end).
    w.sim.configure({ latencyMs: 1000 });
    const slow = await w.env.submit(
      Array.from({ length: 40 }, (_, i) => line(i, `turn ${i}`)).map((l) =>
        l.replace(/"user":"u\d+"/, '"user":"one-user"'),
      ),
    );
    await waitFor('started', async () => (await w.env.batch(slow.batchId)).succeeded > 0, 30_000, 20);
    expect((await runCli(['cancel', slow.batchId], w.env.env())).code).toBe(0);
    const failedId = newBatchId();
    await createBatchRecord(w.env.redis, w.env.keys, {
      batchId: failedId,
      project: 'default',
      name: 'broken',
      input: 'x.jsonl',
      metadata: {},
    });
    await failImport(
      w.env.redis,
      w.env.keys,
      w.env.queues,
      failedId,
      { code: 'import_failed', message: 'test' },
      0,
      3600,
    );
    // An evaluation that ends below its min_pass: eval.failed, with the figures.
    w.sim.configure({ latencyMs: 0 });
    const graded = (i: number, expectText: string, tag: string) =>
      JSON.stringify({
        custom_id: `g${i}`,
        user: `g${i}`,
        model: 'gpt-4o-mini',
        messages: [{ role: 'user', content: 'hi' }],
        expect: { contains: expectText },
        tags: [tag],
      });
    const evaluation = await w.env.submit([graded(1, 'noted', 'greeting'), graded(2, 'zebra', 'animals')], {
      minPass: 0.9,
    });
    const wanted = [`batch.cancelled:${slow.batchId}`, `batch.failed:${failedId}`, `eval.failed:${evaluation.batchId}`];
    let seen: string[] = [];
    const events = await waitFor(
      'the other events',
      async () => {
        const all = await Promise.all(
          received
            .filter((r) => r.answered === 200)
            .map((r) => client.webhooks.unwrap(r.body, r.headers as Record<string, string>)),
        );
        seen = all.map((e) => `${e.type}:${(e.data as { id: string }).id}`);
        return wanted.every((x) => seen.includes(x)) ? all : undefined;
      },
      30_000,
    ).catch(async (err: Error) => {
      const batches = await Promise.all(
        [slow.batchId, failedId, evaluation.batchId].map((id) => w.env.batch(id).then((b) => `${id}: ${b.status}`)),
      );
      throw new Error(
        `${err.message}: wanted ${wanted.join(', ')}; delivered ${seen.join(', ')}; batches ${batches.join(', ')}; deliveries ${JSON.stringify(received.map((r) => r.answered))}`,
      );
    });
    expect(events.map((e) => `${e.type}:${(e.data as { id: string }).id}`)).toContain(
      `batch.completed:${completed.batchId}`,
    );
    // It names the tags whose pass rate is below min_pass too.
    expect(events.find((e) => (e.type as string) === 'eval.failed')!.data).toEqual({
      id: evaluation.batchId,
      pass_rate: 0.5,
      min_pass: 0.9,
      tags_below_min_pass: [{ tag: 'animals', passed: 0, graded: 1, pass_rate: 0 }],
    });

    // Deliveries are visible, newest first.
    const deliveries = await (
      await fetch(`${api.url}/v1/webhooks/deliveries`, { headers: { authorization: `Bearer ${TOKEN}` } })
    ).json();
    const ofCompleted = deliveries.data.filter((d: { batch: string }) => d.batch === completed.batchId).reverse();
    expect(
      ofCompleted.map((d: { attempt: number; outcome: string; status: number }) => [d.attempt, d.outcome, d.status]),
    ).toEqual([
      [1, 'failed', 500],
      [2, 'failed', 500],
      [3, 'delivered', 200],
    ]);
    const cli = await runCli(['webhooks'], w.env.env());
    expect(cli.stdout).toContain('batch.failed');
    expect(cli.stdout).not.toContain(SECRET);
  });
});

describe('webhooks with processes of different configurations', () => {
  const w = useWorld();

  it('a process without a webhook configuration leaves the events to one that has one', async () => {
    const received: string[] = [];
    const receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        received.push(body);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as { port: number }).port}/hooks`;
    // `chatq run` on a laptop: the same Redis, no webhook configuration. Its batch ends while it runs.
    const unconfigured = startWebhookService(w.env.config(), w.env.redis, w.env.keys, testLogger());
    try {
      await w.startWorker();
      const submitted = await w.env.submit([line(1)]);
      await waitForBatch(w.env, submitted.batchId);
      await unconfigured.flush(3_000);
      // The server with the receiver's configuration comes (back) up: the event is still there to deliver.
      const configured = startWebhookService(
        w.env.config({ CHATQ_WEBHOOK_URL: url, CHATQ_WEBHOOK_SECRET: SECRET }),
        w.env.redis,
        w.env.keys,
        testLogger(),
      );
      try {
        await waitFor('the delivery', async () => received.length > 0, 15_000);
        expect(JSON.parse(received[0]!)).toMatchObject({ type: 'batch.completed', data: { id: submitted.batchId } });
      } finally {
        await configured.close();
      }
    } finally {
      await unconfigured.close();
      await new Promise((r) => receiver.close(r));
    }
  });
});
