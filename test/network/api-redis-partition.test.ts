import { describe, expect, it } from 'vitest';
import { waitFor } from '../helpers/test-env.js';
import { useNetWorld } from '../helpers/net-world.js';

const TOKEN = 'net-token';
const ADMIN = 'net-admin';

describe('network (d): the API server and Redis apart', () => {
  const w = useNetWorld();

  it('answers every route within a second while Redis is out of reach (503 with retry-after, /healthz alive), and recovers by itself', async () => {
    const apiHost = await w.lab.host('api');
    const api = w.chatq(apiHost, ['serve', '--host', apiHost.ip, '--port', '8080'], {
      CHATQ_API_TOKENS: TOKEN,
      CHATQ_ADMIN_TOKENS: ADMIN,
    });
    const base = `http://${apiHost.ip}:8080`;
    const bearer = { authorization: `Bearer ${TOKEN}` };
    await waitFor('the API', async () => (await fetch(`${base}/healthz`)).ok, 20_000).catch((err: Error) => {
      throw new Error(`${err.message}\n${api.output()}`);
    });
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append(
      'file',
      new Blob([
        JSON.stringify({
          custom_id: 'a',
          method: 'POST',
          url: '/v1/chat/completions',
          body: { model: 'gpt-4o-mini', user: 'u1', messages: [{ role: 'user', content: 'hi' }] },
        }),
      ]),
      'in.jsonl',
    );
    const file = (await (await fetch(`${base}/v1/files`, { method: 'POST', headers: bearer, body: form })).json()) as {
      id: string;
    };
    const batch = (await (
      await fetch(`${base}/v1/batches`, {
        method: 'POST',
        headers: { ...bearer, 'content-type': 'application/json' },
        body: JSON.stringify({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      })
    ).json()) as { id: string };
    expect(batch.id).toMatch(/^batch_/);
    const basic = { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`, accept: 'text/html' };
    const admin = { authorization: `Basic ${Buffer.from(`x:${ADMIN}`).toString('base64')}`, accept: 'text/html' };
    const json = { ...bearer, 'content-type': 'application/json' };
    const routes: { method: string; path: string; headers: Record<string, string>; body?: string; html?: boolean }[] = [
      { method: 'GET', path: '/v1/batches', headers: bearer },
      { method: 'GET', path: `/v1/batches/${batch.id}`, headers: bearer },
      {
        method: 'POST',
        path: '/v1/batches',
        headers: json,
        body: JSON.stringify({ input_file_id: file.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
      },
      { method: 'POST', path: `/v1/batches/${batch.id}/cancel`, headers: bearer },
      { method: 'GET', path: `/v1/files/${file.id}`, headers: bearer },
      { method: 'GET', path: `/v1/files/${file.id}/content`, headers: bearer },
      { method: 'GET', path: '/v1/usage', headers: bearer },
      { method: 'GET', path: '/v1/users/u1/requests', headers: bearer },
      { method: 'GET', path: '/v1/schedules', headers: bearer },
      { method: 'GET', path: '/metrics', headers: bearer },
      { method: 'GET', path: '/', headers: basic, html: true },
      { method: 'GET', path: `/batches/${batch.id}`, headers: basic, html: true },
      { method: 'GET', path: '/costs', headers: basic, html: true },
      { method: 'GET', path: '/admin/queues', headers: admin, html: true },
    ];
    for (const how of ['drop', 'reject'] as const) {
      await apiHost.cut(w.redisHost.ip, { how, port: 6379 });
      await new Promise((r) => setTimeout(r, 2_000));
      for (const route of routes) {
        const started = Date.now();
        const res = await fetch(`${base}${route.path}`, {
          method: route.method,
          headers: route.headers,
          ...(route.body ? { body: route.body } : {}),
          signal: AbortSignal.timeout(10_000),
        });
        const tookMs = Date.now() - started;
        const text = await res.text();
        const what = `${how}: ${route.method} ${route.path} → ${res.status} in ${tookMs} ms`;
        expect(tookMs, what).toBeLessThan(1_000);
        expect(res.status, what).toBe(503);
        expect(Number(res.headers.get('retry-after')), what).toBeGreaterThan(0);
        if (route.html) expect(text, what).toContain('cannot reach Redis');
        else
          expect(JSON.parse(text), what).toMatchObject({ error: { type: 'server_error', code: 'store_unavailable' } });
      }
      const health = await fetch(`${base}/healthz`, { signal: AbortSignal.timeout(1_000) });
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: 'ok', redis: false });
      await apiHost.heal();
      await waitFor(
        'the API to recover',
        async () =>
          (await fetch(`${base}/v1/batches`, { headers: bearer, signal: AbortSignal.timeout(2_000) })).status === 200,
        30_000,
        250,
      );
      expect(await (await fetch(`${base}/healthz`)).json()).toMatchObject({ status: 'ok', redis: true });
    }
    expect(api.output()).not.toMatch(/\n\s+at /);
  });
});
