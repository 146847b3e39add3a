import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { getRequests } from '../src/shared/batches/read-store.js';
import { LuaScript, namedReply, packArgs } from '../src/shared/redis/redis.js';
import { acquireKeys } from '../src/worker/capacity/acquire-call.js';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

const finish = new LuaScript(new URL('../src/worker/store/finish-request.lua', import.meta.url));
const acquire = new LuaScript(new URL('../src/worker/capacity/acquire-capacity.lua', import.meta.url));

/** The named arguments of a finish that is right in every field: each test spoils one. */
const finishArgs = (prefix: string) => ({
  id: 'r1',
  status: 'succeeded',
  now: Date.now(),
  ttl_s: 60,
  prefix,
  attempt_log: '',
  calls: 1,
  batch: 'b1',
  userid: 'u1',
  usage_record: '{}',
  admission: '{"c":10,"w":{}}',
});

/** Finish-request's 17 keys, all on the test's prefix. */
const finishKeys = (env: TestEnv) => {
  const k = env.keys;
  return [
    k.request('r1'),
    k.batch('b1'),
    k.lane('u1'),
    k.lanes,
    k.usage('default', 'batch', 'b1'),
    k.batchRequests('b1'),
    k.batchCustomIds('b1'),
    k.batchErrors('b1'),
    k.userRequests('default', 'u1'),
    k.batchReservations('b1'),
    k.pendingUsage,
    k.events,
    k.requestBody('r1'),
    k.requestDone('r1'),
    k.laneLease('u1'),
    k.queueWait,
    k.queuePrioritized,
  ];
};

const acquireArgs = {
  member: 'm1',
  tokens: 10,
  headroom: 0.01,
  rpm: 0,
  tpm: 0,
  model_rpm: 0,
  model_tpm: 0,
  probe_lease_ms: 1000,
  outage_probe_ms: 1000,
  calls: 1,
  large_tpm: 0,
  ahead_ms: 1000,
  project: 'default',
  weights: '{}',
  active_ms: 10000,
};

describe('script contracts: named, packed arguments and named replies', () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await createTestEnv();
    await env.redis.hset(env.keys.request('r1'), 'status', 'running', 'batch', 'b1', 'userid', 'u1');
    await env.redis.rpush(env.keys.lane('u1'), 'r1');
    await env.redis.hset(env.keys.batch('b1'), 'status', 'in_progress', 'total', 2);
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('finish-request names a missing, mistyped or unknown argument, and writes nothing', async () => {
    const before = await env.redis.hgetall(env.keys.request('r1'));
    const { now: _, ...withoutNow } = finishArgs(env.keys.prefix);
    const cases: [object, RegExp][] = [
      [withoutNow, /finish-request: missing argument "now"/],
      [{ ...finishArgs(env.keys.prefix), calls: -1 }, /finish-request: argument "calls" must be a whole number/],
      [{ ...finishArgs(env.keys.prefix), status: 7 }, /finish-request: argument "status" must be a string/],
      [{ ...finishArgs(env.keys.prefix), cost: 5 }, /finish-request: unknown argument "cost"/],
    ];
    for (const [args, error] of cases) {
      await expect(finish.run(env.redis, finishKeys(env), packArgs(args, ''))).rejects.toThrow(error);
    }
    await expect(finish.run(env.redis, finishKeys(env), ['not json', ''])).rejects.toThrow(
      /finish-request: ARGV\[1\] must be a JSON object of named arguments/,
    );
    expect(await env.redis.hgetall(env.keys.request('r1'))).toEqual(before);
    expect(await env.redis.lrange(env.keys.lane('u1'), 0, -1)).toEqual(['r1']);
  });

  it('finish-request answers by name; its raw tail (the stored response, the result fields) is kept as given', async () => {
    const reply = namedReply<{
      grading_head: string;
      outcome: string;
      next_head: string;
      handed: number;
      wait_ms: number;
    }>(
      await finish.run(
        env.redis,
        finishKeys(env),
        packArgs(finishArgs(env.keys.prefix), '{"id":"RESP"}', 'latency_ms', 12),
      ),
    );
    expect(reply).toEqual({ grading_head: '', outcome: 'ok', next_head: '', handed: 0, wait_ms: 0 });
    const [stored] = await getRequests(env.redis, env.keys, ['r1']);
    expect(stored).toMatchObject({ status: 'succeeded', latencyMs: 12, response: { id: 'RESP' }, userid: 'u1' });
    const again = namedReply<{ outcome: string }>(
      await finish.run(env.redis, finishKeys(env), packArgs(finishArgs(env.keys.prefix), '')),
    );
    expect(again.outcome).toBe('duplicate');
  });

  it('acquire-capacity names a bad argument before any write, and answers by name', async () => {
    await expect(
      acquire.run(
        env.redis,
        acquireKeys(env.keys, { model: 'm', project: 'default' }),
        packArgs({ ...acquireArgs, headroom: 0.9 }),
      ),
    ).rejects.toThrow(/acquire-capacity: argument "headroom" must be within 0..0.5/);
    await expect(
      acquire.run(
        env.redis,
        acquireKeys(env.keys, { model: 'm', project: 'default' }),
        packArgs({ ...acquireArgs, calls: 0 }),
      ),
    ).rejects.toThrow(/acquire-capacity: argument "calls" must be at least 1/);
    expect(await env.redis.exists(env.keys.credentialsProbe)).toBe(0);
    const reply = namedReply<{ state: number; wait_ms: number; outage: number }>(
      await acquire.run(env.redis, acquireKeys(env.keys, { model: 'm', project: 'default' }), packArgs(acquireArgs)),
    );
    // Credentials not proven yet: the first call goes as the probe (state 2), at once.
    expect(reply).toMatchObject({ state: 2, wait_ms: 0, outage: 0 });
    expect(await env.redis.get(env.keys.credentialsProbe)).toBe('m1');
  });
});
