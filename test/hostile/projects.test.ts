import OpenAI, { NotFoundError, toFile } from 'openai';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startApiService, type ApiService } from '../../src/cli/api-service.js';
import { useWorld } from '../helpers/in-process-worker.js';
import { runCli, testLogger, waitFor } from '../helpers/test-env.js';

const A = 'tok-alpha-1';
const B = 'tok-beta-2';
const ADMIN = 'tok-admin-3';
const fileText = (who: string) =>
  `${[1, 2, 3].map((i) => JSON.stringify({ custom_id: `${who}-${i}`, user: `${who}-user`, model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hello ${i}` }] })).join('\n')}\n`;

describe('projects: a token sees its own project only', () => {
  const w = useWorld();
  let api: ApiService;
  const client = (token: string) => new OpenAI({ baseURL: `${api.url}/v1`, apiKey: token, maxRetries: 0 });
  const get = async (token: string, path: string, init: RequestInit = {}) =>
    fetch(`${api.url}${path}`, { ...init, headers: { authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

  beforeEach(async () => {
    api = await startApiService(
      w.env.config({ CHATQ_API_TOKENS: `alpha:${A},beta:${B}`, CHATQ_ADMIN_TOKENS: ADMIN }),
      testLogger(),
      0,
    );
  });
  afterEach(async () => {
    await api.close();
  });

  it("project B gets 404 for each of A's objects and never sees them in a list or a sum", async () => {
    await w.startWorker();
    const a = client(A);
    const b = client(B);
    const fileA = await a.files.create({ file: await toFile(Buffer.from(fileText('a')), 'a.jsonl'), purpose: 'batch' });
    const batchA = await a.batches.create({
      input_file_id: fileA.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const doneA = await waitFor('A done', async () => {
      const x = await a.batches.retrieve(batchA.id);
      return x.status === 'completed' ? x : undefined;
    });
    const fileB = await b.files.create({ file: await toFile(Buffer.from(fileText('b')), 'b.jsonl'), purpose: 'batch' });
    const batchB = await b.batches.create({
      input_file_id: fileB.id,
      endpoint: '/v1/chat/completions',
      completion_window: '24h',
    });
    const doneB = await waitFor('B done', async () => {
      const x = await b.batches.retrieve(batchB.id);
      return x.status === 'completed' ? x : undefined;
    });

    // Every object of A is a 404 to B, through the SDK...
    for (const attempt of [
      () => b.files.retrieve(fileA.id),
      () => b.files.content(fileA.id),
      () => b.files.content(doneA.output_file_id!),
      () => b.files.delete(fileA.id),
      () => b.batches.retrieve(batchA.id),
      () => b.batches.cancel(batchA.id),
      () => b.batches.create({ input_file_id: fileA.id, endpoint: '/v1/chat/completions', completion_window: '24h' }),
    ]) {
      await expect(attempt()).rejects.toBeInstanceOf(NotFoundError);
    }
    // ...and over plain HTTP for chatq's own routes.
    const outA = (await (await a.files.content(doneA.output_file_id!)).text())
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    const requestA = outA[0].id.replace(/^batch_req_/, '');
    expect((await get(A, `/v1/requests/${requestA}`)).status).toBe(200);
    expect((await get(B, `/v1/requests/${requestA}`)).status).toBe(404);
    const useridA: string = outA[0].chatq.userid;
    expect((await (await get(A, `/v1/users/${useridA}/requests`)).json()).data).toHaveLength(3);
    expect((await (await get(B, `/v1/users/${useridA}/requests`)).json()).data).toEqual([]);

    // Lists and sums: B sees only B.
    const listed: string[] = [];
    for await (const x of b.batches.list()) listed.push(x.id);
    expect(listed).toEqual([batchB.id]);
    const usageB = await (await get(B, '/v1/usage?group_by=batch')).json();
    expect(usageB.data.map((r: { batch: string }) => r.batch)).toEqual([batchB.id]);
    const byUserB = await (await get(B, '/v1/usage?group_by=user')).json();
    const outB = JSON.parse((await (await b.files.content(doneB.output_file_id!)).text()).split('\n')[0]!);
    expect(byUserB.data.map((r: { user: string }) => r.user)).toEqual([outB.chatq.userid]);
    const byModelB = await (await get(B, '/v1/usage?group_by=model')).json();
    expect(byModelB.data[0].requests).toBe(3);
    expect((await get(B, `/v1/usage?group_by=model&batch=${batchA.id}`)).status).toBe(404);

    // The admin token sees both projects; only it opens the queue board.
    const all: string[] = [];
    for await (const x of client(ADMIN).batches.list()) all.push(x.id);
    expect(all.sort()).toEqual([batchA.id, batchB.id].sort());
    expect((await (await get(ADMIN, '/v1/usage?group_by=model')).json()).data[0].requests).toBe(6);
    const basic = (t: string) => ({ authorization: `Basic ${Buffer.from(`x:${t}`).toString('base64')}` });
    expect((await fetch(`${api.url}/admin/queues`, { headers: basic(A) })).status).toBe(404);
    expect((await fetch(`${api.url}/admin/queues`, { headers: basic(ADMIN) })).status).toBe(200);
    // A project token's metrics carry its own project only.
    const metricsB = await (await get(B, '/metrics')).text();
    expect(metricsB).toContain('project="beta"');
    expect(metricsB).not.toContain('project="alpha"');

    // The CLI is admin and scopes with --project.
    const cli = await runCli(['report', '--by', 'batch', '--format', 'json', '--project', 'alpha'], w.env.env());
    expect(JSON.parse(cli.stdout).map((r: { batch: string }) => r.batch)).toEqual([batchA.id]);
  });

  it('schedule names are per project: the same name in two projects is two schedules, and neither says the other exists', async () => {
    const file = async (token: string) =>
      (
        await client(token).files.create({
          file: await toFile(Buffer.from(fileText('s')), 's.jsonl'),
          purpose: 'batch',
        })
      ).id;
    const schedule = async (token: string, inputFile: string) =>
      get(token, '/v1/schedules', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'nightly', every_ms: 3_600_000, input_file_id: inputFile }),
      });
    const [fileA, fileB] = [await file(A), await file(B)];
    expect((await schedule(A, fileA)).status).toBe(200);
    const b = await schedule(B, fileB);
    expect(b.status).toBe(200);
    const names = async (token: string) =>
      (await (await get(token, '/v1/schedules')).json()).data.map(
        (s: { name: string; project: string }) => `${s.project}/${s.name}`,
      );
    expect(await names(A)).toEqual(['alpha/nightly']);
    expect(await names(B)).toEqual(['beta/nightly']);
    expect((await names(ADMIN)).sort()).toEqual(['alpha/nightly', 'beta/nightly']);
    // Removing beta's leaves alpha's running; the CLI names a project's schedule with --project.
    expect((await get(B, '/v1/schedules/nightly', { method: 'DELETE' })).status).toBe(200);
    expect(await names(A)).toEqual(['alpha/nightly']);
    expect((await get(B, '/v1/schedules/nightly', { method: 'DELETE' })).status).toBe(404);
    const removed = await runCli(['schedule', 'remove', 'nightly', '--project', 'alpha'], w.env.env());
    expect(removed.code, removed.stderr).toBe(0);
    expect(await names(ADMIN)).toEqual([]);
  });
});
