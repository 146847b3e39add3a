import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Redis, type ChainableCommander } from 'ioredis';
import { createLogger, type Logger } from './logger.js';
import { describeRedisError } from './redis-errors.js';

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
    log().error({ err: err.message }, 'redis error');
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

function watch(client: Redis): Redis {
  client.on('error', reportRedisError);
  client.on('ready', () => {
    if (!lost) return;
    lost = false;
    log().info('redis connection restored');
  });
  return client;
}

/**
 * A connection for workers and long-running services: never gives up on a command while Redis restarts. With
 * `failFast` (the CLI's one-shot commands) a command fails after a few seconds without Redis, so the user is told.
 */
export function connectRedis(url: string, name = 'chatq', opts: { failFast?: boolean } = {}): Redis {
  return watch(new Redis(url, { maxRetriesPerRequest: opts.failFast ? 10 : null, connectionName: name, lazyConnect: false }));
}

/** A Redis URL fit to print: without its user name and password. */
export function printableRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    u.username = '';
    u.password = '';
    return u.toString();
  } catch {
    return '(unparsable REDIS_URL)';
  }
}

export type RedisProbe = { ok: true } | { ok: false; reason: string };

/**
 * Connects once, without retrying, and checks that the database the URL names exists (ioredis would otherwise run
 * every command in database 0 after a failed SELECT).
 */
export async function probeRedis(url: string, timeoutMs = 1_000): Promise<RedisProbe> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs, db: 0 });
  probe.on('error', () => undefined);
  const db = Number(new URL(url).pathname.slice(1) || 0);
  try {
    await probe.connect();
    if (db !== 0) {
      try {
        await probe.select(db);
      } catch {
        return { ok: false, reason: `REDIS_URL names database ${db}, which the Redis at ${new URL(url).host} does not have (see its "databases" setting): use one it has, such as /0` };
      }
    }
    if ((await probe.ping()) !== 'PONG') return { ok: false, reason: `the server at ${new URL(url).host} does not answer PING like Redis` };
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: `cannot reach Redis at ${new URL(url).host} (${(err as Error).message.split('\n')[0]})` };
  } finally {
    probe.disconnect();
  }
}

/** Pings Redis once with a short timeout, without retrying: for "is anything there?" checks. */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  return (await probeRedis(url, timeoutMs)).ok;
}

type ScriptArg = string | number;
/**
 * One Redis state transition, kept in its own .lua file next to the code that runs it.
 * ioredis sends EVALSHA and falls back to EVAL, so a restarted Redis needs no reload.
 */
export class LuaScript {
  readonly name: string;
  private readonly lua: string;

  constructor(file: URL) {
    this.lua = readFileSync(file, 'utf8');
    this.name = `chatq_${basename(file.pathname, '.lua').replace(/-/g, '_')}`;
  }

  private define(redis: Redis): void {
    if (!(this.name in redis)) redis.defineCommand(this.name, { lua: this.lua });
  }

  run(redis: Redis, keys: string[], args: ScriptArg[]): Promise<unknown> {
    this.define(redis);
    return (redis as unknown as Record<string, (...a: ScriptArg[]) => Promise<unknown>>)[this.name]!(keys.length, ...keys, ...args);
  }

  /** Queues the script on a pipeline created from `redis` (which must have run `prepare`). */
  queue(pipeline: ChainableCommander, keys: string[], args: ScriptArg[]): void {
    (pipeline as unknown as Record<string, (...a: ScriptArg[]) => unknown>)[this.name]!(keys.length, ...keys, ...args);
  }

  prepare(redis: Redis): this {
    this.define(redis);
    return this;
  }
}
