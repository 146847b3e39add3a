import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { redisKeys, SCRIPT_KEY_BUILDERS } from '../src/shared/keys.js';
import { keysPrelude } from '../src/shared/redis.js';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

describe('key layout in one place', () => {
  let env: TestEnv;
  beforeEach(async () => {
    env = await createTestEnv();
  });
  afterEach(async () => {
    await env.cleanup();
  });

  it('the Lua key builders scripts include are generated from keys.ts and build the same keys', async () => {
    const keys = redisKeys(env.prefix);
    const id = "batch_0123456789abcdef01234567-42'x";
    for (const name of SCRIPT_KEY_BUILDERS) {
      const built = await env.redis.eval(`${keysPrelude()}\nreturn KEY.${name}(ARGV[1], ARGV[2])`, 0, env.prefix, id);
      expect(built, name).toBe(keys[name](id));
    }
  });
});
