import { afterEach, describe, expect, it, vi } from 'vitest';
import { Admission } from '../src/shared/redis/admission.js';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

const lines = (users: number, name = 'u') =>
  Array.from({ length: users }, (_, u) =>
    JSON.stringify({ user: `${name}${u}`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }),
  );

describe("an import's admission", () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    vi.useRealTimers();
    await env?.cleanup();
    env = undefined;
  });

  it('goes by the call slots the workers publish when it starts, not by a read from before they did', async () => {
    env = await createTestEnv();
    vi.useFakeTimers({ toFake: ['performance'] });
    // A first import, while no worker has published its slots: the process reads the default (50 slots, 60 heads).
    await env.submit(lines(1, 'first'));
    const published = Admission.publish(env.redis, env.keys, 'worker-1', 2_000);
    try {
      await vi.waitFor(async () => expect(await env!.redis.hlen(env!.keys.workerSlots)).toBe(1));
      // Seconds later (the read is due again), a second import: its 200 heads all go to BullMQ, none to the backlog.
      vi.advanceTimersByTime(5_000);
      await env.submit(lines(200));
      expect(await env.redis.zcard(env.keys.backlog('default'))).toBe(0);
      expect(await env.queue.getWaitingCount()).toBe(201);
    } finally {
      await published.stop();
    }
  });
});
