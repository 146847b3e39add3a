import { readStore, sumUsage } from './read-helpers.js';
import { replyText } from '../shared/expectations.js';
import { formatUsd } from '../shared/usage/pricing.js';
import type { Simulator } from '../simulator/simulator-server.js';
import { WorkerPool } from '../worker/worker-pool.js';
import { holdHeapGrowth } from '../worker/heap-growth.js';
import { startWebhookService } from '../webhooks/webhook-service.js';
import { batchTable, benchmarkText, failuresTable, isFinished, tagTable, usageTable } from './batch-summary.js';
import { benchmarkRun } from '../shared/reports/benchmark-report.js';
import { benchmarkTable } from '../shared/reports/benchmark-table.js';
import {
  EXIT,
  limitOverrides,
  openContext,
  readConfig,
  requireRedis,
  type CliContext,
  type LimitFlags,
} from './cli-context.js';
import { expandInputs } from './input-files.js';
import { hasRedisServer, startLocalRedis, type LocalRedis } from './local-redis.js';
import { say } from './output.js';
import { ProgressBar } from './progress-bar.js';
import { submitFiles, type SubmitFlags } from './submit-files.js';
import { renderTable } from './table.js';
import { evaluateBatch } from '../shared/reports/eval-report.js';
import type { BatchRecord } from '../shared/batch-record.js';
import { redisAnswers } from '../shared/redis/redis-probe.js';
import { DEFAULT_REDIS_URL } from '../shared/config-env.js';
import type { Config } from '../shared/config.js';

export interface RunFlags extends SubmitFlags, LimitFlags {
  show?: string;
  latencyMs?: string;
}

/** Redis for `run`: the configured one, or (when nothing answers at the default URL) a private redis-server. */
async function ensureRedis(config: Config): Promise<{ config: Config; local?: LocalRedis }> {
  if (config.redisUrl === DEFAULT_REDIS_URL && !(await redisAnswers(config.redisUrl)) && hasRedisServer()) {
    const local = await startLocalRedis();
    say(
      `note: nothing answers at ${config.redisUrl}: started a private redis-server at ${local.url} (stops when this run ends; set REDIS_URL to keep results).`,
    );
    return { config: { ...config, redisUrl: local.url }, local };
  }
  await requireRedis(config);
  return { config };
}

async function printSamples(ctx: CliContext, batchIds: string[], perBatch: number): Promise<void> {
  if (perBatch <= 0) return;
  const rows: string[][] = [];
  for (const id of batchIds) {
    let n = 0;
    for await (const r of readStore.requests(ctx, id)) {
      const said = (r.body.messages as { role: string; content: unknown }[] | undefined)?.at(-1)?.content;
      const reply = replyText(r.response) ?? `(${r.error?.code ?? r.status})`;
      rows.push([r.customId, String(said ?? '').slice(0, 48), reply.slice(0, 70)]);
      if (++n >= perBatch) break;
    }
  }
  say(`\n${renderTable(['custom_id', 'sent', 'reply'], rows)}`);
}

/** A memory benchmark run's paper table; the pass rates by tag of other batches whose graded requests carry tags. */
async function printTagTables(ctx: CliContext, batches: BatchRecord[]): Promise<void> {
  for (const b of batches) {
    const run = await benchmarkRun(ctx.redis, ctx.keys, b, ctx.config.resultTtlS);
    if (run) {
      say(`\n${b.input} (chatq eval ${b.id}):\n${benchmarkText(benchmarkTable(run.report))}`);
      continue;
    }
    if (b.evalPass + b.evalFail + b.evalUngraded === 0) continue;
    const s = await evaluateBatch(ctx.redis, ctx.keys, b);
    if (Object.keys(s.byTag).length) say(`\n${b.input}: pass rate by tag (chatq eval ${b.id})\n${tagTable(s)}`);
  }
}

/** `chatq run FILE...`: enqueue, work with an embedded worker pool, show progress, then summarise. */
export async function runCommand(inputs: string[], flags: RunFlags): Promise<number> {
  const configured = readConfig({ ...limitOverrides(flags), LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' });
  if (flags.dryRun) {
    // Against the simulator (no upstream configured) its latency is known; else the estimate's own default applies.
    const { latencyMs, ...estimateFlags } = flags;
    const simulated = configured.baseUrl ? undefined : Number(latencyMs ?? 150);
    return (await import('./estimate-command.js')).estimateCommand(inputs, estimateFlags, simulated);
  }
  const files = expandInputs(inputs);
  const ensured = await ensureRedis(configured);
  let config = ensured.config;
  let simulator: Simulator | undefined;
  if (!config.baseUrl) {
    // Loaded only here: a run against a real upstream holds none of the simulator.
    const { startSimulator } = await import('../simulator/simulator-server.js');
    simulator = await startSimulator({
      latencyMs: Number(flags.latencyMs ?? 150),
      jitterMs: Number(flags.latencyMs ?? 150) / 2,
    });
    config = { ...config, baseUrl: simulator.url };
    say(
      `note: CHATQ_API_KEY is not set: calls go to the local simulator at ${simulator.url} (simulated replies with per-user memory, real token counts). Set CHATQ_API_KEY to call 302.AI.`,
    );
  }
  const ctx = await openContext(config);
  holdHeapGrowth(config, ctx.logger);
  const pool = await WorkerPool.start({ config, baseUrl: config.baseUrl!, logger: ctx.logger });
  const webhooks = startWebhookService(config, ctx.redis, ctx.keys, ctx.logger);
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    say('\ninterrupted: letting in-flight calls finish (Ctrl-C again to quit at once)...');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const submitted = await submitFiles(ctx, files, flags);
    const ids = submitted.map((s) => s.batchId);
    const bar = new ProgressBar();
    let state = await readStore.batchesWithUsage(ctx, ids);
    while (!interrupted && !state.every((s) => isFinished(s.batch))) {
      bar.update(readStore.figures(state));
      await new Promise((r) => setTimeout(r, 250));
      state = await readStore.batchesWithUsage(ctx, ids);
    }
    bar.finish(readStore.figures(state));
    await pool.close();
    // The batches' events go out before the run ends (what is not delivered in time, any worker delivers later).
    await webhooks.flush(5_000);
    state = await readStore.batchesWithUsage(ctx, ids);

    say(`\n${batchTable(state)}\n`);
    const total = sumUsage(state.map((s) => s.usage));
    say(
      usageTable([
        ...state.map((s) => ({ label: s.batch.id, usage: s.usage })),
        ...(state.length > 1 ? [{ label: 'total', usage: total }] : []),
      ]),
    );
    const failures = failuresTable(state.map((s) => s.batch));
    if (failures) say(`\n${failures}`);
    await printTagTables(
      ctx,
      state.map((s) => s.batch),
    );
    await printSamples(ctx, ids, Number(flags.show ?? 0));
    if (total.unpriced)
      say(
        `\nnote: ${total.unpriced} calls used models without a price: their cost is unknown, not $0 (add them with CHATQ_PRICES).`,
      );
    say(`\ntotal cost ${formatUsd(total.cost_nano)}. Results: chatq results ${ids[0]} [-o out.jsonl | --format csv]`);
    if (interrupted) {
      say('stopped before the end: the remaining requests stay queued; run "chatq worker" to finish them.');
      return EXIT.failures;
    }
    const bad = state.some((s) => s.batch.failed + s.batch.skipped + s.batch.rejectedLines > 0);
    return bad ? EXIT.failures : EXIT.ok;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.close();
    await webhooks.close();
    await ctx.close();
    await simulator?.close();
    await ensured.local?.stop();
  }
}
