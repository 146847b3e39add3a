/** Whether REDIS_URL leads to a usable Redis, asked once at a command's start: the answer, or why not, in one line. */
import { Cluster, type Redis } from 'ioredis';
import { clusterOf, type RedisClient, singleOf } from './redis.js';
import { connectionRefusal } from './redis-errors.js';
import { isSentinel, seedUrls, type RedisTarget } from './redis-target.js';

/**
 * How long a first connection may take before Redis counts as out of reach: past TCP's SYN retransmissions at 1 s and
 * 3 s, so that a packet lost on a real network is not "cannot reach Redis". A refused connection fails at once.
 */
const CONNECT_TIMEOUT_MS = 5_000;

/**
 * What a probe found: usable, or why not. `unreachable`: nothing answered; `clusterDown`: a Redis Cluster answered but
 * does not serve every slot (cluster_state:fail, as while a master is out and before its replica is promoted).
 */
export type RedisProbe = { ok: true } | { ok: false; reason: string; unreachable: boolean; clusterDown?: boolean };

/**
 * Connects once, without retrying, and checks that the database the URL names exists (ioredis would otherwise run
 * every command in database 0 after a failed SELECT); for a cluster, that the cluster is up (all slots served). A
 * refused connection (password, TLS certificate, Sentinel master name) is told apart from an unanswered one.
 */
export async function probeRedis(target: RedisTarget, timeoutMs = CONNECT_TIMEOUT_MS): Promise<RedisProbe> {
  const db = Number(seedUrls(target.redisUrl)[0]!.pathname.slice(1) || 0);
  if (target.redisCluster && db !== 0)
    return {
      ok: false,
      reason: `REDIS_URL names database ${db}, but a Redis Cluster has only database 0`,
      unreachable: false,
    };
  const sentinel = isSentinel(seedUrls(target.redisUrl));
  const probe: RedisClient = target.redisCluster
    ? clusterOf(
        target,
        { maxRetriesPerRequest: 0, connectTimeout: timeoutMs },
        // The state is checked after, to say what it is: ioredis's own ready check would retry (or hang) instead.
        { lazyConnect: true, clusterRetryStrategy: () => null, enableOfflineQueue: false, enableReadyCheck: false },
      )
    : singleOf(target, {
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        sentinelRetryStrategy: () => null,
        connectTimeout: timeoutMs,
        ...(sentinel ? {} : { db: 0 }),
      });
  let timer: NodeJS.Timeout | undefined;
  // However the client fails to settle, no answer within the connect timeout and a second more is "cannot reach".
  const late = new Promise<RedisProbe>((resolve) => {
    timer = setTimeout(
      () =>
        resolve({
          ok: false,
          reason: `cannot reach Redis at ${hostsOf(target)} (no answer within ${Math.ceil(timeoutMs / 1000) + 1} s)`,
          unreachable: true,
        }),
      timeoutMs + 1_000,
    );
  });
  try {
    return await Promise.race([checkProbe(probe, target, db, sentinel), late]);
  } finally {
    clearTimeout(timer);
    probe.disconnect();
  }
}

const hostsOf = (target: RedisTarget) =>
  seedUrls(target.redisUrl)
    .map((u) => u.host)
    .join(',');

/** The probe's checks: connected, the database there, the cluster up, PING answered; or why not. */
async function checkProbe(probe: RedisClient, target: RedisTarget, db: number, sentinel: boolean): Promise<RedisProbe> {
  const host = hostsOf(target);
  let firstError: (Error & { code?: string }) | undefined;
  probe.on('error', (err: Error) => (firstError ??= err));
  const refused = (err: unknown) =>
    [firstError, err].map((e) => (e instanceof Error ? connectionRefusal(e, target) : undefined)).find(Boolean);
  try {
    await probe.connect();
    if (db !== 0 && !sentinel) {
      try {
        await (probe as Redis).select(db);
      } catch {
        return {
          ok: false,
          reason: `REDIS_URL names database ${db}, which the Redis at ${host} does not have (see its "databases" setting): use one it has, such as /0`,
          unreachable: false,
        };
      }
    }
    if (!(probe instanceof Cluster)) {
      if ((await probe.ping()) !== 'PONG')
        return { ok: false, reason: `the server at ${host} does not answer PING like Redis`, unreachable: false };
      return { ok: true };
    }
    // The state as the first master that answers sees it: one that stopped answering (the cause of a failover) does
    // not hold the probe up.
    const info = await Promise.any(probe.nodes('master').map((n) => n.call('CLUSTER', 'INFO')));
    const state = /cluster_state:(\w+)/.exec(String(info))?.[1] ?? 'unknown';
    if (state !== 'ok')
      return {
        ok: false,
        reason: `the Redis Cluster at ${host} is not up (cluster_state:${state}: a master is out and no replica has taken its slots yet)`,
        unreachable: false,
        clusterDown: true,
      };
    return { ok: true };
  } catch (thrown) {
    // No master answered the state: the first one's reason.
    const err = thrown instanceof AggregateError ? thrown.errors[0] : thrown;
    const why = refused(err);
    if (why) return { ok: false, reason: why, unreachable: false };
    return {
      ok: false,
      reason: `cannot reach Redis at ${host} (${(firstError ?? (err as Error)).message.split('\n')[0]})`,
      unreachable: true,
    };
  }
}

/** Pings a single Redis once with a short timeout, without retrying: for "is anything there?" checks. */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  return (await probeRedis({ redisUrl: url, redisCluster: false }, timeoutMs)).ok;
}
