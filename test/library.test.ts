import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { freePort } from '../src/cli/local-redis.js';
import { BatchNotFoundError, BudgetExceededError, Chatq, ChatqError, RedisUnavailableError } from '../src/index.js';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { createTestEnv, REDIS_URL, type TestEnv } from './helpers/test-env.js';

const chat = (id: string, user: string, content = 'hi') => ({
  custom_id: id,
  user,
  model: 'gpt-4o-mini',
  max_tokens: 20,
  messages: [{ role: 'user' as const, content }],
});

describe('the library (Chatq)', () => {
  let env: TestEnv;
  let sim: Simulator;
  let chatq: Chatq;
  const dir = mkdtempSync(join(tmpdir(), 'chatq-lib-'));
  beforeEach(async () => {
    env = await createTestEnv();
    sim = await startSimulator({ latencyMs: 5 });
    chatq = new Chatq({ redisUrl: REDIS_URL, prefix: env.prefix, logLevel: 'warn' });
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    await chatq.close();
    await sim.close();
    await env.cleanup();
  });

  it('submits a file path, emits the end of a batch it waits for, and estimates before sending', async () => {
    const file = join(dir, 'in.jsonl');
    writeFileSync(file, `${[chat('a', 'ann'), chat('b', 'bob')].map((l) => JSON.stringify(l)).join('\n')}\nnot json\n`);
    const estimate = await chatq.estimate(file);
    expect(estimate).toMatchObject({ requests: 2, users: 2 });
    expect(estimate.badLines.map((e) => [e.source, e.line])).toEqual([[file, 3]]);
    const worker = await chatq.startWorker({ baseUrl: sim.url, concurrency: 4 });
    try {
      const submitted = await chatq.submit(file);
      expect(submitted).toMatchObject({ requests: 2, rejectedLines: 1 });
      const ended: string[] = [];
      chatq.on('batch.completed', (b) => ended.push(b.id));
      expect(await chatq.wait(submitted.id, { pollMs: 50 })).toMatchObject({ status: 'completed', succeeded: 2 });
      expect(ended).toEqual([submitted.id]);
    } finally {
      await worker.close();
    }
  });

  it('a wait stops with its signal; a batch stopped by its budget rejects with BudgetExceededError', async () => {
    const submitted = await chatq.submit([chat('a', 'ann')], { maxCostUsd: 0.000001 });
    const controller = new AbortController();
    const waiting = chatq.wait(submitted.id, { signal: controller.signal, pollMs: 50 });
    controller.abort(new Error('stopped waiting'));
    await expect(waiting).rejects.toThrow('stopped waiting');
    const worker = await chatq.startWorker({ baseUrl: sim.url });
    try {
      const err = await chatq.wait(submitted.id, { pollMs: 50 }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(BudgetExceededError);
      expect((err as BudgetExceededError).batch).toMatchObject({ status: 'cancelled', cancelled: 1 });
      expect(sim.stats().calls).toBe(0);
    } finally {
      await worker.close();
    }
  });

  it('an input file that cannot be read is a ChatqError naming it, before anything is written', async () => {
    const missing = join(dir, 'missing.jsonl');
    await expect(chatq.submit(missing)).rejects.toThrow(new ChatqError(`${missing}: not found`));
    await expect(chatq.estimate(dir)).rejects.toThrow(new ChatqError(`${dir}: not a file`));
    expect(await env.redis.zcard(env.keys.batches)).toBe(0);
  });

  it('says which batch it does not know, and that Redis cannot be reached, as typed errors', async () => {
    await expect(chatq.status('batch_000000000000000000000000')).rejects.toBeInstanceOf(BatchNotFoundError);
    const nowhere = new Chatq({ redisUrl: `redis://127.0.0.1:${await freePort()}`, prefix: env.prefix });
    await expect(nowhere.submit([chat('a', 'ann')])).rejects.toBeInstanceOf(RedisUnavailableError);
    await nowhere.close();
  });

  it('refuses a negative budget, and any call after close(), each with a ChatqError that says so', async () => {
    await expect(chatq.submit([chat('a', 'ann')], { maxCostUsd: -1 })).rejects.toThrow(
      new ChatqError('maxCostUsd: expected a number of US dollars, 0 or more (got -1)'),
    );
    await chatq.close();
    await expect(chatq.submit([chat('a', 'ann')])).rejects.toThrow(
      new ChatqError('this Chatq is closed: make a new one to go on'),
    );
    expect(await env.redis.zcard(env.keys.batches)).toBe(0);
  });
});
