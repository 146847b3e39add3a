import { describe, expect, it } from 'vitest';
import type { FinishedRequest, StartedRequest } from '../src/worker/store/request-claims.js';
import { getRequests } from '../src/shared/batches/read-store.js';
import { RequestStore } from '../src/worker/store/request-store.js';
import { useTestEnv } from './helpers/in-process-worker.js';

/** One chat line of `user`. */
const chatLine = (customId: string, user: string, content = 'hi') =>
  JSON.stringify({ custom_id: customId, user, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

/** A run's result: succeeded, with a reply of no choices. */
const SUCCEEDED: FinishedRequest = {
  status: 'succeeded',
  response: { choices: [] },
  usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2, cached_tokens: 0, reasoning_tokens: 0 },
  costNano: 0,
  attempts: [],
};

describe('handing a lane on', () => {
  const t = useTestEnv();

  it('a next turn whose record is gone is not claimed: no partial record is written for it', async () => {
    const lines = [0, 1].map((turn) => chatLine(`t${turn}`, 'gone-user', `[seq ${turn}] hi`));
    await t.env.submit(lines);
    const store = new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues);
    const [job] = await t.env.queue.getJobs(['waiting']);
    const first = (await store.start(job!.id!)) as StartedRequest;
    const lane = await t.env.redis.lrange(t.env.keys.lane(first.userid), 0, -1);
    const second = lane[1]!;
    await t.env.redis.del(t.env.keys.request(second));

    const next = await store.finish(first.id, first, SUCCEEDED, job!.id!);
    expect(next).toBeUndefined();
    expect(await t.env.redis.exists(t.env.keys.request(second))).toBe(0);
  });

  it("a turn handed to its serving job is claimed with its call's lease: the job calls without another round trip", async () => {
    const lines = [0, 1].map((turn) => chatLine(`t${turn}`, 'leased-user', `[seq ${turn}] hi`));
    await t.env.submit(lines);
    const store = new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues, { timeoutMs: 5_000 });
    const [job] = await t.env.queue.getJobs(['waiting']);
    const first = (await store.start(job!.id!)) as StartedRequest;
    await store.beginCall(first, 5_000);
    const next = await store.finish(first.id, first, SUCCEEDED, job!.id!);
    expect(next?.leasedUntil).toBeGreaterThan(performance.now() + 4_000);
    expect(await t.env.redis.get(t.env.keys.laneLease(next!.userid))).toBe(`${next!.id}:${next!.claim}`);
    // The lease covers the call's timeout and the margin, in Redis time.
    expect(await t.env.redis.pttl(t.env.keys.laneLease(next!.userid))).toBeGreaterThan(5_000);
    // The call uses it once; a second call of the run (after a 429) takes its own.
    const left = await store.beginCall(next!, 5_000);
    expect(left).toBeGreaterThan(4_000);
    expect(next!.leasedUntil).toBeUndefined();
  });

  it("a job's own request is claimed with its call's lease too; a store without a call timeout leaves it to the call", async () => {
    await t.env.submit(chatLine('only', 'first-call-user'));
    const [job] = await t.env.queue.getJobs(['waiting']);
    const unleased = (await new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues).start(
      job!.id!,
    )) as StartedRequest;
    expect(unleased.leasedUntil).toBeUndefined();
    expect(await t.env.redis.exists(t.env.keys.laneLease(unleased.userid))).toBe(0);

    // A run again (its first crashed before its call): the claim takes the lease with it.
    await t.env.redis.hset(t.env.keys.request(unleased.id), 'status', 'queued');
    const store = new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues, { timeoutMs: 5_000 });
    const started = (await store.start(job!.id!)) as StartedRequest;
    expect(started.claim).toBe(unleased.claim + 1);
    expect(started.leasedUntil).toBeGreaterThan(performance.now() + 4_000);
    expect(await t.env.redis.get(t.env.keys.laneLease(started.userid))).toBe(`${started.id}:${started.claim}`);
    expect(await t.env.redis.pttl(t.env.keys.laneLease(started.userid))).toBeGreaterThan(5_000);
    expect(await store.beginCall(started, 5_000)).toBeGreaterThan(4_000);

    // While that lease stands, another claim of the user waits it out.
    await t.env.redis.hset(t.env.keys.request(started.id), 'status', 'queued');
    const blocked = await store.start(job!.id!);
    expect(blocked && 'waitMs' in blocked && blocked.waitMs).toBeGreaterThan(5_000);
  });
});

describe('reading requests while they finish', () => {
  const t = useTestEnv();

  it('a request that finishes between the read of records and the read of hashes is read, not lost', async () => {
    await t.env.submit(chatLine('racer', 'racing-user'));
    const store = new RequestStore([t.env.redis], t.env.keys, 3600, t.env.queues);
    const [job] = await t.env.queue.getJobs(['waiting']);
    const started = (await store.start(job!.id!)) as StartedRequest;
    // The real Redis, with the request finished right after the first pipeline (the records) has answered.
    let pipelines = 0;
    const racing = new Proxy(t.env.redis, {
      get(target, prop) {
        if (prop !== 'pipeline') {
          const value = Reflect.get(target, prop);
          return typeof value === 'function' ? value.bind(target) : value;
        }
        return () => {
          const pipeline = target.pipeline();
          if (pipelines++ > 0) return pipeline;
          const exec = pipeline.exec.bind(pipeline);
          return Object.assign(pipeline, {
            exec: async () => {
              const replies = await exec();
              await store.finish(started.id, started, SUCCEEDED);
              return replies;
            },
          });
        };
      },
    });
    const [read] = await getRequests(racing, t.env.keys, [started.id]);
    expect(pipelines).toBe(2);
    expect(read).toMatchObject({ id: started.id, status: 'succeeded', customId: 'racer' });
  });
});
