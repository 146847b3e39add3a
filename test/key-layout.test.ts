import { describe, expect, it } from 'vitest';
import { redisKeys, SCRIPT_KEY_BUILDERS } from '../src/shared/keys.js';
import { keysPrelude } from '../src/shared/redis.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('key layout in one place', () => {
  const t = useTestEnv();

  it('the Lua key builders scripts include are generated from keys.ts and build the same keys', async () => {
    const keys = redisKeys(t.env.prefix);
    const id = "batch_0123456789abcdef01234567-42'x";
    for (const name of SCRIPT_KEY_BUILDERS) {
      const built = await t.env.redis.eval(`${keysPrelude()}\nreturn KEY.${name}(ARGV[1], ARGV[2])`, 0, t.env.prefix, id);
      expect(built, name).toBe(keys[name](id));
    }
  });
});
