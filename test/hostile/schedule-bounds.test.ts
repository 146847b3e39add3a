import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI, { toFile } from 'openai';
import { describe, expect, it } from 'vitest';
import { chatLines } from '../helpers/api-batches.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { runCli, waitFor } from '../helpers/test-env.js';

const A = 'tok-alpha-sched';
const B = 'tok-beta-sched';

describe('schedules are bounded', () => {
  const w = useWorld({ latencyMs: 1_500 });
  const a = useApi(w, {
    CHATQ_API_TOKENS: `alpha:${A},beta:${B}`,
    CHATQ_SCHEDULES_PER_PROJECT: '3',
    CHATQ_SCHEDULE_MAX_MODELS: '4',
  });
  const post = (token: string, body: Record<string, unknown>) =>
    fetch(`${a.api.url}/v1/schedules`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const upload = async (token: string) =>
    (
      await new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: token, maxRetries: 0 }).files.create({
        file: await toFile(Buffer.from(`${chatLines(2).join('\n')}\n`), 'suite.jsonl'),
        purpose: 'batch',
      })
    ).id;

  it('refuses, with the reason, intervals under a minute, cron with seconds, too many or malformed models, and too many schedules', async () => {
    const file = await upload(A);
    const refused = async (body: Record<string, unknown>, reason: RegExp) => {
      const r = await post(A, { input_file_id: file, ...body });
      const answer = await r.json();
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(answer.error.message).toMatch(reason);
    };
    await refused({ name: 'fast', every_ms: 1_000 }, /every_ms: at least 60000 ms between runs/);
    await refused({ name: 'cron-seconds', cron: '*/5 * * * * *' }, /fires 5000 ms apart; at least 60000 ms/);
    await refused({ name: 'bad-cron', cron: 'every tuesday' }, /cron/);
    await refused(
      { name: 'many', every_ms: 3_600_000, models: Array.from({ length: 10_000 }, (_, i) => `m-${i}`) },
      /models: at most 4 models per schedule/,
    );
    await refused({ name: 'odd-model', every_ms: 3_600_000, models: ['gpt 4o; drop'] }, /model name/);
    for (const name of ['s1', 's2', 's3'])
      expect((await post(A, { name, every_ms: 3_600_000, input_file_id: file })).status).toBe(200);
    await refused({ name: 's4', every_ms: 3_600_000 }, /at most 3 schedules per project/);
    // The CLI refuses the same, before it stores anything.
    const suite = join(mkdtempSync(join(tmpdir(), 'chatq-sched-')), 'suite.jsonl');
    writeFileSync(suite, `${chatLines(2).join('\n')}\n`);
    const cli = await runCli(['schedule', 'add', 'cli-fast', suite, '--every', '1000'], w.env.env());
    expect(cli.code).toBe(2);
    expect(cli.stderr).toMatch(/every_ms: at least 60000 ms between runs/);
    expect(await w.env.redis.hlen(w.env.keys.schedules)).toBe(3);
    // Replacing one of the three is allowed; another project has its own allowance.
    expect((await post(A, { name: 's1', every_ms: 7_200_000, input_file_id: file })).status).toBe(200);
    expect((await post(B, { name: 's1', every_ms: 3_600_000, input_file_id: await upload(B) })).status).toBe(200);
  });
});

describe('a schedule never stacks its runs', () => {
  const w = useWorld({ latencyMs: 1_500 });
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${A}`, CHATQ_SCHEDULE_MIN_INTERVAL_MS: '1000' });

  it('a firing while the previous run is still going is skipped and counted', async () => {
    const client = new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: A, maxRetries: 0 });
    const file = (
      await client.files.create({
        // Two turns of one user at 1.5 s each: a run takes about 3 s, three times the schedule's interval.
        file: await toFile(Buffer.from(`${chatLines(2, () => ({ user: 'one' })).join('\n')}\n`), 'suite.jsonl'),
        purpose: 'batch',
      })
    ).id;
    await w.startWorker();
    const added = await fetch(`${a.api.url}/v1/schedules`, {
      method: 'POST',
      headers: { authorization: `Bearer ${A}`, 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'tick', every_ms: 1_000, input_file_id: file }),
    });
    expect(added.status).toBe(200);
    const listed = async () =>
      (await (await fetch(`${a.api.url}/v1/schedules`, { headers: { authorization: `Bearer ${A}` } })).json())
        .data[0] as { skipped_runs: number };
    await waitFor('two firings skipped', async () => (await listed()).skipped_runs >= 2, 30_000, 200);
    const runs = (await client.batches.list({ limit: 100 })).data;
    const open = runs.filter((b) => !['completed', 'failed', 'cancelled', 'expired'].includes(b.status));
    expect(open.length).toBeLessThanOrEqual(1);
    // Each run took ~3 s of a schedule firing every second: two runs at most in the time three firings were skipped.
    expect(runs.length).toBeLessThanOrEqual(2);
  });
});
