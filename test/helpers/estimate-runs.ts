/** The estimate's cases, each estimated and then run for real: shared by test/estimate.test.ts and bench/estimate.ts. */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { BatchEstimate } from '../../src/producer/batch-estimate.js';
import { getUsage } from '../../src/shared/batches/read-store.js';
import { startSimulator } from '../../src/simulator/simulator-server.js';
import { startWorker } from './in-process-worker.js';
import { createTestEnv, runCli, waitForBatch } from './test-env.js';

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

export interface Case {
  name: string;
  binds: BatchEstimate['binds'];
  lines: string[];
  latencyMs: number;
  limits: { rpm?: number; tpm?: number; concurrency: number };
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
export const CASES: Case[] = [
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

/**
 * Estimates a case with the CLI (and as a dry run), then runs it with the same limits and latency on a prefix, a
 * simulator and a worker of its own: the estimate, the dry run, and what happened.
 */
export async function estimateAndRun(c: Case, dir: string) {
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
    if (cli.code !== 0) throw new Error(`chatq estimate: ${cli.stderr}`);
    const estimate = JSON.parse(cli.stdout) as BatchEstimate;
    const dry = await runCli(['enqueue', file, '--dry-run', '--json'], env.env(limits));
    const dryRun = { code: dry.code, stderr: dry.stderr, out: dry.code === 0 ? JSON.parse(dry.stdout) : undefined };
    const batchesAfterDryRun = await env.redis.zcard(env.keys.batches);

    const pool = await startWorker(env.config(limits), sim.url);
    try {
      const submitted = await env.submit(c.lines);
      const batch = await waitForBatch(env, submitted.batchId, 60_000);
      const firstCall = Math.min(...Object.values(sim.stats().arrivalsFrom).flat());
      const usage = await getUsage(env.redis, env.keys, 'default', 'batch', submitted.batchId);
      return {
        estimate,
        dryRun,
        batchesAfterDryRun,
        batch,
        realMs: batch.completedAt! - firstCall,
        realCostNano: usage.cost_nano,
      };
    } finally {
      await pool.close();
    }
  } finally {
    await sim.close();
    await env.cleanup();
  }
}
