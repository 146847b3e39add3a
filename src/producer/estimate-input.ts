import type { Readable } from 'node:stream';
import { judgeOf, type Expect } from '../shared/expectations.js';
import { verdictTokens } from '../shared/graders/judges.js';
import { gradingBody, judgeInputOf, judgeModelOf } from '../shared/grading-call.js';
import type { RequestDraft } from '../shared/request-record.js';
import { listUsage, sumOverTags } from '../shared/batches/read-store.js';
import type { Config } from '../shared/config.js';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import type { Scope } from '../shared/scope.js';
import type { PriceTable } from '../shared/usage/pricing.js';
import { BatchEstimator, type BatchEstimate, type EstimateSettings } from './batch-estimate.js';
import { type LineError, parseInput, type ParseOptions } from './parse-input.js';

/** The latency assumed when it is neither given nor on record (ms). */
export const DEFAULT_LATENCY_MS = 1_000;

/** An estimate's settings: the configured limits, with the concurrency, latency and history it is to assume. */
export function estimateSettings(
  config: Pick<Config, 'rpm' | 'tpm' | 'modelLimits' | 'defaultMaxTokens'>,
  assume: { concurrency: number; latencyMs: number; prices: PriceTable; history: EstimateHistory },
): EstimateSettings {
  return {
    rpm: config.rpm,
    tpm: config.tpm,
    modelLimits: config.modelLimits,
    concurrency: assume.concurrency,
    latencyMs: assume.latencyMs,
    defaultMaxTokens: config.defaultMaxTokens,
    headroom: 0.01,
    prices: assume.prices,
    observedCompletion: (model) => assume.history.completionByModel.get(model),
  };
}

/** What earlier batches tell an estimate: completion tokens per request by model, the average latency of calls. */
export interface EstimateHistory {
  completionByModel: Map<string, number>;
  latencyMs?: number;
}

/** Reads what Redis holds of earlier batches the scope may see, and of the calls workers recorded. */
export async function readEstimateHistory(redis: RedisClient, keys: RedisKeys, scope: Scope): Promise<EstimateHistory> {
  const rows = await listUsage(redis, keys, scope, 'model');
  const completionByModel = new Map(
    rows.filter((r) => r.succeeded > 0).map((r) => [r.key, r.completion_tokens / r.succeeded]),
  );
  const metrics = await sumOverTags(redis, keys, (k) => k.metrics);
  const calls = Object.entries(metrics)
    .filter(([field]) => field.startsWith('latency_bucket:'))
    .reduce((n, [, v]) => n + Number(v), 0);
  return calls > 0
    ? { completionByModel, latencyMs: Number(metrics.latency_sum_ms ?? 0) / calls }
    : { completionByModel };
}

/**
 * A request's grading call as an estimate counts it (expect.judge): its prompt less the reply (unknown until it
 * comes: each grading's prompt is short by about the reply's length), its verdict at the judge's bound; it follows the answer it judges (a lane of its own, no user).
 */
function gradingEstimate(d: RequestDraft): RequestDraft | undefined {
  const expect = (d.expect ?? null) as Expect | null;
  const judge = judgeOf(expect);
  if (!judge) return undefined;
  const messages = (d.body.messages ?? []) as Record<string, unknown>[];
  const model = judgeModelOf(judge, undefined, d.model);
  const body = gradingBody(judge, judgeInputOf(expect, judge, messages, ''), model);
  return {
    customId: `${d.customId}#judge`,
    userid: `judge:${d.customId}`,
    model,
    // Its verdict at the judge's bound (Mem0's judge sets none: chatq's).
    body: { ...body, max_tokens: verdictTokens(judge.grader ?? 'chatq') },
    line: d.line,
    onFailure: 'continue',
    history: 'memory',
  };
}

/**
 * Estimates an input read the way an import reads it (its bad lines are left out, as an import skips them, and
 * handed to `onBadLine`), its grading calls (expect.judge) with it: a memory benchmark's ingestion, questions and
 * judging. Nothing is stored.
 */
export async function estimateInput(
  open: () => Readable,
  opts: ParseOptions,
  settings: EstimateSettings,
  onBadLine: (error: LineError) => void,
): Promise<{ estimate: BatchEstimate; badLines: number }> {
  const estimator = new BatchEstimator(settings);
  let badLines = 0;
  for await (const parsed of parseInput(open(), opts)) {
    if (parsed.ok)
      for (const d of parsed.drafts) {
        estimator.add(d);
        const grading = gradingEstimate(d);
        if (grading) estimator.add(grading, d.userid);
      }
    else {
      badLines += 1;
      onBadLine(parsed.error);
    }
  }
  return { estimate: estimator.result(), badLines };
}
