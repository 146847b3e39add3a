import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Cluster, Redis, type ChainableCommander, type ClusterOptions, type RedisOptions } from 'ioredis';
import { createLogger, type Logger } from '../logger.js';
import { logFailure } from './condition-log.js';
import { describeRedisError } from './redis-errors.js';
import { isSentinel, seedUrls, sentinelMaster, type RedisTarget } from './redis-target.js';
import { finishedRecordPlaces, PRELUDES } from './lua-preludes.js';

/** A single Redis or a Redis Cluster: chatq runs the same on both. */
export type RedisClient = Redis | Cluster;

let logger: Logger | undefined;
const log = () => (logger ??= createLogger(process.env.LOG_LEVEL ?? 'info', 'chatq-redis'));
/** One line per outage, not one per failed reconnect of every connection. */
const QUIET_MS = 30_000;
let lostAt = 0;
let lost = false;

/** Records a Redis connection error (from any client of this process): logged once per outage, as JSON. */
export function reportRedisError(err: Error): void {
  const problem = describeRedisError(err);
  if (problem?.code !== 'redis_unavailable') {
    logFailure(log(), 'error', {}, err, 'redis error');
    return;
  }
  if (lost && Date.now() - lostAt < QUIET_MS) return;
  lost = true;
  lostAt = Date.now();
  log().warn({ err: err.message }, 'redis connection lost: retrying');
}

/** Sends an emitter's errors (a BullMQ queue or worker, which print raw stacks without a listener) to reportRedisError. */
export function reportErrors<T extends { on(event: 'error', listener: (err: Error) => void): unknown }>(emitter: T): T {
  emitter.on('error', reportRedisError);
  return emitter;
}

function watch<C extends RedisClient>(client: C): C {
  client.on('error', reportRedisError);
  client.on('ready', () => {
    if (!lost) return;
    lost = false;
    log().info('redis connection restored');
  });
  return client;
}

/** The user, password and TLS settings a REDIS_URL and CHATQ_REDIS_CA give every connection. */
function authAndTls(target: RedisTarget): RedisOptions {
  const first = seedUrls(target.redisUrl)[0]!;
  const tls = first.protocol.startsWith('rediss')
    ? { tls: target.redisCa ? { ca: readFileSync(target.redisCa) } : {} }
    : {};
  return {
    ...(first.username ? { username: decodeURIComponent(first.username) } : {}),
    ...(first.password ? { password: decodeURIComponent(first.password) } : {}),
    ...tls,
  };
}

/**
 * One Redis: from its URL, or (redis+sentinel://[user:password@]s1:26379,s2:26379/MASTER) the master that the
 * sentinels name, found again after a failover. A server that turned replica under a connection (a failover the
 * connection missed) answers READONLY: the connection is made again, to the master.
 */
export function singleOf(target: RedisTarget, options: RedisOptions): Redis {
  const seeds = seedUrls(target.redisUrl);
  const common: RedisOptions = {
    ...authAndTls(target),
    reconnectOnError: (err) => (err.message.startsWith('READONLY') ? 2 : false),
    ...options,
  };
  if (!isSentinel(seeds)) {
    const u = seeds[0]!;
    return new Redis({
      host: u.hostname,
      port: Number(u.port || 6379),
      db: Number(u.pathname.slice(1) || 0),
      ...common,
    });
  }
  return new Redis({
    sentinels: seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 26379) })),
    name: sentinelMaster(seeds),
    ...common,
  });
}

export function clusterOf(
  target: RedisTarget,
  redisOptions: RedisOptions,
  clusterOptions: ClusterOptions = {},
): Cluster {
  const seeds = seedUrls(target.redisUrl);
  return new Cluster(
    seeds.map((u) => ({ host: u.hostname, port: Number(u.port || 6379) })),
    { ...clusterOptions, redisOptions: { ...authAndTls(target), ...redisOptions } },
  );
}

/**
 * A connection for workers and long-running services: never gives up on a command while Redis restarts (or a cluster
 * fails over). With `failFast` (the CLI's one-shot commands) a command fails after a few seconds without Redis, so the
 * user is told. With `commandTimeoutMs` (the API server) a command unanswered that long fails, as Redis out of reach
 * behind a partition holds it without failing it. A cluster target gives an ioredis Cluster: every key chatq uses carries the prefix's hash tag. With
 * `autoPipelining`, the commands issued in one tick go in one write; every script loaded so far is defined on it at
 * once, since a command defined later is missing from the pipeline of the tick it is first sent in.
 */
export function connectRedis(
  target: RedisTarget,
  name = 'chatq',
  opts: { failFast?: boolean; autoPipelining?: boolean; commandTimeoutMs?: number } = {},
): RedisClient {
  const options = {
    maxRetriesPerRequest: opts.failFast ? 10 : null,
    connectionName: name,
    enableAutoPipelining: opts.autoPipelining ?? false,
    ...(opts.commandTimeoutMs ? { commandTimeout: opts.commandTimeoutMs } : {}),
  };
  const client = watch(target.redisCluster ? clusterOf(target, options) : singleOf(target, options));
  if (opts.autoPipelining) for (const script of LuaScript.loaded) script.prepare(client);
  return client;
}

/**
 * `connections[index]` when it is connected, else the first that is (else that one all the same): a connection still
 * being made, whose handshake lost a packet (TCP sends a SYN again after 1 s), holds up no command that another could send.
 */
export function readyOf(connections: RedisClient[], index = 0): RedisClient {
  const picked = connections[index]!;
  return picked.status === 'ready' ? picked : (connections.find((c) => c.status === 'ready') ?? picked);
}

