import { afterEach, describe, expect, it } from 'vitest';
import { ConnectionTurns } from '../src/shared/redis/connection-turns.js';
import { connectRedis, type RedisClient } from '../src/shared/redis/redis.js';
import { REDIS_URL } from './helpers/test-env.js';

const nextTurn = () => new Promise((r) => setImmediate(r));

describe('connections taken in turns', () => {
  const opened: RedisClient[] = [];
  const connect = async () => {
    const c = connectRedis({ redisUrl: REDIS_URL, redisCluster: false });
    opened.push(c);
    await c.ping();
    return c;
  };
  afterEach(() => {
    for (const c of opened.splice(0)) c.disconnect();
  });

  it("one turn's commands go on one connection, the next turn's on the next, round the ring", async () => {
    const [a, b, c] = [await connect(), await connect(), await connect()];
    const turns = new ConnectionTurns([a, b, c]);
    const seen: RedisClient[][] = [];
    for (let t = 0; t < 4; t++) {
      seen.push([turns.current, turns.current, turns.current]);
      await nextTurn();
    }
    expect(seen.map((s) => new Set(s).size)).toEqual([1, 1, 1, 1]);
    expect(seen.map((s) => s[0])).toEqual([a, b, c, a]);
  });

  it('a connection that is not connected is passed over for one that is', async () => {
    const ready = await connect();
    const gone = await connect();
    const ended = new Promise((r) => gone.once('end', r));
    gone.disconnect();
    await ended;
    const turns = new ConnectionTurns([ready, gone]);
    expect(turns.current).toBe(ready);
    await nextTurn();
    expect(turns.current).toBe(ready);
    expect(await turns.current.ping()).toBe('PONG');
  });
});
