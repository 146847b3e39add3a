import { describe, expect, it } from 'vitest';
import { PER_PROJECT_SUBSCRIBERS } from '../../src/dashboard/live-updates.js';
import { CapacityLimiter, isReservation } from '../../src/worker/capacity/capacity-limiter.js';
import { chatLines } from '../helpers/api-batches.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { startApiService } from '../../src/cli/api-service.js';
import { startLocalRedis } from '../../src/cli/local-redis.js';
import { createTestEnv, testLogger, waitForBatch } from '../helpers/test-env.js';

const A = 'tok-alpha-edges';
const B = 'tok-beta-edges';

describe('tenants: live streams, usage ids and the limiter at their edges', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${A},beta:${B}` });
  const get = (token: string, path: string, init: RequestInit = {}) =>
    fetch(`${a.api.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

  it('a live stream opened with a session ends when that session is signed out', async () => {
    const batch = await w.env.submit(chatLines(1), { project: 'alpha' });
    const login = await fetch(`${a.api.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${A}`,
    });
    const cookie = login.headers.get('set-cookie')!.split(';')[0]!;
    const stream = await fetch(`${a.api.url}/ui/events?batches=${batch.batchId}`, { headers: { cookie } });
    expect(stream.status).toBe(200);
    const reader = stream.body!.getReader();
    await reader.read();
    const out = await fetch(`${a.api.url}/logout`, { method: 'POST', redirect: 'manual', headers: { cookie } });
    expect(out.status).toBe(303);
    // The stream ends (reads come to done) instead of sending on after the sign-out.
    for (;;) {
      const { done } = await reader.read();
      if (done) break;
    }
  });

  it("usage by batch answers 404 for any id that is not a visible batch, never 5xx, and the same for another project's", async () => {
    const mine = await w.env.submit(chatLines(2), { project: 'alpha' });
    await w.startWorker();
    await waitForBatch(w.env, mine.batchId);
    const usage = async (token: string, batch: string) => {
      const r = await get(token, `/v1/usage?group_by=model&batch=${encodeURIComponent(batch)}`);
      return { status: r.status, body: (await r.json()) as { error?: { message: string; code: string } } };
    };
    expect((await usage(A, mine.batchId)).status).toBe(200);
    const unknown = 'batch_000000000000000000000000';
    for (const id of [
      `${mine.batchId}:reqs`,
      `${mine.batchId}:cids`,
      `${mine.batchId}:errors`,
      `${mine.batchId}-1`,
      'x'.repeat(200),
      unknown,
    ]) {
      for (const token of [A, B]) expect((await usage(token, id)).status, `${token} ${id}`).toBe(404);
    }
    // Another project's batch reads exactly as an unknown one: same status, same code, same message shape.
    const other = await usage(B, mine.batchId);
    const none = await usage(B, unknown);
    expect(other.status).toBe(404);
    expect(other.body.error!.code).toBe(none.body.error!.code);
    expect(other.body.error!.message.replace(mine.batchId, 'ID')).toBe(none.body.error!.message.replace(unknown, 'ID'));
  });

  it('the limiter expires log entries that settled at 0 tokens without a Redis error', async () => {
    const k = w.env.keys;
    await w.env.redis.set(k.credentialsProven, '1');
    const limiter = new CapacityLimiter(
      w.env.redis,
      k,
      { rpm: 0, tpm: 10_000, modelLimits: {}, defaultMaxTokens: 100, lockMs: 1_000 },
      'edge',
    );
    // A call that failed settled its entry at 0 tokens, two minutes ago: the next reservation expires it.
    const [seconds] = await w.env.redis.time();
    await w.env.redis.zadd(k.limitTokenLog('global'), Number(seconds) * 1000 - 120_000, 'old:1');
    await w.env.redis.hset(k.limitTokens('global'), 'old:1', '0', '__total', '0');
    const r = await limiter.acquire('m', { model: 'm', messages: [{ role: 'user', content: 'hi' }], max_tokens: 10 });
    expect(isReservation(r)).toBe(true);
    expect(await w.env.redis.zscore(k.limitTokenLog('global'), 'old:1')).toBeNull();
  });
});

describe('tenants: a burst of live pages', () => {
  it('holds no more streams than the per-project cap, even while Redis is slow to say what they may watch', async () => {
    // A Redis of its own, paused while the burst arrives: every page has passed the cap's check before any is
    // subscribed, which is where the cap was checked before.
    const local = await startLocalRedis({ appendfsync: 'off' });
    const env = await createTestEnv(local.url);
    const api = await startApiService(env.config({ CHATQ_API_TOKENS: `alpha:${A},beta:${B}` }), testLogger(), 0);
    const responses: Response[] = [];
    try {
      const batch = await env.submit(chatLines(1), { project: 'alpha' });
      const open = (token: string) =>
        fetch(`${api.url}/ui/events?batches=${batch.batchId}`, { headers: { authorization: `Bearer ${token}` } });
      await env.redis.call('CLIENT', 'PAUSE', '1500', 'ALL');
      const burst = Array.from({ length: PER_PROJECT_SUBSCRIBERS + 100 }, () => open(A));
      responses.push(...(await Promise.all(burst)));
      const streaming = responses.filter((r) => r.status === 200).length;
      expect(streaming).toBeLessThanOrEqual(PER_PROJECT_SUBSCRIBERS);
      expect(streaming).toBeGreaterThan(0);
      // Beta's page is not locked out by alpha's burst (it watches nothing of its own here: 204, not 429).
      expect((await open(B)).status).toBe(204);
    } finally {
      await Promise.all(responses.map((r) => r.body?.cancel().catch(() => undefined)));
      await api.close();
      await env.cleanup();
      await local.stop();
    }
  });
});
