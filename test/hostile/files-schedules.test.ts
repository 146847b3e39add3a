import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { testLogger } from '../helpers/test-env.js';

const TOKEN = 'files-token';
const suite = `${JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })}\n`;

describe('files are never deleted under their users, and rejected uploads are not kept', () => {
  const w = useWorld();
  let api: ApiService;
  const call = (path: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, { ...init, headers: { authorization: `Bearer ${TOKEN}`, ...(init.headers ?? {}) } });
  const upload = async (purpose: string, files = 1) => {
    const form = new FormData();
    form.set('purpose', purpose);
    for (let i = 0; i < files; i++) form.append('file', new Blob([suite]), `s${i}.jsonl`);
    return call('/v1/files', { method: 'POST', body: form });
  };
  const storedFiles = async () => (await w.env.redis.keys(`${w.env.prefix}:file:*`)).length;

  beforeEach(async () => {
    api = await startApiService(w.env.config({ CHATQ_API_TOKENS: TOKEN }), testLogger(), 0);
  });
  afterEach(async () => {
    await api.close();
  });

  it('rejected uploads (wrong purpose, two files) leave nothing stored', async () => {
    expect((await upload('fine-tune')).status).toBe(400);
    expect((await upload('batch', 2)).status).toBe(400);
    expect(await storedFiles()).toBe(0);
  });

  it('removing a schedule keeps a file that another schedule uses; DELETE /v1/files refuses a file in use', async () => {
    const file = await (await upload('batch')).json();
    const json = { 'content-type': 'application/json' };
    for (const name of ['one', 'two']) {
      const r = await call('/v1/schedules', {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ name, every_ms: 3_600_000, input_file_id: file.id }),
      });
      expect(r.status).toBe(200);
    }
    expect((await call('/v1/schedules/one', { method: 'DELETE' })).status).toBe(200);
    expect((await call(`/v1/files/${file.id}`)).status).toBe(200);
    expect(await (await call(`/v1/files/${file.id}/content`)).text()).toBe(suite);
    const inUse = await call(`/v1/files/${file.id}`, { method: 'DELETE' });
    expect(inUse.status).toBe(409);
    expect((await inUse.json()).error.message).toMatch(/schedule "two"/);
    expect((await call('/v1/schedules/two', { method: 'DELETE' })).status).toBe(200);
    // An uploaded file belongs to its uploader: a schedule's end does not delete it, DELETE does.
    const deleted = await call(`/v1/files/${file.id}`, { method: 'DELETE' });
    expect(deleted.status).toBe(200);
    expect(await deleted.json()).toEqual({ id: file.id, object: 'file', deleted: true });
    expect((await call(`/v1/files/${file.id}`)).status).toBe(404);
    expect(await storedFiles()).toBe(0);
  });
});
