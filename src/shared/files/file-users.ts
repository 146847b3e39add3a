import type { RedisClient } from '../redis/redis.js';
import type { RedisKeys } from '../keys.js';
import { getSchedules } from './schedules.js';

/** What still needs a file: the schedules that run it and the batches being imported from it. */
export async function fileUsers(redis: RedisClient, keys: RedisKeys, id: string): Promise<string[]> {
  const users = (await getSchedules(redis, keys)).filter((s) => s.file_id === id).map((s) => `schedule "${s.name}"`);
  for (const batchId of await redis.smembers(keys.importing)) {
    if ((await redis.hget(keys.batch(batchId), 'input_file_id')) === id)
      users.push(`batch ${batchId} (being imported)`);
  }
  return users;
}
