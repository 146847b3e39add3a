import { describe, expect, it, beforeEach, afterEach } from 'vitest';
import OpenAI, { toFile } from 'openai';
import { startApiService, type ApiService } from '../src/cli/api-service.js';
import { testLogger, waitFor } from './helpers/test-env.js';
import { legacyUserid } from '../src/shared/userid.js';
import { formatUsd } from '../src/shared/usage/pricing.js';
import { useWorld } from './helpers/in-process-worker.js';

const TOKEN = 'chatq-test-token-123';

function batchFile(prefix: string, users: number, turns: number): string {
  const lines: string[] = [];
  for (let t = 0; t < turns; t++) {
    for (let u = 0; u < users; u++) {
      lines.push(
        JSON.stringify({
          custom_id: `${prefix}-u${u}-t${t}`,
          method: 'POST',
          url: '/v1/chat/completions',
          body: {
            model: 'gpt-4o-mini',
            user: `${prefix}-user-${u}`,
            messages: [{ role: 'user', content: `[seq ${t}] My name is U${u}.` }],
          },
        }),
      );
    }
  }
  return `${lines.join('\n')}\n`;
}

describe('HTTP API driven by the official openai SDK', () => {
  const w = useWorld({ latencyMs: 5, jitterMs: 5 });
  let api: ApiService;
  let client: OpenAI;

  beforeEach(async () => {
    api = await startApiService(w.env.config({ CHATQ_API_TOKENS: TOKEN }), testLogger(), 0);
    client = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: TOKEN, maxRetries: 0 });
  });
  afterEach(async () => {
    await api.close();
  });

  it('uploads, creates, polls, downloads, lists and cancels batches', async () => {
    await w.startWorker({ CHATQ_CONCURRENCY: '20' });
    const file = await client.files.create({
      file: await toFile(Buffer.from(batchFile('a', 5, 4)), 'input.jsonl'),
      purpose: 'batch',
    });
    expect(file).toMatchObject({ object: 'file', purpose: 'batch', filename: 'input.jsonl' });
    expect(await (await client.files.content(file.id)).text()).toBe(batchFile('a', 5, 4));

    const created = await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { team: 'evals' },
    });
    expect(created).toMatchObject({
      object: 'batch',
      status: 'validating',
      input_file_id: file.id,
      metadata: { team: 'evals' },
    });

    const done = await waitFor('batch completed', async () => {
      const b = await client.batches.retrieve(created.id);
      return b.status === 'completed' ? b : undefined;
    });
    expect(done.request_counts).toEqual({ total: 20, completed: 20, failed: 0 });
    expect(done.usage!.input_tokens).toBeGreaterThan(0);
    expect(done.usage!.total_tokens).toBe(done.usage!.input_tokens + done.usage!.output_tokens);
    expect(done.error_file_id).toBeNull();

    const output = (await (await client.files.content(done.output_file_id!)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const ids = output.map((l) => l.custom_id);
    expect(new Set(ids).size).toBe(20);
    expect(ids.sort()).toEqual(
      batchFile('a', 5, 4)
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).custom_id)
        .sort(),
    );
    for (const line of output) {
      expect(line.response.status_code).toBe(200);
      expect(line.response.body.choices[0].message.content).toMatch(/\(reply \d+\)$/);
    }

    // One user's requests, newest first, in pages; and one request with its attempt history.
    const userid = legacyUserid('a-user-0');
    const get = async (path: string) =>
      (await fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` } })).json();
    const first = await get(`/v1/users/${userid}/requests?limit=3`);
    expect(first.data.map((r: { custom_id: string }) => r.custom_id)).toEqual(['a-u0-t3', 'a-u0-t2', 'a-u0-t1']);
    expect(first.has_more).toBe(true);
    const second = await get(`/v1/users/${userid}/requests?limit=3&after=${first.last_id}`);
    expect(second.data.map((r: { custom_id: string }) => r.custom_id)).toEqual(['a-u0-t0']);
    expect(second.has_more).toBe(false);
    const one = await get(`/v1/requests/${first.data[0].id}`);
    expect(one).toMatchObject({
      custom_id: 'a-u0-t3',
      line: 16,
      status: 'succeeded',
      attempts: 1,
      attempt_log: [{ code: 'ok', status: 200 }],
    });

    // A second batch, one user with many turns, cancelled while it runs.
    const slow = await client.files.create({
      file: await toFile(Buffer.from(batchFile('b', 1, 60)), 'slow.jsonl'),
      purpose: 'batch',
    });
    const running = await client.batches.create({
      input_file_id: slow.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    await waitFor(
      'second batch started',
      async () => (await client.batches.retrieve(running.id)).request_counts!.completed > 0,
    );
    const cancelling = await client.batches.cancel(running.id);
    expect(['cancelling', 'cancelled']).toContain(cancelling.status);
    const cancelled = await waitFor('batch cancelled', async () => {
      const b = await client.batches.retrieve(running.id);
      return b.status === 'cancelled' ? b : undefined;
    });
    expect(cancelled.request_counts!.completed).toBeGreaterThan(0);
    expect(cancelled.request_counts!.completed).toBeLessThan(60);
    expect(cancelled.request_counts!.completed + cancelled.request_counts!.failed).toBe(60);
    const errors = (await (await client.files.content(cancelled.error_file_id!)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(errors.every((l) => l.error.code === 'cancelled')).toBe(true);

    // Pages of one, newest first, following `after` cursors.
    const seen: string[] = [];
    let page = await client.batches.list({ limit: 1 });
    seen.push(...page.data.map((b) => b.id));
    while (page.hasNextPage()) {
      page = await page.getNextPage();
      seen.push(...page.data.map((b) => b.id));
    }
    expect(seen).toEqual([running.id, created.id]);
    const all: string[] = [];
    for await (const b of client.batches.list({ limit: 1 })) all.push(b.id);
    expect(all).toEqual(seen);
  });

  it('metadata.dry_run: the estimate of an uploaded file, and no batch', async () => {
    const file = await client.files.create({
      file: await toFile(
        Buffer.from(`${batchFile('d', 4, 3)}{"custom_id":"bad","body":{"messages":"none"}}\n`),
        'input.jsonl',
      ),
      purpose: 'batch',
    });
    const estimate = (await client.batches.create({
      input_file_id: file.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
      metadata: { dry_run: 'true' },
    })) as unknown as Record<string, unknown>;
    expect(estimate).toMatchObject({
      object: 'batch.estimate',
      input_file_id: file.id,
      requests: 12,
      users: 4,
      longest_chain: { requests: 3, gap_ms: 0 },
      bad_lines: 1,
      binds: 'chain',
    });
    const cost = estimate.cost_usd as { low: number; expected: number; high: number };
    expect(cost.low).toBeGreaterThan(0);
    expect(cost.low).toBeLessThanOrEqual(cost.expected);
    expect(cost.expected).toBeLessThanOrEqual(cost.high);
    expect(estimate.duration_ms).toBeGreaterThan(0);
    // The dashboard shows the same estimate for the uploaded file, before any batch is made of it.
    const open = (path: string) =>
      fetch(`${api.url}${path}`, { headers: { authorization: `Bearer ${TOKEN}` }, redirect: 'manual' });
    const jump = await open(`/files?id=${file.id}`);
    expect(jump.status).toBe(303);
    expect(jump.headers.get('location')).toBe(`/files/${file.id}`);
    const page = await open(`/files/${file.id}`);
    expect(page.status).toBe(200);
    const text = await page.text();
    const usd = (v: number) => formatUsd(Math.round(v * 1e9));
    expect(text).toContain('<span data-field="requests">12 (4 users)</span>');
    expect(text).toContain(
      `<span data-field="cost">${usd(cost.low)} - ${usd(cost.high)} (expected ${usd(cost.expected)})</span>`,
    );
    expect(text).toMatch(/<span data-field="time">[^<]*, bound by chain<\/span>/);
    expect(text).toContain('Lines of this file that are not requests (they would be rejected): 1.');
    expect((await open('/files/file-nosuchfile')).status).toBe(404);
    expect((await client.batches.list()).data).toEqual([]);
  });

  it("lists files as OpenAI does: the token's project's uploads and output and error files, newest first, with purpose, limit, after and order", async () => {
    await api.close();
    api = await startApiService(w.env.config({ CHATQ_API_TOKENS: 'alpha:tok-a,beta:tok-b' }), testLogger(), 0);
    const alpha = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'tok-a', maxRetries: 0 });
    const beta = new OpenAI({ baseURL: `${api.url}/v1`, apiKey: 'tok-b', maxRetries: 0 });
    await w.startWorker({ CHATQ_CONCURRENCY: '5' });
    const upload = async (client: OpenAI, name: string, text: string) =>
      (await client.files.create({ file: await toFile(Buffer.from(text), name), purpose: 'batch' })).id;
    const failing = {
      custom_id: 'bad',
      method: 'POST',
      url: '/v1/chat/completions',
      body: { model: 'gpt-4o-mini', user: 'f-fails', messages: [{ role: 'user', content: '[fail 400]' }] },
    };
    const lines = `${batchFile('f', 2, 1)}${JSON.stringify(failing)}\n`;
    const first = await upload(alpha, 'one.jsonl', lines);
    const second = await upload(alpha, 'two.jsonl', batchFile('g', 1, 1));
    const betas = await upload(beta, 'beta.jsonl', batchFile('h', 1, 1));
    const batch = await alpha.batches.create({
      input_file_id: first,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    await waitFor('batch completed', async () => (await alpha.batches.retrieve(batch.id)).status === 'completed');

    const listed = (await alpha.files.list()).data;
    expect(listed.map((f) => f.id)).toEqual([`file-out-${batch.id}`, `file-err-${batch.id}`, second, first]);
    expect(listed[0]).toMatchObject({ object: 'file', purpose: 'batch_output', filename: `${batch.id}_output.jsonl` });
    expect(listed[3]).toMatchObject({ object: 'file', purpose: 'batch', filename: 'one.jsonl' });
    expect((await beta.files.list()).data.map((f) => f.id)).toEqual([betas]);
    expect((await alpha.files.list({ purpose: 'batch' })).data.map((f) => f.id)).toEqual([second, first]);
    expect((await alpha.files.list({ order: 'asc' })).data.map((f) => f.id)).toEqual(listed.map((f) => f.id).reverse());
    // Cursor pages, one file each, followed by the SDK (after = the last id of a page).
    const page = await alpha.files.list({ limit: 1 });
    expect(page.data.map((f) => f.id)).toEqual([listed[0]!.id]);
    expect(page.has_more).toBe(true);
    const paged: string[] = [];
    for await (const f of alpha.files.list({ limit: 1 })) paged.push(f.id);
    expect(paged).toEqual(listed.map((f) => f.id));
    await expect(alpha.files.list({ after: betas })).rejects.toMatchObject({ status: 400 });
    // A deleted upload leaves the list.
    await alpha.files.delete(second);
    expect((await alpha.files.list({ purpose: 'batch' })).data.map((f) => f.id)).toEqual([first]);
  });
});
