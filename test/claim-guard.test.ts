import { describe, expect, it } from 'vitest';
import type { StartedRequest } from '../src/worker/request-claims.js';
import { RequestStore } from '../src/worker/request-store.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('handing a lane on', () => {
  const t = useTestEnv();

  it('a next turn whose record is gone is not claimed: no partial record is written for it', async () => {
    const lines = [0, 1].map((turn) => JSON.stringify({ custom_id: `t${turn}`, user: 'gone-user', model: 'gpt-4o-mini', messages: [{ role: 'user', content: `[seq ${turn}] hi` }] }));
    await t.env.submit(lines);
    const store = new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues);
    const [job] = await t.env.queue.getJobs(['waiting']);
    const first = (await store.start(job!.id!)) as StartedRequest;
    const lane = await t.env.redis.lrange(t.env.keys.lane(first.userid), 0, -1);
    const second = lane[1]!;
    await t.env.redis.del(t.env.keys.request(second));

    const next = await store.finish(first.id, first, { status: 'succeeded', response: { choices: [] }, usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, reasoning_tokens: 0 }, costNano: 0, attempts: [] }, job!.id!);
    expect(next).toBeUndefined();
    expect(await t.env.redis.exists(t.env.keys.request(second))).toBe(0);
  });
});
