import { Redis } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { getUsage } from '../src/shared/batches/read-store.js';
import { type Simulator, startSimulator } from '../src/simulator/simulator-server.js';
import { WorkerPool } from '../src/worker/worker-pool.js';
import { finishScript } from '../src/worker/store/finish-call.js';
import { type FaultProxy, type FaultRule, startFaultProxy } from './helpers/fault-proxy.js';
import { createTestEnv, REDIS_URL, type TestEnv, testLogger, waitFor, waitForBatch } from './helpers/test-env.js';

const TURNS = 4;
const USER = 'stalled-finish-user';

/**
 * Every key under `prefix`: its dump and its time to live (ms; 0: none). Read in one script, so that nothing the worker
 * does meanwhile (a usage fold, a reconciler pass) lands in some keys of the snapshot and not in others.
 */
async function snapshot(redis: Redis, prefix: string): Promise<Map<string, { dump: Buffer; ttl: number }>> {
  const flat = (await redis.callBuffer(
    'EVAL',
    `local out = {}
    for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
      out[#out + 1] = key
      out[#out + 1] = redis.call('DUMP', key)
      out[#out + 1] = math.max(0, redis.call('PTTL', key))
    end
    return out`,
    0,
    prefix,
  )) as (Buffer | number)[];
  const out = new Map<string, { dump: Buffer; ttl: number }>();
  for (let i = 0; i < flat.length; i += 3)
    out.set(String(flat[i]), { dump: flat[i + 1] as Buffer, ttl: Number(flat[i + 2]) });
  return out;
}

/**
 * Puts every key under `prefix` back as `snap` holds it, in one script: what a master that never took the writes
 * since holds.
 */
async function restore(redis: Redis, prefix: string, snap: Map<string, { dump: Buffer; ttl: number }>): Promise<void> {
  const args = [...snap].flatMap(([key, { dump, ttl }]) => [key, dump, String(ttl)]);
  await redis.eval(
    `local kept = {}
    for i = 2, #ARGV, 3 do kept[ARGV[i]] = true end
    for _, key in ipairs(redis.call('KEYS', ARGV[1] .. '*')) do
      if not kept[key] then redis.call('DEL', key) end
    end
    for i = 2, #ARGV, 3 do redis.call('RESTORE', ARGV[i], ARGV[i + 2], ARGV[i + 1], 'REPLACE') end
    return 1`,
    0,
    prefix,
    ...args,
  );
}

const turn = (user: string, t: number) =>
  JSON.stringify({
    custom_id: `${user}-t${t}`,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `[seq ${t}] turn ${t}` }],
  });

interface Stage {
  proxy: FaultProxy;
  env: TestEnv;
  admin: Redis;
  sim: Simulator;
  /** The batch of `lines`, submitted; then the worker pool (through the proxy) starts with `config`. */
  run(lines: string[], rules: (batchId: string) => FaultRule[], config?: Record<string, string>): Promise<string>;
}

/** A worker pool whose Redis is behind a fault proxy, a simulator, and a direct connection to Redis; torn down after. */
async function staged(body: (stage: Stage) => Promise<void>): Promise<void> {
  const proxy = await startFaultProxy({ host: '127.0.0.1', port: Number(new URL(REDIS_URL).port || 6379) });
  const env = await createTestEnv();
  const admin = new Redis(REDIS_URL);
  const sim = await startSimulator({ latencyMs: 20 });
  let pool: WorkerPool | undefined;
  try {
    await body({
      proxy,
      env,
      admin,
      sim,
      async run(lines, rules, config = {}) {
        const { batchId } = await env.submit(lines);
        for (const rule of rules(batchId)) proxy.add(rule);
        pool = await WorkerPool.start({
          config: env.config({ REDIS_URL: proxy.url, CHATQ_CONCURRENCY: '2', ...config }),
          baseUrl: sim.url,
          logger: testLogger(),
        });
        return batchId;
      },
    });
  } finally {
    await pool?.close();
    await sim.close();
    admin.disconnect();
    await env.cleanup();
    await proxy.close();
  }
}

