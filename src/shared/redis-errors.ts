/** Redis failures as people need to read them: one line saying what happened and what to do. */
export interface RedisProblem {
  code: 'redis_oom' | 'redis_unavailable' | 'redis_no_replicas' | 'redis_error';
  message: string;
}

// A cluster failing over (a master lost, its replica not yet promoted) is unavailable for a moment too.
const UNAVAILABLE = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|Connection is closed|max retries per request|Stream isn't writeable|connect ETIMEDOUT|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|Command timed out/i;

export function describeRedisError(err: unknown): RedisProblem | null {
  // A MULTI whose commands Redis refused as they were queued fails as EXECABORT: what matters is why they were refused.
  const refused = (err as { previousErrors?: unknown[] } | null)?.previousErrors?.[0];
  if (refused !== undefined) return describeRedisError(refused);
  const message = err instanceof Error ? err.message : String(err);
  if (/\bOOM\b/.test(message)) {
    return { code: 'redis_oom', message: 'Redis is out of memory (maxmemory reached, noeviction): free memory or raise maxmemory' };
  }
  if (/^NOREPLICAS\b/.test(message)) {
    return { code: 'redis_no_replicas', message: 'fewer Redis replicas than CHATQ_REDIS_WAIT_REPLICAS acknowledged a call\'s claim in CHATQ_REDIS_WAIT_MS: calls are held until enough replicas answer (or lower CHATQ_REDIS_WAIT_REPLICAS)' };
  }
  if (UNAVAILABLE.test(message)) return { code: 'redis_unavailable', message: `Redis went away (${message.split('\n')[0]!.slice(0, 120)})` };
  if (/^(ERR|WRONGTYPE|NOSCRIPT|READONLY|LOADING|BUSY|MISCONF|NOAUTH|WRONGPASS|NOPERM)\b/.test(message)) {
    return { code: 'redis_error', message: `Redis refused a command: ${message.split('\n')[0]!.slice(0, 200)}` };
  }
  return null;
}
