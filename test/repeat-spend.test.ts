import { describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { RequestStore } from '../src/worker/store/request-store.js';
import { foldUsage } from '../src/shared/usage/usage-fold.js';
import { useTestEnv } from './helpers/in-process-worker.js';
import { runCli } from './helpers/test-env.js';

const usage = { prompt_tokens: 100, completion_tokens: 50, total_tokens: 150, cached_tokens: 0, reasoning_tokens: 0 };
const reply = (id: string) => ({ id, object: 'chat.completion', choices: [], usage });

describe('repeat spend: every call the upstream answered counts', () => {
  const t = useTestEnv();

  it('a second result of a request (its call made again after a takeover) adds its cost as repeat spend; a write of the same call again does not', async () => {
    const { env } = t;
    const submitted = await env.submit([
      JSON.stringify({ custom_id: 'r1', user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
    ]);
    const id = `${submitted.batchId}-1`;
    const store = new RequestStore([env.redis], env.keys, 3600, env.queues);
    const owner = {
      userid: (await env.redis.hget(env.keys.request(id), 'userid'))!,
      model: 'gpt-4o-mini',
      batch: submitted.batchId,
      project: 'default',
    };
    const result = (upstreamId: string) => ({
      status: 'succeeded' as const,
      response: reply(upstreamId),
      upstream: { upstream_request_id: upstreamId },
      usage,
      costNano: 45_000,
      attempts: [{ at: Date.now(), status: 200, code: 'ok', ms: 5 }],
    });
    await store.finish(id, owner, result('chatcmpl-first'));
    // The same call's result written again (its first write's reply was lost): not a repeat.
    await store.finish(id, owner, result('chatcmpl-first'));
    // A second call of the request (a run taken over), answered and paid: repeat spend.
    await store.finish(id, owner, result('chatcmpl-second'));
    await foldUsage(env.redis, env.keys);
    const batch = await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId);
    expect(batch).toMatchObject({
      requests: 1,
      cost_nano: 90_000,
      repeat_calls: 1,
      repeat_cost_nano: 45_000,
      total_tokens: 300,
    });
    const report = await runCli(['report', '--by', 'batch', '--format', 'json'], env.env());
    expect(JSON.parse(report.stdout)).toEqual([
      expect.objectContaining({ batch: submitted.batchId, requests: 1, cost_usd: 0.00009, repeat_cost_usd: 0.000045 }),
    ]);
  });
});
