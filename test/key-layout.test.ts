import { describe, expect, it } from 'vitest';
import { DEFAULT_PROJECT, redisKeys, SCRIPT_KEY_BUILDERS } from '../src/shared/keys.js';
import { keysPrelude } from '../src/shared/redis/lua-preludes.js';
import { useTestEnv } from './helpers/in-process-worker.js';

describe('key layout in one place', () => {
  const t = useTestEnv();

  it('the Lua key builders scripts include are generated from keys.ts and build the same keys', async () => {
    const keys = redisKeys(t.env.prefix);
    const samples: Record<string, string> = {
      id: "batch_0123456789abcdef01234567-42'x",
      userid: 'user:7\\x',
      dim: 'model',
      key: 'gpt-4o-mini',
    };
    let checked = 0;
    for (const [name, params] of Object.entries(SCRIPT_KEY_BUILDERS)) {
      // A key a project scopes has two shapes: the default project's and any other's.
      for (const project of params.some((p) => p === 'project') ? [DEFAULT_PROJECT, 'team-a'] : ['']) {
        const args = params.map((p) => (p === 'project' ? project : samples[p]!));
        const lua = `${keysPrelude()}\nreturn KEY.${name}(${['ARGV[1]', ...args.map((_, i) => `ARGV[${i + 2}]`)].join(', ')})`;
        const built = await t.env.redis.eval(lua, 0, t.env.prefix, ...args);
        expect(built, `${name}(${args.join(', ')})`).toBe(
          (keys[name as keyof typeof SCRIPT_KEY_BUILDERS] as (...a: string[]) => string)(...args),
        );
        checked += 1;
      }
    }
    expect(checked).toBe(17);
  });
});
