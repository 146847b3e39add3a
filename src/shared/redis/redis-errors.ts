import { NoAnswerError } from '../time-bound.js';
import { seedUrls, sentinelMaster, type RedisTarget } from './redis-target.js';

/** Redis failures as people need to read them: one line saying what happened and what to do. */
export interface RedisProblem {
  code: 'redis_oom' | 'redis_unavailable' | 'redis_no_replicas' | 'redis_error';
  message: string;
}

// A cluster failing over (a master lost, its replica not yet promoted; a master turned replica, which unblocks its
// blocked commands: UNBLOCKED) is unavailable for a moment too.
const UNAVAILABLE =
  /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EHOSTUNREACH|Connection is closed|max retries per request|Stream isn't writeable|connect ETIMEDOUT|CLUSTERDOWN|TRYAGAIN|Too many Cluster redirections|Command timed out|Command aborted due to connection close|^UNBLOCKED/i;

export function describeRedisError(err: unknown): RedisProblem | null {
  // A MULTI whose commands Redis refused as they were queued fails as EXECABORT: what matters is why they were refused.
  // (One level: a MULTI that failed on a dead connection names itself as its cause.)
  const refused = (err as { previousErrors?: unknown[] } | null)?.previousErrors?.[0];
  if (refused !== undefined && refused !== err) {
    const cause = describeMessage(refused);
    if (cause) return cause;
  }
  return describeMessage(err);
}

function describeMessage(err: unknown): RedisProblem | null {
  const message = err instanceof Error ? err.message : String(err);
  if (/\bOOM\b/.test(message)) {
    return {
      code: 'redis_oom',
      message: 'Redis is out of memory (maxmemory reached, noeviction): free memory or raise maxmemory',
    };
  }
  if (/^NOREPLICAS\b/.test(message)) {
    return {
      code: 'redis_no_replicas',
      message:
        "fewer Redis replicas than CHATQ_REDIS_WAIT_REPLICAS acknowledged a call's claim in CHATQ_REDIS_WAIT_MS: calls are held until enough replicas answer (or lower CHATQ_REDIS_WAIT_REPLICAS)",
    };
  }
  // A read given up unanswered (settledWithin): the next one may go to another node.
  if (err instanceof NoAnswerError || UNAVAILABLE.test(message))
    return { code: 'redis_unavailable', message: `Redis went away (${message.split('\n')[0]!.slice(0, 120)})` };
  if (/^(ERR|WRONGTYPE|NOSCRIPT|READONLY|LOADING|BUSY|MISCONF|NOAUTH|WRONGPASS|NOPERM)\b/.test(message)) {
    return { code: 'redis_error', message: `Redis refused a command: ${message.split('\n')[0]!.slice(0, 200)}` };
  }
  return null;
}

const UNTRUSTED_CERT =
  /^(SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT(_LOCALLY)?|CERT_SIGNATURE_FAILURE|CERT_UNTRUSTED)$/;

/** Why a connection was refused, in one line that says what to change; undefined when Redis just did not answer. */
export function connectionRefusal(err: Error & { code?: string }, target: RedisTarget): string | undefined {
  const first = seedUrls(target.redisUrl)[0]!;
  const user = first.username ? decodeURIComponent(first.username) : 'default';
  const message = err.message.split('\n')[0]!;
  if (/^WRONGPASS/.test(message))
    return `Redis refused the password for user "${user}" (WRONGPASS): check the user and password in REDIS_URL`;
  if (/^NOAUTH/.test(message))
    return 'Redis needs a password (NOAUTH): put the user and password in REDIS_URL, as rediss://USER:PASSWORD@host:port';
  if (/^NOPERM/.test(message))
    return `Redis user "${user}" may not run chatq's commands (NOPERM): give it +@all on ~* and &* (or the prefix's keys), or use another user`;
  if (err.code && UNTRUSTED_CERT.test(err.code)) {
    return `the Redis server's TLS certificate is not trusted (${err.code}): ${target.redisCa ? `the CA in CHATQ_REDIS_CA (${target.redisCa}) did not sign it; set CHATQ_REDIS_CA to the one that did` : 'set CHATQ_REDIS_CA to the PEM file of the CA that signed it'}`;
  }
  if (err.code === 'ERR_TLS_CERT_ALTNAME_INVALID')
    return `the Redis server's TLS certificate does not name ${first.hostname}: use the host name it was issued for in REDIS_URL`;
  if (
    /No master with that name|ERR No such master/i.test(message) ||
    /^Failed to connect to the master|no master/i.test(message)
  ) {
    return `the sentinels know no master named "${sentinelMaster(seedUrls(target.redisUrl))}": put the name they monitor in REDIS_URL (redis+sentinel://host:26379/NAME)`;
  }
  return undefined;
}
