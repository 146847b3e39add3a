import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { BatchEstimate } from '../src/producer/batch-estimate.js';
import { getUsage } from '../src/shared/batches/read-store.js';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { startWorker } from './helpers/in-process-worker.js';
import { createTestEnv, runCli, waitForBatch } from './helpers/test-env.js';

const USER = (i: number) => `3f0c1a52-3b0e-4b8e-9a51-${String(i).padStart(12, '0')}`;
/** A line whose reply the simulator cuts at max_tokens (it echoes the message, longer than 8 tokens). */
const line = (i: number, user: number, maxTokens?: number) =>
  JSON.stringify({
    custom_id: `c${i}`,
    userid: USER(user),
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: `please remember that item number ${i} is on the list for me` }],
    ...(maxTokens ? { max_tokens: maxTokens } : {}),
  });

interface Case {
  name: string;
  binds: BatchEstimate['binds'];
  lines: string[];
  latencyMs: number;
  limits: { rpm?: number; tpm?: number; concurrency: number };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const CASES: Case[] = [
  {
    name: 'RPM-bound: 30 users, 240 requests a minute',
    binds: 'rpm',
    lines: range(30).map((i) => line(i, i, 8)),
    latencyMs: 200,
    limits: { rpm: 240, concurrency: 20 },
  },
  {
    name: 'TPM-bound: 60 users, 7,000 tokens a minute',
    binds: 'tpm',
    lines: range(60).map((i) => line(i, i, 8)),
    latencyMs: 200,
    limits: { tpm: 7_000, concurrency: 20 },
  },
  // Calls of a second, as an LLM's are: chatq's own work around each call (its claim and result, tens of ms on a busy
  // machine, which the estimate does not count) stays a small part of each turn; and of the concurrency-bound one's
  // 15 rounds, the first call going alone (the credentials probe) is one.
  {
    name: 'concurrency-bound: 60 users, 4 calls in flight',
    binds: 'concurrency',
    lines: range(60).map((i) => line(i, i, 8)),
    latencyMs: 1_000,
    limits: { concurrency: 4 },
  },
  {
    name: "chain-bound: one user's 10 turns beside 8 one-turn users",
    binds: 'chain',
    lines: [...range(10).map((i) => line(i, 0, 8)), ...range(8).map((i) => line(100 + i, 100 + i, 8))],
    latencyMs: 1_000,
    limits: { concurrency: 10 },
  },
];

describe('chatq estimate brackets a real run on the simulator', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-estimate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Estimates a case with the CLI, then runs it (same limits, same latency): the estimate and what happened. */
  async function estimateAndRun(c: Case) {
    const env = await createTestEnv();
    const sim = await startSimulator({ latencyMs: c.latencyMs, jitterMs: 0, recordMessages: false });
    const file = join(dir, `${c.binds}.jsonl`);
    writeFileSync(file, `${c.lines.join('\n')}\n`);
    const limits = {
      CHATQ_CONCURRENCY: String(c.limits.concurrency),
      ...(c.limits.rpm ? { CHATQ_RPM: String(c.limits.rpm) } : {}),
      ...(c.limits.tpm ? { CHATQ_TPM: String(c.limits.tpm) } : {}),
    };
    try {
      const cli = await runCli(['estimate', file, '--json', '--latency-ms', String(c.latencyMs)], env.env(limits));
      expect(cli.code, cli.stderr).toBe(0);
      const estimate = JSON.parse(cli.stdout) as BatchEstimate;
      // A dry run says the same, and enqueues nothing.
      const dry = await runCli(['enqueue', file, '--dry-run', '--json'], env.env(limits));
      expect(dry.code, dry.stderr).toBe(0);
      expect(JSON.parse(dry.stdout)).toMatchObject({ requests: c.lines.length, binds: estimate.binds });
      expect(await env.redis.zcard(env.keys.batches)).toBe(0);

      const pool = await startWorker(env.config(limits), sim.url);
      try {
        const submitted = await env.submit(c.lines);
        const batch = await waitForBatch(env, submitted.batchId, 60_000);
        const firstCall = Math.min(...Object.values(sim.stats().arrivalsFrom).flat());
        const usage = await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId);
        return { estimate, batch, realMs: batch.completedAt! - firstCall, realCostNano: usage.cost_nano };
      } finally {
        await pool.close();
      }
    } finally {
      await sim.close();
      await env.cleanup();
    }
  }

  it('RPM-, TPM-, concurrency- and chain-bound batches: the real cost within the range, the real time within 25 %', async () => {
    // The four runs side by side: each has its own prefix (its own limits), simulator and worker.
    const runs = await Promise.all(CASES.map((c) => estimateAndRun(c)));
    const report = runs.map((r, i) => ({
      case: CASES[i]!.binds,
      estimatedMs: r.estimate.durationMs,
      realMs: r.realMs,
      ratio: Math.round((r.realMs / r.estimate.durationMs) * 100) / 100,
      cost: [r.estimate.costNano.low, r.realCostNano, r.estimate.costNano.high],
    }));
    console.log(JSON.stringify({ estimate: report }));
    for (const [i, r] of runs.entries()) {
      const c = CASES[i]!;
      expect(r.batch.status, c.name).toBe('completed');
      expect(r.estimate.binds, c.name).toBe(c.binds);
      expect(r.estimate.requests, c.name).toBe(c.lines.length);
      expect(r.realCostNano, c.name).toBeGreaterThanOrEqual(r.estimate.costNano.low);
      expect(r.realCostNano, c.name).toBeLessThanOrEqual(r.estimate.costNano.high);
      expect(r.realMs / r.estimate.durationMs, c.name).toBeGreaterThanOrEqual(0.75);
      expect(r.realMs / r.estimate.durationMs, c.name).toBeLessThanOrEqual(1.25);
    }
  }, 120_000);
});
