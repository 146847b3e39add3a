import { describe, expect, it } from 'vitest';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readBatchRequests } from '../src/shared/batches/read-store.js';
import { StrictInputError } from '../src/producer/import-errors.js';
import { runCli, waitForBatch } from './helpers/test-env.js';
import { useWorld } from './helpers/in-process-worker.js';

const V1_UUID = '123e4567-e89b-12d3-a456-426614174000';
const V4_UUID = '9b2f7c1e-4a6d-4e8b-9c3a-1d2e3f4a5b6c';
const chat = (fields: Record<string, unknown>) =>
  JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }], ...fields });

const FILE = [
  chat({ custom_id: 'ok-1', user: 'ann' }), // 1
  '{"custom_id": "broken", "user": "ann", ', // 2 broken JSON
  JSON.stringify({ custom_id: 'no-messages', user: 'ann', model: 'gpt-4o-mini' }), // 3 not a chat line
  JSON.stringify({ custom_id: 'no-user', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }), // 4 missing userid
  chat({ custom_id: 'v1-userid', userid: V1_UUID }), // 5 not a v4 userid
  chat({ custom_id: 'ok-1', user: 'bob' }), // 6 duplicate custom_id
  JSON.stringify({ custom_id: 'no-role', user: 'ann', model: 'gpt-4o-mini', messages: [{ content: 'x' }] }), // 7 message without role
  '', // 8 blank: ignored
  chat({ custom_id: 'ok-2', userid: V4_UUID }), // 9
  JSON.stringify({ user: 'cy', turns: [] }), // 10 script without turns
  JSON.stringify({
    custom_id: 'batch-ok',
    method: 'POST',
    url: '/v1/chat/completions',
    body: { model: 'gpt-4o-mini', user: 'dee', messages: [{ role: 'user', content: 'hi' }] },
  }), // 11
  JSON.stringify({
    custom_id: 'bad-url',
    method: 'POST',
    url: '/v1/embeddings',
    body: { model: 'x', user: 'dee', messages: [{ role: 'user', content: 'hi' }] },
  }), // 12
];

describe('bad input lines', () => {
  const w = useWorld();

  it('reports each bad line with its line number, field and reason, and processes the good ones', async () => {
    const result = await w.env.submit(FILE);
    const byLine = new Map(result.errors.map((e) => [e.line, e]));
    expect([...byLine.keys()]).toEqual([2, 3, 4, 5, 6, 7, 10, 12]);
    expect(byLine.get(2)!.message).toMatch(/invalid JSON/);
    expect(byLine.get(3)!.message).toMatch(/expected "messages".*"turns".*"body"/);
    expect(byLine.get(4)).toMatchObject({ field: 'userid' });
    expect(byLine.get(4)!.message).toMatch(/add "userid".*or "user"/);
    expect(byLine.get(5)).toMatchObject({ field: 'userid' });
    expect(byLine.get(5)!.message).toMatch(/not a UUID v4/);
    expect(byLine.get(6)).toMatchObject({ field: 'custom_id' });
    expect(byLine.get(6)!.message).toMatch(/duplicate custom_id "ok-1"/);
    expect(byLine.get(7)).toMatchObject({ field: 'messages.0.role' });
    expect(byLine.get(10)).toMatchObject({ field: 'turns' });
    expect(byLine.get(12)).toMatchObject({ field: 'url' });
    expect(result.rejectedLines).toBe(8);
    expect(result.acceptedRequests).toBe(3);

    await w.startWorker();
    const batch = await waitForBatch(w.env, result.batchId);
    expect(batch).toMatchObject({ total: 3, succeeded: 3, rejectedLines: 8 });
    const done: string[] = [];
    for await (const r of readBatchRequests(w.env.redis, w.env.keys, result.batchId)) done.push(r.customId);
    expect(done).toEqual(['ok-1', 'ok-2', 'batch-ok']);
    expect(w.sim.stats().nonV4Calls).toBe(0);
  });

  it('--strict rejects the whole file and stores nothing', async () => {
    await expect(w.env.submit(FILE, { strict: true })).rejects.toBeInstanceOf(StrictInputError);
    expect(await w.env.redis.zcard(w.env.keys.batches)).toBe(0);
  });

  it('the CLI prints file:line: field: reason and exits 1 (2 with --strict)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatq-bad-'));
    const file = join(dir, 'mixed.jsonl');
    writeFileSync(file, FILE.join('\n'));
    const loose = await runCli(['enqueue', file], w.env.env());
    expect(loose.code).toBe(1);
    expect(loose.stderr).toContain(`${file}:5: field "userid": "${V1_UUID}" is not a UUID v4`);
    expect(loose.stdout.trim()).toMatch(/^batch_[0-9a-f]{24}$/);
    const strict = await runCli(['enqueue', '--strict', file], w.env.env());
    expect(strict.code).toBe(2);
    expect(strict.stderr).toContain('--strict rejects the whole file');
    expect(strict.stdout).toBe('');
  });
});
