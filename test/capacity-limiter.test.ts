import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CapacityLimiter, isReservation, type Limits } from '../src/worker/capacity/capacity-limiter.js';
import { estimateTokens } from '../src/shared/token-bounds.js';
import { startLocalRedis } from '../src/cli/local-redis.js';
import { connectRedis, type RedisClient } from '../src/shared/redis/redis.js';
import { createTestEnv, waitFor, type TestEnv } from './helpers/test-env.js';

const body = (maxTokens: number) => ({
  model: 'm',
  messages: [{ role: 'user', content: 'hello there' }],
  max_tokens: maxTokens,
});
const settledWithin = <T>(p: Promise<T>, ms: number) =>
  Promise.race([
    p.then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((r) => setTimeout(() => r(false), ms)),
  ]);

/** The scripts a Redis has run so far (EVALSHA and EVAL). */
async function scriptsRun(redis: RedisClient): Promise<number> {
  const stats = await redis.info('commandstats');
  return (
    Number(/cmdstat_evalsha:calls=(\d+)/.exec(stats)?.[1] ?? 0) +
    Number(/cmdstat_eval:calls=(\d+)/.exec(stats)?.[1] ?? 0)
  );
}

describe('capacity limiter (shared through Redis)', () => {
  let env: TestEnv;
  let cleanupRedis: { stop(): Promise<void> } | undefined;
  beforeEach(async () => {
    env = await createTestEnv();
    // Credentials count as proven here: these tests are about limits, not the first-call probe.
    await env.redis.set(env.keys.credentialsProven, '1');
  });
  /** The limiters a test made: stopped after it, so that no wait of theirs goes on asking Redis. */
  const made: CapacityLimiter[] = [];
  afterEach(async () => {
    for (const l of made.splice(0)) l.stop();
    await env.cleanup();
  });

  /** A limiter on a Redis of its own (its command counts are this test's alone), with proven credentials. */
  async function onPrivateRedis(
    limits: Partial<Limits>,
    run: (l: CapacityLimiter, redis: RedisClient) => Promise<void>,
  ): Promise<void> {
    const local = await startLocalRedis({ appendfsync: 'off' });
    const redis = connectRedis({ redisUrl: local.url, redisCluster: false }, 'chatq-test');
    const l = new CapacityLimiter(
      redis,
      env.keys,
      { rpm: 0, tpm: 0, modelLimits: {}, defaultMaxTokens: 100, lockMs: 1_000, ...limits },
      'p',
    );
    try {
      await redis.set(env.keys.credentialsProven, '1');
      await run(l, redis);
    } finally {
      l.stop();
      redis.disconnect();
      await local.stop();
    }
  }

  const limiter = (limits: Partial<ConstructorParameters<typeof CapacityLimiter>[2]>, owner: string) => {
    const l = new CapacityLimiter(
      env.redis,
      env.keys,
      { rpm: 0, tpm: 0, modelLimits: {}, defaultMaxTokens: 100, lockMs: 1_000, ...limits },
      owner,
    );
    made.push(l);
    return l;
  };

  it('a per-model request limit holds that model back across processes, and only that model', async () => {
    const limits = { modelLimits: { slow: { rpm: 1 } } };
    const a = limiter(limits, 'process-a');
    const b = limiter(limits, 'process-b');
    expect(isReservation(await a.acquire('slow', body(10)))).toBe(true);
    // The next call of "slow" is a minute away, whichever process asks: it is told to come back later (it holds no
    // call slot meanwhile); other models are not held.
    expect(await b.acquire('slow', body(10))).toEqual({ laterMs: 5_000 });
    expect(isReservation(await b.acquire('fast', body(10)))).toBe(true);
  });

  it('large calls are charged half their share, hold at most that share together, and never wait in a slot', async () => {
    // 60,000 TPM, share 0.1: a call whose bound is over 6,000 tokens is large and charged 3,000.
    const l = limiter({ tpm: 60_000, largeShare: 0.1 }, 'p');
    const [first, second, third] = [
      await l.acquire('m', body(100_000)),
      await l.acquire('m', body(100_000)),
      await l.acquire('m', body(100_000)),
    ];
    expect(first).toMatchObject({ estimate: 3_000, large: true });
    expect(second).toMatchObject({ estimate: 3_000, large: true });
    // The third has no room in the large calls' share: it is told to come back, not kept waiting.
    expect(third).toEqual({ laterMs: expect.any(Number) });
    // Ordinary calls still have the rest of the window.
    expect(await l.acquire('m', body(1_000))).toMatchObject({ estimate: estimateTokens(body(1_000), 100) });
    // A large call's real usage replaces its charge: once both are settled small, the next large call has room.
    for (const r of [first, second]) if (isReservation(r)) await l.settle(r, 50, true);
    expect(await l.acquire('m', body(100_000))).toMatchObject({ large: true });
  });

  it('charges estimated tokens and lets the real usage free the rest', async () => {
    // A share of a third: these calls are ordinary ones (a large call is charged otherwise: token-starvation.test.ts).
    const l = limiter({ tpm: 6_000, largeShare: 0.33 }, 'p');
    const estimate = estimateTokens(body(900), 100);
    expect(estimate).toBeGreaterThan(900);
    const first = await l.acquire('m', body(900));
    expect(first).toMatchObject({ estimate });
    // Any 10 s may hold a sixth of the limit (1,000 tokens): the second estimate fits only once the first is settled.
    expect(await l.acquire('m', body(900))).toEqual({ laterMs: expect.any(Number) });
    if (isReservation(first)) await l.settle(first, 20, true);
    expect(isReservation(await l.acquire('m', body(900)))).toBe(true);
  });

  it('a read of the pause state that fails (Redis away, a master failing over) is not remembered: the next call reads again', async () => {
    const local = await startLocalRedis({ appendfsync: 'off' });
    const redis = connectRedis({ redisUrl: local.url, redisCluster: false }, 'chatq-test', { failFast: true });
    redis.on('error', () => undefined);
    try {
      const l = new CapacityLimiter(
        redis,
        env.keys,
        { rpm: 0, tpm: 0, modelLimits: {}, defaultMaxTokens: 100, lockMs: 1_000 },
        'p',
      );
      made.push(l);
      await redis.set(env.keys.credentialsProven, '1');
      local.process.kill('SIGKILL');
      await new Promise((r) => local.process.once('exit', r));
      await expect(l.acquire('m', body(10))).rejects.toThrow();
      const back = await startLocalRedis({ port: local.port, dir: local.dir, appendfsync: 'off' });
      cleanupRedis = back;
      await waitFor('the client to reconnect', async () => (await redis.ping().catch(() => '')) === 'PONG', 10_000);
      await redis.set(env.keys.credentialsProven, '1');
      await expect(l.acquire('m', body(10))).resolves.toMatchObject({ estimate: expect.any(Number) });
    } finally {
      redis.disconnect();
      await (cleanupRedis ?? local).stop();
    }
  });

  it('the work of a reservation does not grow with the calls in the window (a token limit at a high rate)', () =>
    onPrivateRedis({ tpm: 1e11 }, async (l, redis) => {
      /** Redis commands (every one, scripts' included) per reservation, over 20 more. */
      const commandsPerReservation = async () => {
        const calls = async () =>
          [...(await redis.info('commandstats')).matchAll(/calls=(\d+)/g)].reduce((n, m) => n + Number(m[1]), 0);
        const before = await calls();
        for (let i = 0; i < 20; i++) await l.acquire('m', body(10));
        return ((await calls()) - before - 1) / 20;
      };
      for (let i = 0; i < 50; i++) await l.acquire('m', body(10));
      const early = await commandsPerReservation();
      for (let i = 0; i < 10_000; i++) await l.acquire('m', body(10));
      // Entries leaving the last 10 s cost a couple of commands now and then; summing the window would cost one
      // HMGET per 500 calls in it (20 more per reservation here).
      expect(await commandsPerReservation()).toBeLessThan(early + 4);
    }));

  it('calls of one process that ask at once are reserved together: the limit keys see a few scripts, not one per call', () =>
    onPrivateRedis({ rpm: 6_000, tpm: 1e9 }, async (l, redis) => {
      const scripts = () => scriptsRun(redis);
      await l.acquire('m', body(10));
      const tatKey = env.keys.limitRequests('global');
      const tatBefore = Number(await redis.get(tatKey));
      const before = await scripts();
      const reservations = await Promise.all(Array.from({ length: 40 }, () => l.acquire('m', body(10))));
      const used = (await scripts()) - before;
      expect(reservations.every((r) => r !== 'paused')).toBe(true);
      expect(used).toBeLessThanOrEqual(10);
      // Together they still take one request slot each: 6,000 per minute is one per 10.1 ms (1% headroom).
      expect(Number(await redis.get(tatKey)) - tatBefore).toBeGreaterThanOrEqual(40 * 10.1 - 1);
      // Each group is settled once, when its last call is.
      for (const r of reservations) if (isReservation(r)) await l.settle(r, 5, true);
      const amounts = await redis.hgetall(env.keys.limitTokens('global'));
      const total = Object.entries(amounts)
        .filter(([k]) => !k.startsWith('__'))
        .reduce((n, [, v]) => n + Number(v), 0);
      expect(total).toBe(Number(amounts.__total));
      expect(total).toBeLessThan(41 * 100);
    }));

  it('a queue pause makes waiting calls give their request back', async () => {
    const l = limiter({}, 'p');
    await env.redis.set(env.keys.pauseReason, JSON.stringify({ code: 'unauthorized', message: 'x', at: 0 }));
    await env.redis.del(env.keys.credentialsProven);
    expect(await l.acquire('m', body(10))).toBe('paused');
  });

  it("while one call proves the credentials, the process's other calls wait without asking Redis each; all go once it has", () =>
    onPrivateRedis({}, async (l, redis) => {
      await redis.del(env.keys.credentialsProven);
      const probe = await l.acquire('m', body(10));
      if (!isReservation(probe)) throw new Error(`the first call was not reserved: ${JSON.stringify(probe)}`);
      expect(probe.probe).toBe(true);
      const before = await scriptsRun(redis);
      const waiting = Promise.all(Array.from({ length: 50 }, () => l.acquire('m', body(10))));
      await new Promise((r) => setTimeout(r, 1_000));
      // One call of the process asks for the probe at a time (a prober elsewhere may die), not each of the 50.
      expect((await scriptsRun(redis)) - before).toBeLessThan(50);
      await l.settle(probe, 5, true);
      expect(await settledWithin(waiting, 10_000)).toBe(true);
      const reservations = await waiting;
      expect(reservations.every((r) => isReservation(r) && !r.probe)).toBe(true);
    }));

  it('says whether a limit may hold a claimed call back (then claims do not take the call lease: the worker pool)', () => {
    expect(limiter({}, 'p').limitsCalls).toBe(false);
    expect(limiter({ modelLimits: { m: {} } }, 'p').limitsCalls).toBe(false);
    expect(limiter({ rpm: 60 }, 'p').limitsCalls).toBe(true);
    expect(limiter({ tpm: 1_000 }, 'p').limitsCalls).toBe(true);
    expect(limiter({ modelLimits: { m: { tpm: 10 } } }, 'p').limitsCalls).toBe(true);
  });
});
