import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FINISHED_RECORD_FIELDS } from '../src/shared/request-record.js';
import { defineScript } from '../src/shared/redis/script-contract.js';
import { getRequests } from '../src/shared/batches/read-store.js';
import { unpack } from 'msgpackr';
import { finishScript } from '../src/worker/store/finish-call.js';
import { type AcquireScope, acquireArgs, acquireKeys, acquireScript } from '../src/worker/capacity/acquire-call.js';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

type FinishKeys = Parameters<typeof finishScript.run>[1];
type FinishArgs = Parameters<typeof finishScript.run>[2];

/** A finish that is right in every argument: each test spoils one. */
const finishArgs = (prefix: string): FinishArgs => ({
  id: 'r1',
  status: 'succeeded',
  now: Date.now(),
  ttl_s: 60,
  prefix,
  batch: 'b1',
  userid: 'u1',
  attempts: undefined,
  calls: 1,
  cost_nano: undefined,
  error_code: undefined,
  grade: undefined,
  usage_record: '{}',
  serving_job: undefined,
  within_share: undefined,
  budgeted: undefined,
  claim: undefined,
  lease_ms: undefined,
  admission: { c: 10, w: {} },
  grading: undefined,
  judged_of: undefined,
  judged_grade: undefined,
  verdict: undefined,
  fields: {},
  response: undefined,
});

/** Finish-request's keys, all on the test's prefix. */
const finishKeys = (env: TestEnv): FinishKeys => {
  const k = env.keys;
  return {
    request: k.request('r1'),
    batch: k.batch('b1'),
    lane: k.lane('u1'),
    lanes: k.lanes,
    batch_usage: k.usage('default', 'batch', 'b1'),
    batch_requests: k.batchRequests('b1'),
    batch_custom_ids: k.batchCustomIds('b1'),
    batch_errors: k.batchErrors('b1'),
    user_requests: k.userRequests('default', 'u1'),
    reservations: k.batchReservations('b1'),
    pending_usage: k.pendingUsage,
    events: k.events,
    body: k.requestBody('r1'),
    done: k.requestDone('r1'),
    lease: k.laneLease('u1'),
    queue_wait: k.queueWait,
    queue_prioritized: k.queuePrioritized,
    grading: k.request('r1-judge'),
    grading_body: k.requestBody('r1-judge'),
    grading_lane: k.lane('judge:r1'),
    judged_done: k.requestDone('r1'),
  };
};

const acquireArgsOf = () =>
  acquireArgs(
    { rpm: 0, tpm: 0, lockMs: 1000, weights: {} },
    { member: 'm1', tokens: 10, calls: 1, modelRpm: 0, modelTpm: 0, largeTpm: 0, project: 'default' },
  );

