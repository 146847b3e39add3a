import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './helpers/test-env.js';
import { startTlsRedis, type TlsRedis } from './helpers/tls-redis.js';

describe('managed Redis: TLS with a CA file, an ACL user', () => {
  let redis: TlsRedis;
  beforeAll(async () => {
    redis = await startTlsRedis();
  });
  afterAll(async () => {
    await redis.stop();
  });
  const url = (auth: string) => `rediss://${auth}127.0.0.1:${redis.port}`;
  const cli = (args: string[], env: Record<string, string>) =>
    runCli(
      args,
      { ...(process.env as Record<string, string>), CHATQ_PREFIX: `{t-tls-${process.pid}}`, LOG_LEVEL: 'warn', ...env },
      60_000,
    );

  it('runs a batch over TLS as an ACL user', async () => {
    const res = await cli(['run', 'examples/', '--latency-ms', '0'], {
      REDIS_URL: url(`${redis.user}:${redis.password}@`),
      CHATQ_REDIS_CA: redis.caFile,
    });
    expect(res.stderr).not.toContain(redis.password);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout + res.stderr).toMatch(/completed/);
  });

  it.each([
    [
      'a refused password names the user',
      { REDIS_URL: `rediss://${'chatq-app'}:wrong-pass@127.0.0.1:PORT`, ca: true },
      /refused the password for user "chatq-app" \(WRONGPASS\)/,
    ],
    ['no password given', { REDIS_URL: 'rediss://127.0.0.1:PORT', ca: true }, /needs a password.*NOAUTH.*REDIS_URL/i],
    [
      'a certificate not trusted names the setting',
      { REDIS_URL: `rediss://chatq-app:pw-Secret-123@127.0.0.1:PORT`, ca: false },
      /certificate.*not trusted.*CHATQ_REDIS_CA/i,
    ],
    [
      'a CA that did not sign it',
      { REDIS_URL: `rediss://chatq-app:pw-Secret-123@127.0.0.1:PORT`, ca: 'other' },
      /certificate.*not trusted.*CHATQ_REDIS_CA/i,
    ],
  ] as const)('says in one line what is wrong: %s', async (_name, c, expected) => {
    const env: Record<string, string> = { REDIS_URL: c.REDIS_URL.replace('PORT', String(redis.port)) };
    if (c.ca) env.CHATQ_REDIS_CA = c.ca === 'other' ? redis.otherCaFile : redis.caFile;
    const res = await cli(['status', 'batch_none'], env);
    expect(res.code).toBe(2);
    const lines = res.stderr.trim().split('\n');
    expect(lines, res.stderr).toHaveLength(1);
    expect(lines[0]).toMatch(expected);
    expect(res.stderr).not.toMatch(/wrong-pass|pw-Secret-123|\n\s+at /);
  });

  it('refuses a CA file it cannot read, naming it', async () => {
    const res = await cli(['status', 'batch_none'], { REDIS_URL: url(''), CHATQ_REDIS_CA: '/nonexistent/ca.pem' });
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/CHATQ_REDIS_CA.*\/nonexistent\/ca\.pem/);
  });
});
