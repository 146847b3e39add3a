import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect as rawRequest, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import { csvCell } from '../../src/shared/batches/batch-output.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { CLI, runCli, spawnWorker, testLogger, waitFor, waitForBatch } from '../helpers/test-env.js';

const TOKEN = 'safety-token';
const ESC = '\u001b]0;owned\u0007';
const noStack = (text: string) => expect(text).not.toMatch(/\n\s+at |\.ts:\d+|\.js:\d+/);
const dir = () => mkdtempSync(join(tmpdir(), 'chatq-safety-'));

describe('what leaves chatq is safe where it lands', () => {
  const w = useWorld();

  it('CSV cells a spreadsheet would run are neutralised (OWASP)', async () => {
    for (const v of ['=1+1', '+1', '-1+2', '@SUM(A1)', '\tx', '\rx'])
      expect(csvCell(v).replace(/^"|"$/g, '').startsWith("'")).toBe(true);
    expect(csvCell('plain')).toBe('plain');
    expect(csvCell(-3)).toBe('-3');
    const submitted = await w.env.submit([
      JSON.stringify({
        custom_id: '=HYPERLINK("http://x")',
        user: 'u',
        model: '@evil',
        messages: [{ role: 'user', content: 'hi' }],
      }),
    ]);
    await w.startWorker();
    await waitForBatch(w.env, submitted.batchId);
    const results = await runCli(['results', submitted.batchId, '--format', 'csv'], w.env.env());
    expect(results.stdout).toContain(`"'=HYPERLINK(""http://x"")"`);
    expect(results.stdout).toContain(",'@evil,");
    const report = await runCli(['report', '--by', 'model', '--format', 'csv'], w.env.env());
    expect(report.stdout).toContain("\n'@evil,");
  });

  it('terminal output carries no control characters from user data', async () => {
    const d = dir();
    const file = join(d, `bad${ESC}.jsonl`);
    writeFileSync(
      file,
      `${JSON.stringify({ custom_id: `id${ESC}`, user: 'u', model: 'gpt-4o-mini', messages: 'x' })}\n${JSON.stringify({ custom_id: `ok${ESC}`, user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })}\n`,
    );
    const r = await runCli(['enqueue', file], w.env.env());
    expect(r.stderr).not.toContain('\u001b');
    expect(r.stderr).not.toContain('\u0007');
    const batchId = r.stdout.trim();
    const status = await runCli(['status', batchId], w.env.env());
    expect(status.stdout).not.toContain('\u001b');
  });

  it('CLI mistakes are one clear line and exit 2, never a stack trace', async () => {
    const env = w.env.env();
    const d = dir();
    mkdirSync(join(d, 'sub.jsonl'));
    symlinkSync(join(d, 'missing-target'), join(d, 'broken.jsonl'));
    writeFileSync(
      join(d, 'good.jsonl'),
      `${JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })}\n`,
    );
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', () => r()));
    const busyPort = String((blocker.address() as { port: number }).port);
    try {
      for (const [args, extra, pattern] of [
        [['serve', '--port', 'abc'], { CHATQ_API_TOKENS: 't' }, /--port: expected a port number/],
        [['serve', '--port', busyPort], { CHATQ_API_TOKENS: 't' }, /port \d+ is in use/],
        [
          ['worker'],
          { CHATQ_BASE_URL: 'http://127.0.0.1:9/v1', CHATQ_PRICES: join(d, 'nope.json') },
          /CHATQ_PRICES: cannot read/,
        ],
        [['worker'], { CHATQ_BASE_URL: 'http://127.0.0.1:9/v1', CHATQ_TIMEOUT_MS: '3000000000' }, /CHATQ_TIMEOUT_MS/],
        [['enqueue', d], {}, /broken\.jsonl: (cannot read|broken link)/],
      ] as const) {
        const r = await runCli([...args], { ...env, ...extra }, 30_000);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
        expect(r.stderr).toMatch(pattern);
        noStack(r.stderr);
      }
    } finally {
      blocker.close();
    }
  });

  it('job errors keep no stack trace (the queue board shows them)', async () => {
    const submitted = await w.env.submit([
      JSON.stringify({ user: 'u', model: 'gpt-4o-mini', messages: [{ role: 'user', content: '[fail 503] hi' }] }),
    ]);
    await w.startWorker({ CHATQ_MAX_ATTEMPTS: '4', CHATQ_BACKOFF_MS: '300' });
    const traces = await waitFor(
      'a retried job',
      async () => {
        const job = await w.env.queue.getJob(`${submitted.batchId}-1`);
        return job?.stacktrace?.length ? job.stacktrace : undefined;
      },
      20_000,
      20,
    );
    for (const t of traces) expect(t).not.toMatch(/\n\s+at |\.js:\d+|\.ts:\d+/);
    expect(traces[0]).toMatch(/http_503/);
  });

  it('`chatq results B | head -1` ends quietly', async () => {
    const submitted = await w.env.submit(
      Array.from({ length: 3_000 }, (_, i) =>
        JSON.stringify({
          custom_id: `c${i}`,
          user: `u${i % 20}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
        }),
      ),
    );
    await w.startWorker({ CHATQ_CONCURRENCY: '100' });
    await waitForBatch(w.env, submitted.batchId);
    const { stderr, code } = await new Promise<{ stderr: string; code: number | null }>((resolve) => {
      const child = spawn(
        'sh',
        ['-c', `"${process.execPath}" "${CLI}" results ${submitted.batchId} | head -1 >/dev/null`],
        { env: w.env.env(), stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      child.once('exit', (c) => resolve({ stderr: err, code: c }));
    });
    expect(code).toBe(0);
    expect(stderr).toBe('');
  });

  it('an output that cannot be written (a full disk, a missing directory) is one line and exit 2, never a hang or a stack', async () => {
    const submitted = await w.env.submit(
      Array.from({ length: 200 }, (_, i) =>
        JSON.stringify({
          custom_id: `c${i}`,
          user: `u${i % 20}`,
          model: 'gpt-4o-mini',
          messages: [{ role: 'user', content: 'hi' }],
        }),
      ),
    );
    await w.startWorker({ CHATQ_CONCURRENCY: '100' });
    await waitForBatch(w.env, submitted.batchId);
    const full = await new Promise<{ stderr: string; code: number | null }>((resolve) => {
      const child = spawn('sh', ['-c', `"${process.execPath}" "${CLI}" results ${submitted.batchId} > /dev/full`], {
        env: w.env.env(),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let err = '';
      child.stderr.on('data', (b: Buffer) => (err += b.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.once('exit', (c) => {
        clearTimeout(timer);
        resolve({ stderr: err, code: c });
      });
    });
    expect(full.code).toBe(2);
    expect(full.stderr.trim().split('\n')).toHaveLength(1);
    expect(full.stderr).toMatch(/cannot write .*ENOSPC/);
    const missing = await runCli(
      ['results', submitted.batchId, '-o', join(dir(), 'no', 'such', 'dir', 'out.jsonl')],
      w.env.env(),
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot write .*out\.jsonl.*ENOENT/);
    noStack(missing.stderr);
  });

  it('table cells show line feeds and control characters escaped: a reply cannot forge rows', async () => {
    const { renderTable } = await import('../../src/cli/table.js');
    const table = renderTable(['custom_id', 'reply'], [['a', 'fine\nb       forged row\r\tx\u001b[2J']]);
    expect(table.split('\n')).toHaveLength(3);
    expect(table).toContain('fine\\nb       forged row\\r\\tx\\u001b[2J');
  });

  describe("the API answers every input in OpenAI's error shape, never 5xx", () => {
    let api: ApiService;
    beforeEach(async () => {
      api = await startApiService(w.env.config({ CHATQ_API_TOKENS: TOKEN }), testLogger(), 0);
    });
    afterEach(async () => {
      await api.close();
    });
    const call = (path: string, init: RequestInit = {}, auth = `Bearer ${TOKEN}`) =>
      fetch(`${api.url}${path}`, { ...init, headers: { authorization: auth, ...(init.headers ?? {}) } });
    const shaped = async (r: Response) => {
      expect(r.status).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      const body = await r.json();
      expect(body.error.message).toEqual(expect.any(String));
      expect(JSON.stringify(body)).not.toMatch(/\/work\/|node_modules|\.ts:\d+/);
      return body;
    };

    it('ids that hit other key types, over-long ids and URLs, malformed multipart', async () => {
      const form = new FormData();
      form.set('purpose', 'batch');
      form.set('file', new Blob(['{"a":1}\n']), 'f.jsonl');
      const file = await (await call('/v1/files', { method: 'POST', body: form })).json();
      for (const path of [
        `/v1/files/${file.id}:lines`,
        `/v1/files/${file.id}:lines/content`,
        `/v1/batches/${file.id}`,
        `/v1/requests/${file.id}:lines`,
        `/v1/files/${'f'.repeat(5_000)}`,
        `/v1/batches?after=${'x'.repeat(10_000)}`,
      ]) {
        await shaped(await call(path));
      }
      const multipart = await call('/v1/files', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data; boundary=zz' },
        body: '--zz\r\nContent-Disposition: form-data; name="file"\r\n\r\nno end',
      });
      await shaped(multipart);
      const noBoundary = await call('/v1/files', {
        method: 'POST',
        headers: { 'content-type': 'multipart/form-data' },
        body: 'x',
      });
      await shaped(noBoundary);
    });

    it('a huge header block gets a 431 with a JSON body', async () => {
      const port = Number(new URL(api.url).port);
      const raw = await new Promise<string>((resolve) => {
        const socket = rawRequest({ port, host: '127.0.0.1' }, () =>
          socket.write(`GET /v1/batches HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(64 * 1024)}\r\n\r\n`),
        );
        let text = '';
        socket.on('data', (b: Buffer) => (text += b.toString()));
        socket.on('close', () => resolve(text));
        socket.on('error', () => resolve(text));
      });
      expect(raw).toMatch(/^HTTP\/1\.1 431/);
      expect(raw).toContain('"error"');
    });

    it('the bearer scheme is case-insensitive; Basic auth opens only the browser pages', async () => {
      expect((await call('/v1/batches', {}, `bearer ${TOKEN}`)).status).toBe(200);
      expect((await call('/v1/batches', {}, `BEARER ${TOKEN}`)).status).toBe(200);
      const basic = `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}`;
      expect((await call('/v1/batches', {}, basic)).status).toBe(401);
    });
  });

  it('credentials in CHATQ_BASE_URL are never printed: not in the banner, not in the "worker started" log', async () => {
    const worker = spawnWorker(
      w.env.env({ CHATQ_BASE_URL: 'http://ann:pw-s3cret-77@127.0.0.1:9/v1?key=k-s3cret-88', LOG_LEVEL: 'info' }),
    );
    try {
      await waitFor(
        'the banner and the start log',
        async () => worker.stderr().includes('worker started') && worker.stderr().includes('chatq worker: upstream'),
        30_000,
      );
      expect(worker.stderr()).toContain('upstream http://127.0.0.1:9/v1');
      expect(worker.stderr()).not.toMatch(/s3cret|ann:/);
    } finally {
      worker.child.kill('SIGTERM');
      await worker.exited;
    }
  });
});
