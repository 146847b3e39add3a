import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { PER_PROJECT_SUBSCRIBERS } from '../../src/dashboard/live-updates.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';

const ALPHA = 'tok-bounds-alpha';
const BETA = 'tok-bounds-beta';
const ADMIN = 'tok-bounds-admin';
const line = JSON.stringify({
  custom_id: 'a',
  user: 'u',
  model: 'gpt-4o-mini',
  messages: [{ role: 'user', content: 'hi' }],
});

describe('API bounds and headers', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}`, CHATQ_ADMIN_TOKENS: ADMIN });
  const client = (token: string) => new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: token, maxRetries: 0 });
  const get = (path: string, token: string | null, headers: Record<string, string> = {}) =>
    fetch(`${a.api.url}${path}`, { headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...headers } });

  it('batch metadata is bounded as OpenAI bounds it: 16 keys, keys of 64 characters, values of 512', async () => {
    const alpha = client(ALPHA);
    const file = await alpha.files.create({
      file: await toFile(Buffer.from(`${line}\n`), 'a.jsonl'),
      purpose: 'batch',
    });
    const create = (metadata: Record<string, string>) =>
      alpha.batches.create({
        input_file_id: file.id,
        endpoint: '/v1/chat/completions',
        completion_window: '24h',
        metadata,
      });
    const keys = (n: number) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 'v']));
    await expect(create(keys(17))).rejects.toMatchObject({ status: 400, message: expect.stringMatching(/16/) });
    await expect(create({ ['k'.repeat(65)]: 'v' })).rejects.toMatchObject({ status: 400 });
    await expect(create({ k: 'v'.repeat(513) })).rejects.toMatchObject({ status: 400 });
    const ok = await create({ ...keys(15), ['k'.repeat(64)]: 'v'.repeat(512) });
    expect(Object.keys(ok.metadata ?? {})).toHaveLength(16);
  });

  it('every page refuses framing and caching; result files and file contents are not cached', async () => {
    const alpha = client(ALPHA);
    const file = await alpha.files.create({
      file: await toFile(Buffer.from(`${line}\n`), 'a.jsonl'),
      purpose: 'batch',
    });
    const pages = [
      await get('/', null, { accept: 'text/html' }), // the sign-in page a 401 shows
      await get('/admin/queues', ADMIN),
      await get('/admin/queues/api/queues', ADMIN),
      await get('/login', null),
      await get('/', ALPHA),
    ];
    for (const p of pages) {
      expect(p.headers.get('x-frame-options'), p.url).toBe('DENY');
      expect(p.headers.get('cache-control'), p.url).toBe('no-store');
      expect(p.headers.get('x-content-type-options'), p.url).toBe('nosniff');
    }
    for (const p of [pages[0]!, pages[1]!, pages[3]!, pages[4]!])
      expect(p.headers.get('content-security-policy'), p.url).toMatch(/frame-ancestors 'none'/);
    expect((await get(`/v1/files/${file.id}/content`, ALPHA)).headers.get('cache-control')).toBe('no-store');
    expect((await get('/v1/batches', ALPHA)).headers.get('cache-control')).toBe('no-store');
    // The dashboard's own script and styles may be cached: they hold no data.
    expect((await get('/ui/app.css', null)).headers.get('cache-control')).toMatch(/max-age/);
  });

  it("one project's live pages take at most its share of the server's streams", async () => {
    const submitted = await w.env.submit([line], { project: 'alpha' });
    const other = await w.env.submit([line], { project: 'beta' });
    const open = async (token: string, batch: string) => {
      const controller = new AbortController();
      const res = await fetch(`${a.api.url}/ui/events?batches=${batch}`, {
        headers: { authorization: `Bearer ${token}` },
        signal: controller.signal,
      });
      // The response is kept: fetch closes the connection of a response the garbage collector takes.
      return { status: res.status, res, close: () => controller.abort() };
    };
    const streams = [];
    for (let i = 0; i < PER_PROJECT_SUBSCRIBERS; i++) streams.push(await open(ALPHA, submitted.batchId));
    try {
      expect(streams.every((s) => s.status === 200)).toBe(true);
      const over = await open(ALPHA, submitted.batchId);
      expect(over.status).toBe(429);
      const beta = await open(BETA, other.batchId);
      expect(beta.status).toBe(200);
      beta.close();
    } finally {
      for (const s of streams) s.close();
    }
  });
});