describe('script contracts: keys, arguments and replies by name', () => {
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

  it('finish-request names a missing or mistyped argument, and writes nothing', async () => {
    const before = await env.redis.hgetall(env.keys.request('r1'));
    const { now: _, ...withoutNow } = finishArgs(env.keys.prefix);
    const cases: [unknown, RegExp][] = [
      [withoutNow, /finish-request: missing argument "now"/],
      [{ ...finishArgs(env.keys.prefix), calls: -1 }, /finish-request: argument "calls" must be a whole number/],
      [{ ...finishArgs(env.keys.prefix), calls: 1.5 }, /finish-request: argument "calls" must be a whole number/],
      [{ ...finishArgs(env.keys.prefix), status: 7 }, /finish-request: argument "status" must be a string/],
      [{ ...finishArgs(env.keys.prefix), fields: 'x' }, /finish-request: argument "fields" must be a table/],
    ];
    for (const [args, error] of cases) {
      await expect(finishScript.run(env.redis, finishKeys(env), args as FinishArgs)).rejects.toThrow(error);
    }
    const { keys } = finishScript.argv(finishKeys(env), finishArgs(env.keys.prefix));
    await expect(finishScript.lua.run(env.redis, keys, ['not msgpack'])).rejects.toThrow();
    await expect(finishScript.lua.run(env.redis, keys, [Buffer.from([0x07])])).rejects.toThrow(
      /finish-request: ARGV\[1\] must be a MessagePack map of named arguments/,
    );
    expect(await env.redis.hgetall(env.keys.request('r1'))).toEqual(before);
    expect(await env.redis.lrange(env.keys.lane('u1'), 0, -1)).toEqual(['r1']);
  });

  it('packs only the arguments its contract names, keys in the contract order', () => {
    const extra = { ...finishArgs('p'), cost: 5 } as FinishArgs;
    const { keys, argv } = finishScript.argv(finishKeys(env), extra);
    expect(keys[0]).toBe(env.keys.request('r1'));
    expect(keys.at(-1)).toBe(env.keys.requestDone('r1'));
    expect(Object.keys(unpack(argv[0] as Buffer) as object)).not.toContain('cost');
    // Arguments left undefined are left out; a raw (bytes) one follows the packed map.
    expect(unpack(argv[0] as Buffer)).not.toHaveProperty('grading');
    expect(argv).toHaveLength(2);
  });

  it('finish-request answers by name; the stored response and the result fields are kept as given', async () => {
    const reply = await finishScript.run(env.redis, finishKeys(env), {
      ...finishArgs(env.keys.prefix),
      fields: { latency_ms: 12 },
      response: '{"id":"RESP"}',
    });
    expect(reply).toEqual({ grading_head: '', outcome: 'ok', next_head: '', handed: false, wait_ms: 0 });
    const [stored] = await getRequests(env.redis, env.keys, ['r1']);
    expect(stored).toMatchObject({ status: 'succeeded', latencyMs: 12, response: { id: 'RESP' }, userid: 'u1' });
    const again = await finishScript.run(env.redis, finishKeys(env), finishArgs(env.keys.prefix));
    expect(again.outcome).toBe('duplicate');
  });

  it('acquire-capacity names a bad argument before any write, and answers by name', async () => {
    const keys = acquireKeys(env.keys, { model: 'm', project: 'default' });
    await expect(acquireScript.run(env.redis, keys, { ...acquireArgsOf(), headroom: 0.9 })).rejects.toThrow(
      /acquire-capacity: argument "headroom" must be within 0..0.5/,
    );
    await expect(acquireScript.run(env.redis, keys, { ...acquireArgsOf(), calls: 0 })).rejects.toThrow(
      /acquire-capacity: argument "calls" must be at least 1/,
    );
    const unknownScope = { ...acquireArgsOf().scopes[0]!, name: 'daily' } as unknown as AcquireScope;
    await expect(acquireScript.run(env.redis, keys, { ...acquireArgsOf(), scopes: [unknownScope] })).rejects.toThrow(
      /acquire-capacity: scope 1 is not one of the contract's/,
    );
    expect(await env.redis.exists(env.keys.credentialsProbe)).toBe(0);
    const reply = await acquireScript.run(env.redis, keys, acquireArgsOf());
    // Credentials not proven yet: the first call goes as the probe (state 2), at once.
    expect(reply).toMatchObject({ state: 2, wait_ms: 0, outage: 0 });
    expect(await env.redis.get(env.keys.credentialsProbe)).toBe('m1');
  });

  it('writes K.<name> and AT.<field> in as places when a script is loaded, and refuses an unknown one there', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'chatq-lua-'));
    const file = (name: string, body: string) => {
      writeFileSync(
        join(dir, name),
        `--- @include keys\n--- @include finished-record\n--- @include contract\n${body}\n`,
      );
      return pathToFileURL(join(dir, name));
    };
    try {
      const placed = defineScript<{ id: string }, { key: string; at: number }>()({
        file: file('placed.lua', "return reply({ key = K.first .. '|' .. K.second .. '|' .. A.id, at = AT.status })"),
        keys: ['first', 'second'],
        args: { id: 'string' },
      });
      expect(placed.lua.source).not.toMatch(/local K = |local AT = /);
      const keys = { first: `${env.keys.prefix}:a`, second: `${env.keys.prefix}:b` };
      expect(await placed.run(env.redis, keys, { id: 'x' })).toEqual({
        key: `${keys.first}|${keys.second}|x`,
        at: FINISHED_RECORD_FIELDS.indexOf('status') + 2,
      });
      // A key or a place looked up by a name made at run time: the tables stay.
      const looked = defineScript<{ key: string; field: string }, { key: string; at: number }>()({
        file: file('looked.lua', 'return reply({ key = K[A.key], at = AT[A.field] })'),
        keys: ['first'],
        args: { key: 'string', field: 'string' },
      });
      expect(await looked.run(env.redis, { first: keys.first }, { key: 'first', field: 'userid' })).toEqual({
        key: keys.first,
        at: FINISHED_RECORD_FIELDS.indexOf('userid') + 2,
      });
      const unknown = (name: string, body: string) => () =>
        defineScript<{ id: string }, unknown>()({ file: file(name, body), keys: ['first'], args: { id: 'string' } });
      expect(unknown('bad-key.lua', 'return K.third')).toThrow('bad-key.lua: K.third is no key of its contract');
      expect(unknown('bad-field.lua', 'return AT.colour')).toThrow(
        'bad-field.lua: AT.colour is no field of the finished record',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
