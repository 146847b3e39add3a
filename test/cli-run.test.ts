import { loadConfig, MANY_CALLS_IN_FLIGHT } from '../src/shared/config.js';
import { youngGenerationAdvice } from '../src/worker/heap-growth.js';
import { describe, expect, it } from 'vitest';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { useTestEnv } from './helpers/in-process-worker.js';
import { runCli } from './helpers/test-env.js';

describe('chatq run / results / status (the built CLI)', () => {
  const t = useTestEnv();

  it('runs the examples end to end against the embedded simulator and prints the summary', async () => {
    const cliEnv = t.env.env({ CHATQ_API_KEY: '', CHATQ_BASE_URL: '' });
    delete cliEnv.CHATQ_API_KEY;
    delete cliEnv.CHATQ_BASE_URL;
    const run = await runCli(['run', 'examples/', '--latency-ms', '5', '--show', '3'], cliEnv);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('CHATQ_API_KEY is not set: calls go to the local simulator');
    expect(run.stderr).toMatch(/19\/19\s+100%/);
    expect(run.stderr).toMatch(/total\s+19\s/);
    expect(run.stderr).toContain('Your name is Erin.');
    const batchIds = [...run.stderr.matchAll(/batch (batch_[0-9a-f]{24}):/g)].map((m) => m[1]!);
    expect(batchIds).toHaveLength(3);

    const out = join(mkdtempSync(join(tmpdir(), 'chatq-out-')), 'scripts.jsonl');
    const results = await runCli(['results', batchIds[1]!, '-o', out], cliEnv);
    expect(results.code).toBe(0);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.map((l) => l.custom_id)).toEqual([
      'onboard-erin-turn-1',
      'onboard-erin-turn-2',
      'onboard-erin-turn-3',
      'onboard-farid-turn-1',
      'onboard-farid-turn-2',
      'onboard-farid-turn-3',
      'quiz-gwen-turn-1',
      'quiz-gwen-turn-2',
    ]);
    for (const l of lines) {
      expect(l.id).toMatch(/^batch_req_/);
      expect(l.response.status_code).toBe(200);
      expect(l.response.body.object).toBe('chat.completion');
      expect(l.error).toBeNull();
      expect(l.chatq).toMatchObject({ status: 'succeeded', attempts: 1 });
      expect(l.chatq.cost_usd).toBeGreaterThan(0);
    }
    expect(lines[7].response.body.choices[0].message.content).toMatch(/You live in Montreal/);

    const csv = await runCli(['results', batchIds[0]!, '--format', 'csv'], cliEnv);
    const rows = csv.stdout.trim().split('\n');
    expect(rows[0]).toMatch(/^custom_id,status,userid,model,reply,/);
    expect(rows).toHaveLength(9);

    const status = await runCli(['status', batchIds[0]!], cliEnv);
    expect(status.code).toBe(0);
    expect(status.stdout).toMatch(/completed\s+8\s+8\s+0/);
    const missing = await runCli(['status', 'batch_nope'], cliEnv);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('no batch or request "batch_nope"');
  });

  it('reports configuration problems one per line and exits 2', async () => {
    const bad = await runCli(
      ['worker'],
      t.env.env({
        CHATQ_RPM: 'lots',
        CHATQ_CONCURRENCY: '0',
        CHATQ_BASE_URL: 'not a url',
        CHATQ_HEAP_GROWTH_PERCENT: '-1',
      }),
    );
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('CHATQ_RPM: expected an integer >= 0, got "lots"');
    expect(bad.stderr).toContain('CHATQ_CONCURRENCY: expected an integer >= 1, got "0"');
    expect(bad.stderr).toContain('CHATQ_BASE_URL: expected a URL');
    expect(bad.stderr).toContain('CHATQ_HEAP_GROWTH_PERCENT: expected an integer from 0 to 400, got "-1"');
  });

  it("holds a worker's heap growth by default only from many calls in flight; a value given wins", () => {
    const growth = (env: Record<string, string>) => loadConfig(env).heapGrowthPercent;
    expect(growth({ CHATQ_CONCURRENCY: String(MANY_CALLS_IN_FLIGHT - 1) })).toBe(0);
    expect(growth({ CHATQ_CONCURRENCY: String(MANY_CALLS_IN_FLIGHT) })).toBe(60);
    expect(growth({ CHATQ_CONCURRENCY: '2000', CHATQ_HEAP_GROWTH_PERCENT: '0' })).toBe(0);
    expect(growth({ CHATQ_CONCURRENCY: '10', CHATQ_HEAP_GROWTH_PERCENT: '50' })).toBe(50);
  });

  it('advises bounding the young generation on Node 24 with many calls in flight, unless it is bounded', () => {
    const many = { nodeMajor: 24, concurrency: MANY_CALLS_IN_FLIGHT, flags: '' };
    expect(youngGenerationAdvice(many)).toContain('NODE_OPTIONS=--max-semi-space-size=16');
    expect(youngGenerationAdvice({ ...many, flags: '--max-semi-space-size=8' })).toBeUndefined();
    expect(youngGenerationAdvice({ ...many, flags: '--inspect --max-semi-space-size 16' })).toBeUndefined();
    expect(youngGenerationAdvice({ ...many, nodeMajor: 20 })).toBeUndefined();
    expect(youngGenerationAdvice({ ...many, concurrency: MANY_CALLS_IN_FLIGHT - 1 })).toBeUndefined();
  });
});
