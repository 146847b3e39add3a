import { LuaScript, type RedisClient } from './redis.js';

/** How long a readiness check waits for Redis. */
const READY_WITHIN_MS = 1_000;

/**
 * Whether this process can take work on `redis`: connected (every master, for a cluster), answering within a second,
 * and holding every Lua script this process runs in its script cache (a restarted Redis gets them loaded here).
 * Answers why not when it cannot.
 */
export async function redisReadiness(redis: RedisClient): Promise<{ ready: true } | { ready: false; reason: string }> {
  const nodes = 'nodes' in redis ? redis.nodes('master') : [redis];
  if (redis.status !== 'ready' || nodes.length === 0 || nodes.some((n) => n.status !== 'ready'))
    return { ready: false, reason: 'redis is not connected' };
  const check = Promise.all(
    nodes.map(async (node) => {
      const shas = LuaScript.loaded.map((s) => s.sha);
      const present = (await node.call('SCRIPT', 'EXISTS', ...shas)) as number[];
      const missing = LuaScript.loaded.filter((_, i) => present[i] !== 1);
      for (const script of missing) await node.call('SCRIPT', 'LOAD', script.source);
    }),
  );
  // A check that fails after the timeout answered is nobody's to report.
  check.catch(() => undefined);
  const timeout = new Promise<'late'>((resolve) => setTimeout(() => resolve('late'), READY_WITHIN_MS).unref());
  try {
    if ((await Promise.race([check, timeout])) === 'late')
      return { ready: false, reason: `redis did not answer within ${READY_WITHIN_MS} ms` };
    return { ready: true };
  } catch (err) {
    return { ready: false, reason: `redis refused the scripts: ${(err as Error).message.split('\n')[0]}` };
  }
}
