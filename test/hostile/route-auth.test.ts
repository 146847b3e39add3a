import { request as httpRequest } from 'node:http';
import { describe, expect, it } from 'vitest';
import { useApi, useWorld } from '../helpers/in-process-worker.js';

const ALPHA = 'tok-walk-alpha';
const BETA = 'tok-walk-beta';
const ADMIN = 'tok-walk-admin';

type Credential = {
  name: string;
  admin: boolean;
  ambient: boolean;
  headers: (cookies: Record<string, string>) => Record<string, string>;
};
const basic = (token: string) => `Basic ${Buffer.from(`walker:${token}`).toString('base64')}`;
const CREDENTIALS: Credential[] = [
  { name: 'none', admin: false, ambient: false, headers: () => ({}) },
  { name: 'bearer beta', admin: false, ambient: false, headers: () => ({ authorization: `Bearer ${BETA}` }) },
  { name: 'basic beta', admin: false, ambient: true, headers: () => ({ authorization: basic(BETA) }) },
  { name: 'cookie beta', admin: false, ambient: true, headers: (c) => ({ cookie: c.beta! }) },
  { name: 'basic admin', admin: true, ambient: true, headers: () => ({ authorization: basic(ADMIN) }) },
  { name: 'cookie admin', admin: true, ambient: true, headers: (c) => ({ cookie: c.admin! }) },
  { name: 'bearer admin', admin: true, ambient: false, headers: () => ({ authorization: `Bearer ${ADMIN}` }) },
];
const CROSS_SITE = { origin: 'http://evil.example', 'sec-fetch-site': 'cross-site', 'content-type': 'text/plain' };
const WRITES = new Set(['POST', 'PUT', 'DELETE', 'PATCH']);
const DENIED = [401, 403, 404];

/** Raw HTTP: the request target is sent as given (encoded or absolute), which fetch() would normalise. */
function send(base: string, method: string, target: string, headers: Record<string, string>): Promise<number> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        method,
        path: target,
        headers: { ...headers, ...(WRITES.has(method) ? { 'content-length': '0' } : {}) },
      },
      (res) => {
        res.resume();
        resolve(res.statusCode!);
      },
    );
    req.on('error', reject);
    req.end();
  });
}

/** Every way to write `path`: each character of it percent-encoded on its own (both hex cases), and as an absolute target. */
function spellings(path: string): string[] {
  const out = new Set<string>([path, `http://chatq.example${path}`, `http://127.0.0.1${path}`]);
  for (let i = 1; i < path.length; i++) {
    const ch = path[i]!;
    if (ch === '/') continue;
    const hex = ch.charCodeAt(0).toString(16);
    for (const h of [hex.toUpperCase(), hex.toLowerCase()])
      out.add(`${path.slice(0, i)}%${h.padStart(2, '0')}${path.slice(i + 1)}`);
  }
  return [...out];
}

/** Who a route is for, by its pattern: the operator board is admins'; the API and the scrape endpoint take Bearer only. */
function intended(route: string, c: Credential): boolean {
  if (c.name === 'none') return false;
  if (route.startsWith('/admin')) return c.admin;
  if (route.startsWith('/v1/') || route === '/metrics') return !c.ambient;
  return true;
}

describe('every route, every spelling of its path, every credential', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}`, CHATQ_ADMIN_TOKENS: ADMIN });

  const signIn = async (token: string) => {
    const res = await fetch(`${a.api.url}/login`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${token}`,
    });
    return res.headers.get('set-cookie')!.split(';')[0]!;
  };

  it('answers only the intended principals; cross-site writes with ambient credentials are refused', async () => {
    const submitted = await w.env.submit(
      [JSON.stringify({ user: 'walk', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })],
      { project: 'alpha' },
    );
    const cookies = { beta: await signIn(BETA), admin: await signIn(ADMIN) };
    const params: Record<string, string> = {
      id: submitted.batchId,
      userid: '0d5c7b8e-1f2a-4b3c-8d4e-5f6a7b8c9d0e',
      name: 'nightly',
      file: 'output',
      '*': 'api/queues',
    };
    const routes = a.api.routes.filter(
      (r) => r.method !== 'HEAD' && !['/healthz', '/readyz', '/login'].includes(r.url) && !r.url.startsWith('/ui/'),
    );
    // The walk covers the API, the dashboard, the board and the scrape endpoint.
    for (const prefix of ['/v1/batches', '/batches/:id', '/admin/queues', '/metrics'])
      expect(routes.some((r) => r.url.startsWith(prefix))).toBe(true);
    const wrong: string[] = [];
    let sent = 0;
    for (const route of routes) {
      const path = route.url.replace(/:([A-Za-z]+)|\*/g, (m, name: string | undefined) => params[name ?? m] ?? 'x');
      for (const c of CREDENTIALS) {
        const denied = !intended(route.url, c);
        const forged = c.ambient && WRITES.has(route.method);
        if (!denied && !forged) continue;
        const headers = { ...c.headers(cookies), ...(forged ? CROSS_SITE : {}) };
        const statuses = await Promise.all(
          spellings(path).map(
            async (target) => [target, await send(a.api.url, route.method, target, headers)] as const,
          ),
        );
        sent += statuses.length;
        for (const [target, status] of statuses)
          if (!DENIED.includes(status) && status !== 400)
            wrong.push(`${route.method} ${target} as ${c.name}${forged ? ' (cross-site)' : ''}: ${status}`);
      }
    }
    expect(sent).toBeGreaterThan(1000);
    expect(wrong).toEqual([]);
    // The walk's denials are not a server that refuses everything: the intended principals get through.
    expect(await send(a.api.url, 'GET', '/admin/queues/api/queues', { authorization: `Bearer ${ADMIN}` })).toBe(200);
    expect(await send(a.api.url, 'GET', '/admin/queues/api/queues', { cookie: cookies.admin })).toBe(200);
    expect(await send(a.api.url, 'GET', '/v1/batches', { authorization: `Bearer ${ALPHA}` })).toBe(200);
    expect(await send(a.api.url, 'GET', `/batches/${submitted.batchId}`, { authorization: basic(ALPHA) })).toBe(200);
    // The batch was never cancelled by any of the forged posts.
    expect((await w.env.batch(submitted.batchId)).status).not.toMatch(/cancel/);
  });
});