/** Each request once in the usage, and each call once, in its user's order, one at a time. */
async function eachCallOnce(stage: Stage, batchId: string, calls: number): Promise<void> {
  await waitFor('usage folded', async () => {
    return (await getUsage(stage.env.redis, stage.env.keys, 'default', 'batch', batchId)).requests === calls;
  });
  const stats = stage.sim.stats();
  expect({ calls: stats.calls, outOfOrder: stats.outOfOrder, overlaps: stats.overlaps }).toEqual({
    calls,
    outOfOrder: 0,
    overlaps: 0,
  });
}

describe('a master that answers late, then drops what it wrote (demoted when it wakes)', () => {
  it('a finish so lost is written again: the result counted once, the next turn sent once and after it', async () => {
    await staged(async (stage) => {
      // The second turn's finish: Redis runs it, its answer is 2 s late (a stall), and meanwhile Redis is put back as
      // it was before it ran (the promoted replica never had the write; the old master, told, drops it too).
      let before = new Map<string, { dump: Buffer; ttl: number }>();
      const prefix = stage.env.keys.prefix;
      const batchId = await stage.run(
        Array.from({ length: TURNS }, (_, t) => turn(USER, t)),
        () => [
          {
            command: 'EVALSHA',
            arg: finishScript.lua.sha,
            skip: 1,
            fault: 'hold',
            holdMs: 2_000,
            before: async () => {
              before = await snapshot(stage.admin, prefix);
            },
            whileHeld: () => restore(stage.admin, prefix, before),
          },
        ],
        { CHATQ_RECONCILE_MS: '300' },
      );
      const done = await waitForBatch(stage.env, batchId, 60_000);
      expect(stage.proxy.fired()).toBe(1);
      expect(done).toMatchObject({ status: 'completed', succeeded: TURNS, failed: 0 });
      // Each turn reached the upstream once, in order, one at a time: the lost result was written again before the
      // next turn went. With a stall not taken as a doubt (request-store.ts), the run goes on with the turn its lost
      // write had claimed: measured, that turn went before its predecessor's result stood, and the predecessor was
      // sent again 120 s later, once its call lease ran out (5 calls, 1 out of order).
      await eachCallOnce(stage, batchId, TURNS);
    });
  });

  it("another lane's next job, acknowledged and lost after the stall, is added again within seconds of it", async () => {
    await staged(async (stage) => {
      // Requests 1 to 6: a's three lines, then b's script of three turns, 3 s apart. a's second finish stalls (2 s;
      // the replies behind it on its connection wait too, and are written again). b's last turn is added seconds
      // after the stall, and its job is acknowledged and never written (the proxy answers the add): nothing stalled
      // or failed around it. No reconciler pass or backlog refill comes within the test (60 s, 30 s): only the
      // repairs in the seconds after a stall add it again.
      const b = JSON.stringify({
        script_id: 'b',
        user: 'lane-b',
        model: 'gpt-4o-mini',
        turn_gap_ms: 3_000,
        turns: [0, 1, 2].map((t) => `[seq ${t}] turn ${t}`),
      });
      const batchId = await stage.run(
        [...[0, 1, 2].map((t) => turn('lane-a', t)), b],
        (id) => [
          { command: 'EVALSHA', arg: finishScript.lua.sha, argIncludes: `${id}-2`, fault: 'hold', holdMs: 2_000 },
          {
            command: 'EVALSHA',
            anyArg: `${stage.env.keys.prefix}:requests:id`,
            argIncludes: `${id}-6`,
            fault: 'answer',
            answer: `${id}-6`,
          },
        ],
        { CHATQ_RECONCILE_MS: '60000' },
      );
      const done = await waitForBatch(stage.env, batchId, 20_000);
      expect(stage.proxy.fired()).toBe(2);
      expect(done).toMatchObject({ status: 'completed', succeeded: 6, failed: 0 });
      await eachCallOnce(stage, batchId, 6);
    });
  });
});
