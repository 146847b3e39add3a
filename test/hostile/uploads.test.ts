import { request as httpRequest } from 'node:http';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import { startLocalRedis } from '../../src/cli/local-redis.js';
import { createTestEnv, testLogger, type TestEnv, waitFor } from '../helpers/test-env.js';

const TOKEN = 'tok-uploads';
const MB = 1024 * 1024;
const BOUNDARY = 'chatq-test-boundary';

/** A multipart upload's head: the purpose field and the file part's headers. */
const head = `--${BOUNDARY}\r\ncontent-disposition: form-data; name="purpose"\r\n\r\nbatch\r\n--${BOUNDARY}\r\ncontent-disposition: form-data; name="file"; filename="big.jsonl"\r\ncontent-type: application/jsonl\r\n\r\n`;
const jsonl = (bytes: number) => {
  const line = `${JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x'.repeat(200) }] })}\n`;
  return line.repeat(Math.ceil(bytes / line.length));
};

/** Sends an upload that says it is `declared` bytes long, but sends only `sent` bytes of it: the answer, if one comes. */
function partialUpload(
  url: string,
  declared: number,
  sent: number,
): Promise<{ status: number; body: string } | 'no answer'> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const req = httpRequest(
      {
        host: u.hostname,
        port: u.port,
        method: 'POST',
        path: '/v1/files',
        headers: {
          authorization: `Bearer ${TOKEN}`,
          'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
          'content-length': String(declared),
        },
      },
      (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      },
    );
    req.on('error', () => undefined);
    req.write(head + jsonl(sent));
    setTimeout(() => {
      req.destroy();
      resolve('no answer');
    }, 3_000);
  });
}

/**
 * A chunked upload (no content-length) that sends its head and `first` bytes of lines, then a line every `everyMs`
 * until `stop()`: the answer when the server gives one.
 */
function tricklingUpload(url: string, token: string, everyMs: number, first = 0) {
  const u = new URL(url);
  let answered: (a: { status: number; body: string }) => void = () => undefined;
  const answer = new Promise<{ status: number; body: string }>((resolve) => (answered = resolve));
  const req = httpRequest(
    {
      host: u.hostname,
      port: u.port,
      method: 'POST',
      path: '/v1/files',
      headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
    },
    (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => answered({ status: res.statusCode!, body }));
    },
  );
  req.on('error', () => undefined);
  req.write(head + (first > 0 ? jsonl(first) : ''));
  const timer = everyMs > 0 ? setInterval(() => req.write(jsonl(200)), everyMs) : undefined;
  return {
    answer,
    stop() {
      clearInterval(timer);
      req.destroy();
    },
  };
}

describe('uploads are never staged beyond their limit', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  const serve = async (env: TestEnv, maxUploadBytes: number): Promise<ApiService> => {
    const api = await startApiService(
      env.config({ CHATQ_API_TOKENS: TOKEN }),
      testLogger(),
      0,
      '127.0.0.1',
      maxUploadBytes,
    );
    cleanups.push(() => api.close());
    return api;
  };

  it('an upload that says it is over the limit is refused before its body is read, and Redis holds none of it', async () => {
    const env = await createTestEnv();
    cleanups.push(() => env.cleanup());
    const api = await serve(env, 1 * MB);
    const answer = await partialUpload(api.url, 50 * MB, 2 * MB);
    expect(answer).not.toBe('no answer');
    if (answer === 'no answer') return;
    expect(answer.status).toBe(413);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'file_too_large', type: 'invalid_request_error' } });
    expect(await env.redis.keys(`${env.prefix}:file:*`)).toEqual([]);
  });

  it("a full Redis answers 503 in OpenAI's shape (try again), never its own OOM text", async () => {
    const redis = await startLocalRedis({ appendfsync: 'off' });
    cleanups.push(() => redis.stop());
    const env = await createTestEnv(redis.url);
    cleanups.push(() => env.cleanup());
    const api = await serve(env, 64 * MB);
    const admin = new Redis(redis.url);
    cleanups.push(async () => {
      await admin.config('SET', 'maxmemory', '0');
      admin.disconnect();
    });
    const used = Number(/used_memory:(\d+)/.exec(await admin.info('memory'))![1]);
    await admin.config('SET', 'maxmemory', String(used + 2 * MB));
    const body = new FormData();
    body.append('purpose', 'batch');
    body.append('file', new Blob([jsonl(6 * MB)]), 'big.jsonl');
    const res = await fetch(`${api.url}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body,
    });
    const text = await res.text();
    expect(res.status, text).toBe(503);
    expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(JSON.parse(text)).toMatchObject({ error: { type: 'server_error', code: 'server_full' } });
    expect(text).not.toMatch(/OOM|maxmemory/);
    expect(await env.redis.keys(`${env.prefix}:file:*`)).toEqual([]);
  });

  it("uploads that trickle in reserve what has arrived, not the limit: another project's small upload goes through", async () => {
    const env = await createTestEnv();
    cleanups.push(() => env.cleanup());
    const api = await startApiService(
      env.config({ CHATQ_API_TOKENS: `alpha:${TOKEN},beta:tok-uploads-beta` }),
      testLogger(),
      0,
    );
    cleanups.push(() => api.close());
    // Each sends enough lines at once that the server stages some in Redis: then both are being received.
    const slow = [0, 1].map(() => tricklingUpload(api.url, 'tok-uploads-beta', 500, 150_000));
    cleanups.push(async () => {
      for (const u of slow) u.stop();
    });
    await waitFor('both uploads staged', async () => (await env.redis.keys(`${env.prefix}:file:*:lines`)).length === 2);
    const body = new FormData();
    body.append('purpose', 'batch');
    body.append('file', new Blob([jsonl(500)]), 'small.jsonl');
    const res = await fetch(`${api.url}/v1/files`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}` },
      body,
    });
    expect(res.status, await res.clone().text()).toBe(200);
  });

  it('an upload that sends nothing for CHATQ_UPLOAD_IDLE_MS ends with 408 and keeps nothing', {
    timeout: 20_000,
  }, async () => {
    const env = await createTestEnv();
    cleanups.push(() => env.cleanup());
    const api = await startApiService(
      env.config({ CHATQ_API_TOKENS: TOKEN, CHATQ_UPLOAD_IDLE_MS: '1000' }),
      testLogger(),
      0,
    );
    cleanups.push(() => api.close());
    const stalled = tricklingUpload(api.url, TOKEN, 0);
    cleanups.push(async () => stalled.stop());
    const answer = await stalled.answer;
    expect(answer.status).toBe(408);
    expect(JSON.parse(answer.body)).toMatchObject({ error: { code: 'upload_timeout', type: 'invalid_request_error' } });
    expect(await env.redis.keys(`${env.prefix}:file:*`)).toEqual([]);
  });
});
