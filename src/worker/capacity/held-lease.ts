import { LuaScript, type RedisClient } from '../../shared/redis/redis.js';

const renewScript = new LuaScript(new URL('./renew-lease.lua', import.meta.url));
const endScript = new LuaScript(new URL('./end-lease.lua', import.meta.url));

/**
 * Renews the lease `key` that `holder` holds, by `leaseMs` every third of it, until the returned function is called
 * (a renewal that fails is left for the next one; a lease someone else holds now is not touched).
 */
export function keepLease(connection: () => RedisClient, key: string, holder: string, leaseMs: number): () => void {
  const timer = setInterval(
    () => {
      renewScript.run(connection(), [key], [holder, leaseMs]).catch(() => undefined);
    },
    Math.max(100, Math.floor(leaseMs / 3)),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/** Ends the lease `key` if `holder` still holds it (compare-and-delete). */
export async function endLease(redis: RedisClient, key: string, holder: string): Promise<void> {
  await endScript.run(redis, [key], [holder]);
}
