import type { RedisClient } from '../../shared/redis/redis.js';
import { defineScript } from '../../shared/redis/script-contract.js';

const renewScript = defineScript<{ holder: string; lease_ms: number }, { renewed: boolean }>()({
  file: new URL('./renew-lease.lua', import.meta.url),
  // The lease (its value: the holder).
  keys: ['lease'],
  args: { holder: 'string', lease_ms: 'whole' },
});
const endScript = defineScript<{ holder: string }, { ended: boolean }>()({
  file: new URL('./end-lease.lua', import.meta.url),
  keys: ['lease'],
  args: { holder: 'string' },
});

/**
 * Renews the lease `key` that `holder` holds, by `leaseMs` every third of it, until the returned function is called
 * (a renewal that fails is left for the next one; a lease someone else holds now is not touched).
 */
export function keepLease(connection: () => RedisClient, key: string, holder: string, leaseMs: number): () => void {
  const timer = setInterval(
    () => {
      renewScript.run(connection(), { lease: key }, { holder, lease_ms: leaseMs }).catch(() => undefined);
    },
    Math.max(100, Math.floor(leaseMs / 3)),
  );
  timer.unref();
  return () => clearInterval(timer);
}

/** Ends the lease `key` if `holder` still holds it (compare-and-delete). */
export async function endLease(redis: RedisClient, key: string, holder: string): Promise<void> {
  await endScript.run(redis, { lease: key }, { holder });
}
