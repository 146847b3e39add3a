import { Queue } from 'bullmq';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import type { StoredRequest } from '../src/shared/request-record.js';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { runCli, waitFor, waitForBatch } from './helpers/test-env.js';
import { WEBHOOK_QUEUE } from '../src/webhooks/webhook-delivery.js';

const TOKEN = 'expiry-token';
const turn = (i: number, user = 'slow-user') =>
  JSON.stringify({
    custom_id: `t${i}`,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `turn ${i}` }],
  });

async function requestsOf(w: ReturnType<typeof useWorld>, batchId: string): Promise<StoredRequest[]> {
  const all: StoredRequest[] = [];
  for await (const r of readBatchRequests(w.env.redis, w.env.keys, batchId)) all.push(r);
  return all;
}

describe('completion_window', () => {
  // One user's 40 turns at ~250 ms each cannot be done in 2 s.
  const w = useWorld({ latencyMs: 250 });
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN });

  it('what is not done in time ends "expired": results kept, the rest in the error file as batch_expired; retry --status expired', async () => {
    const lines = Array.from({ length: 40 }, (_, i) => turn(i));
    const submitted = await w.env.submit(lines, { completionWindow: { text: '2s', ms: 2_000 } });
    const quick = await w.env.submit([turn(0, 'quick-user')], { completionWindow: { text: '1h', ms: 3_600_000 } });
    await w.startWorker({ CHATQ_RECONCILE_MS: '200' });

    const expired = await waitFor(
      'the batch to expire',
      async () => {
        const b = await w.env.batch(submitted.batchId);
        return b.status === 'expired' ? b : undefined;
      },
      30_000,
    );
    expect(expired.succeeded).toBeGreaterThan(0);
    expect(expired.succeeded).toBeLessThan(40);
    expect(expired.expired).toBe(40 - expired.succeeded - expired.failed);
    expect(expired.expiredAt).not.toBeNull();
    expect((await waitForBatch(w.env, quick.batchId)).status).toBe('completed');

    const requests = await requestsOf(w, submitted.batchId);
    const late = requests.filter((r) => r.status === 'expired');
    expect(late.length).toBe(expired.expired);
    expect(late.every((r) => r.error?.code === 'batch_expired')).toBe(true);
    // Order held: every expired turn comes after every succeeded one.
    expect(Math.min(...late.map((r) => r.seq))).toBeGreaterThan(
      Math.max(...requests.filter((r) => r.status === 'succeeded').map((r) => r.seq)),
    );

    // The webhook event, and the batch as the OpenAI SDK reads it.
    // Recorded (still on the list, or already a delivery job of the API's dispatcher: job id = event id).
    const events = (await w.env.redis.lrange(w.env.keys.events, 0, -1)).map(
      (e) => JSON.parse(e) as { type: string; batch: string },
    );
    const hooks = new Queue(WEBHOOK_QUEUE, { connection: w.env.redis, prefix: w.env.prefix });
    const queued = await hooks.getJob(`evt_${submitted.batchId.replace(/^batch_/, '')}_expired`);
    await hooks.close();
    expect(
      events.some((e) => e.type === 'batch.expired' && e.batch === submitted.batchId) ||
        queued?.data.type === 'batch.expired',
    ).toBe(true);
    const client = new OpenAI({ apiKey: TOKEN, baseURL: `${a.api.url}/v1` });
    const seen = await client.batches.retrieve(submitted.batchId);
    expect(seen.status).toBe('expired');
    expect(seen.completion_window).toBe('2s');
    expect(seen.expires_at! - seen.created_at).toBe(2);
    expect(seen.expired_at).toBeGreaterThanOrEqual(seen.expires_at!);
    expect(seen.request_counts).toEqual({ total: 40, completed: expired.succeeded, failed: 40 - expired.succeeded });
    const errorLines = (await (await client.files.content(seen.error_file_id!)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { error: { code: string } });
    expect(errorLines.filter((l) => l.error.code === 'batch_expired').length).toBe(expired.expired);
    expect((await (await client.files.content(seen.output_file_id!)).text()).trim().split('\n').length).toBe(
      expired.succeeded,
    );

    // What expired, sent again as a new batch.
    const retried = await runCli(['retry', submitted.batchId, '--status', 'expired'], w.env.env());
    expect(retried.code, retried.stderr).toBe(0);
    const again = await waitForBatch(w.env, retried.stdout.trim());
    expect(again).toMatchObject({ total: expired.expired, succeeded: expired.expired });
    expect((await requestsOf(w, again.id)).map((r) => r.customId)).toEqual(late.map((r) => r.customId));
  });

  it('refuses a window it cannot read, saying which field and what to write', async () => {
    const res = await fetch(`${a.api.url}/v1/batches`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        input_file_id: 'file-nope',
        endpoint: '/v1/chat/completions',
        completion_window: '3 weeks',
      }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { param: string; message: string } }).error).toMatchObject({
      param: 'completion_window',
      message: expect.stringContaining('24h'),
    });
    const cli = await runCli(['enqueue', 'examples/', '--completion-window', '0s'], w.env.env());
    expect(cli.code).toBe(2);
    expect(cli.stderr).toContain('--completion-window');
  });
});