type ScriptArg = string | number | Buffer;

/** A cluster node's refusal of a command it did not run: the slot is elsewhere, moving, or not served yet. */
const REFUSED_BY_NODE = /^(MOVED|ASK|TRYAGAIN|CLUSTERDOWN) /;
/** How many times a replicated script's pipeline is sent after such refusals (ioredis's maxRedirections). */
const REDIRECTS = 16;

/**
 * One Redis state transition, kept in its own .lua file next to the code that runs it.
 * ioredis sends EVALSHA and falls back to EVAL, so a restarted Redis needs no reload.
 */
export class LuaScript {
  /** Every script made so far (modules make theirs when loaded). */
  static readonly loaded: LuaScript[] = [];
  readonly name: string;
  private readonly lua: string;
  /** The script's SHA-1, as Redis's script cache names it. */
  readonly sha: string;

  /** The script's text, preludes included. */
  get source(): string {
    return this.lua;
  }

  /**
   * `preludes`: those of this script alone (its contract's: script-contract.ts); `written`: what its contract writes
   * into the whole text once the preludes are in (its keys' places: script-contract.ts).
   */
  constructor(
    file: URL,
    preludes: Record<string, () => string> = {},
    written: (lua: string, script: string) => string = (lua) => lua,
  ) {
    LuaScript.loaded.push(this);
    this.name = `chatq_${basename(file.pathname, '.lua').replace(/-/g, '_')}`;
    // A prelude generated from TypeScript (keys, events, statuses), or a piece of Lua in the `includes/` folder beside
    // the script (its layer's own), else in shared/includes/ (every layer's).
    const text = readFileSync(file, 'utf8').replace(/^--- @include ([\w-]+)$/gm, (_, name: string) => {
      const prelude = preludes[name] ?? PRELUDES[name];
      if (prelude) return prelude();
      const own = new URL(`./includes/${name}.lua`, file);
      return readFileSync(existsSync(own) ? own : new URL(`./includes/${name}.lua`, import.meta.url), 'utf8');
    });
    const script = basename(file.pathname);
    this.lua = finishedRecordPlaces(written(text, script), script);
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  private define(redis: RedisClient): void {
    if (!(this.name in redis)) redis.defineCommand(this.name, { lua: this.lua });
  }

  run(redis: RedisClient, keys: string[], args: ScriptArg[]): Promise<unknown> {
    this.define(redis);
    return (redis as unknown as Record<string, (...a: ScriptArg[]) => Promise<unknown>>)[this.name]!(
      keys.length,
      ...keys,
      ...args,
    );
  }

  /** As run, its reply as bytes (a packed reply: script-contract.ts). */
  runBuffer(redis: RedisClient, keys: string[], args: ScriptArg[]): Promise<Buffer> {
    this.define(redis);
    return (redis as unknown as Record<string, (...a: ScriptArg[]) => Promise<Buffer>>)[`${this.name}Buffer`]!(
      keys.length,
      ...keys,
      ...args,
    );
  }

  /**
   * Runs the script, then (same round trip, same node) WAITs until `replicas.count` replicas hold its writes, or
   * `replicas.timeoutMs` passed. Answers the script's reply and whether enough replicas acknowledged.
   *
   * On a cluster, a pipeline sent on a stale map of the slots (after a failover or a resharding) is refused by that
   * node (MOVED, ASK, TRYAGAIN, CLUSTERDOWN: the script did not run there); ioredis retries a pipeline only when all of
   * its commands failed alike, and WAIT did not. The map is read again and the pipeline sent again, a few times.
   */
  async runReplicated(
    redis: RedisClient,
    keys: string[],
    args: ScriptArg[],
    replicas: { count: number; timeoutMs: number },
    asBuffer = false,
  ): Promise<{ reply: unknown; replicated: boolean }> {
    if (replicas.count <= 0)
      return { reply: await (asBuffer ? this.runBuffer : this.run).call(this, redis, keys, args), replicated: true };
    this.define(redis);
    for (let attempt = 1; ; attempt++) {
      const pipeline = redis.pipeline();
      this.queue(pipeline, keys, args, asBuffer);
      pipeline.wait(replicas.count, replicas.timeoutMs);
      const [[scriptErr, reply], [waitErr, acked]] = (await pipeline.exec()) as [
        [Error | null, unknown],
        [Error | null, unknown],
      ];
      if (scriptErr && redis instanceof Cluster && REFUSED_BY_NODE.test(scriptErr.message) && attempt < REDIRECTS) {
        await new Promise<void>((resolve) => redis.refreshSlotsCache(() => resolve()));
        await new Promise((r) => setTimeout(r, attempt * 50));
        continue;
      }
      if (scriptErr) throw scriptErr;
      // The script ran; a WAIT that failed (its master turned replica: UNBLOCKED) says only that no replica is known
      // to hold it.
      return { reply, replicated: !waitErr && Number(acked) >= replicas.count };
    }
  }

  /** Queues the script on a pipeline created from `redis` (which must have run `prepare`); `asBuffer`: its reply as bytes. */
  queue(pipeline: ChainableCommander, keys: string[], args: ScriptArg[], asBuffer = false): void {
    (pipeline as unknown as Record<string, (...a: ScriptArg[]) => unknown>)[
      asBuffer ? `${this.name}Buffer` : this.name
    ]!(keys.length, ...keys, ...args);
  }

  prepare(redis: RedisClient): this {
    this.define(redis);
    return this;
  }
}
