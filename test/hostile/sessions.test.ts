import { describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { testLogger } from '../helpers/test-env.js';

const ALPHA = 'tok-sess-alpha';
const BETA = 'tok-sess-beta';

describe('dashboard sessions', () => {
  const w = useWorld();
  const started: ApiService[] = [];
  const serve = async (env: Record<string, string>) => {
    const api = await startApiService(w.env.config(env), testLogger(), 0);
    started.push(api);
    return api;
  };
  const signIn = (api: ApiService, token: string, headers: Record<string, string> = {}) =>
    fetch(`${api.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: `token=${token}`,
    });

  it('end with their token: a token no longer configured opens nothing, not even through a session it opened', async () => {
    try {
      const both = await serve({ CHATQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}` });
      const [alpha, beta] = await Promise.all([signIn(both, ALPHA), signIn(both, BETA)]);
      const cookie = (r: Response) => r.headers.get('set-cookie')!.split(';')[0]!;
      expect((await fetch(`${both.url}/`, { headers: { cookie: cookie(beta) } })).status).toBe(200);
      await both.close();
      started.pop();
      // Restarted without beta's token: beta's session is over, alpha's goes on.
      const alphaOnly = await serve({ CHATQ_API_TOKENS: `alpha:${ALPHA}` });
      expect((await fetch(`${alphaOnly.url}/`, { headers: { cookie: cookie(beta) } })).status).toBe(401);
      expect((await fetch(`${alphaOnly.url}/`, { headers: { cookie: cookie(alpha) } })).status).toBe(200);
      // Nothing of the token itself is kept in Redis.
      const stored = await Promise.all(
        (await w.env.redis.keys(`${w.env.prefix}:session:*`)).map((k) => w.env.redis.get(k)),
      );
      expect(stored.length).toBeGreaterThan(0);
      for (const s of stored) expect(s).not.toContain(ALPHA);
    } finally {
      await Promise.all(started.map((s) => s.close()));
    }
  });

  it('get Secure behind a trusted proxy that says https, and only then', async () => {
    try {
      const direct = await serve({ CHATQ_API_TOKENS: ALPHA });
      const proxied = await serve({ CHATQ_API_TOKENS: ALPHA, CHATQ_TRUST_PROXY: '127.0.0.1' });
      const https = { 'x-forwarded-proto': 'https' };
      expect((await signIn(direct, ALPHA, https)).headers.get('set-cookie')).not.toMatch(/Secure/);
      expect((await signIn(proxied, ALPHA, https)).headers.get('set-cookie')).toMatch(/; Secure/);
      expect((await signIn(proxied, ALPHA)).headers.get('set-cookie')).not.toMatch(/Secure/);
    } finally {
      await Promise.all(started.map((s) => s.close()));
    }
  });
});
