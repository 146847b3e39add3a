import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { Redis, type ChainableCommander } from 'ioredis';

/** A connection suited to BullMQ workers and long-running scripts (never gives up on a command while Redis restarts). */
export function connectRedis(url: string, name = 'chatq'): Redis {
  return new Redis(url, { maxRetriesPerRequest: null, connectionName: name, lazyConnect: false });
}

/** Pings Redis once with a short timeout, without retrying: for "is anything there?" checks. */
export async function redisAnswers(url: string, timeoutMs = 1_000): Promise<boolean> {
  const probe = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: timeoutMs });
  probe.on('error', () => undefined);
  try {
    await probe.connect();
    return (await probe.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    probe.disconnect();
  }
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
