import type { RedisClient } from '../redis/redis.js';
import { replyText, type ExpectationFailure } from '../expectations.js';
import type { RedisKeys } from '../keys.js';
import { readBatchRequests } from '../batches/read-store.js';
import type { StoredRequest } from '../request-record.js';

export interface EvalFailure {
  customId: string;
  failures: ExpectationFailure[];
  reply: string | null;
}

export interface EvalSummary {
  batchId: string;
  graded: number;
  passed: number;
  failed: number;
  /** passed / graded; null when nothing in the batch had expectations. */
  passRate: number | null;
  failures: EvalFailure[];
}

/** Pass rate of a batch's graded requests, and what failed, with the reply that failed it. */
export async function evaluateBatch(redis: RedisClient, keys: RedisKeys, batchId: string): Promise<EvalSummary> {
  const summary: EvalSummary = { batchId, graded: 0, passed: 0, failed: 0, passRate: null, failures: [] };
  for await (const r of readBatchRequests(redis, keys, batchId)) {
    if (!r.expect) continue;
    summary.graded += 1;
    // A request with expectations that never ran (skipped, cancelled) fails them.
    const failures = r.grade?.failures ?? [
      { kind: 'reply', expected: 'a reply', message: `the request was ${r.status}` },
    ];
    if (r.grade?.pass) summary.passed += 1;
    else {
      summary.failed += 1;
      summary.failures.push({ customId: r.customId, failures, reply: replyText(r.response) });
    }
  }
  summary.passRate = summary.graded ? summary.passed / summary.graded : null;
  return summary;
}

export type Verdict = 'pass' | 'fail' | 'ungraded' | 'missing';

export interface ComparedRequest {
  customId: string;
  a: Verdict;
  b: Verdict;
  change: 'regressed' | 'fixed' | 'same' | 'added' | 'removed';
  tokensA: number | null;
  tokensB: number | null;
  costNanoA: number | null;
  costNanoB: number | null;
}

export interface BatchFigures {
  tokens: number;
  costNano: number;
  p50LatencyMs: number | null;
  p95LatencyMs: number | null;
  passRate: number | null;
}

export interface Comparison {
  a: BatchFigures;
  b: BatchFigures;
  regressed: number;
  fixed: number;
  requests: ComparedRequest[];
}

const verdictOf = (r: StoredRequest | undefined): Verdict =>
  !r ? 'missing' : !r.expect ? 'ungraded' : r.grade?.pass ? 'pass' : 'fail';

export function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function collect(
  redis: RedisClient,
  keys: RedisKeys,
  batchId: string,
): Promise<{ byId: Map<string, StoredRequest>; figures: BatchFigures }> {
  const byId = new Map<string, StoredRequest>();
  const latencies: number[] = [];
  let tokens = 0;
  let costNano = 0;
  let graded = 0;
  let passed = 0;
  for await (const r of readBatchRequests(redis, keys, batchId)) {
    byId.set(r.customId, r);
    tokens += r.usage.total_tokens;
    costNano += r.costNano ?? 0;
    if (r.latencyMs !== null && r.status === 'succeeded') latencies.push(r.latencyMs);
    if (r.expect) {
      graded += 1;
      if (r.grade?.pass) passed += 1;
    }
  }
  latencies.sort((x, y) => x - y);
  return {
    byId,
    figures: {
      tokens,
      costNano,
      p50LatencyMs: percentile(latencies, 50),
      p95LatencyMs: percentile(latencies, 95),
      passRate: graded ? passed / graded : null,
    },
  };
}

/** Per custom_id, what went from pass to fail (regressed) and back (fixed), and the change in tokens, cost, latency. */
export async function compareBatches(
  redis: RedisClient,
  keys: RedisKeys,
  batchA: string,
  batchB: string,
): Promise<Comparison> {
  const [a, b] = await Promise.all([collect(redis, keys, batchA), collect(redis, keys, batchB)]);
  const ids = [...new Set([...a.byId.keys(), ...b.byId.keys()])];
  const requests = ids.map((customId): ComparedRequest => {
    const ra = a.byId.get(customId);
    const rb = b.byId.get(customId);
    const va = verdictOf(ra);
    const vb = verdictOf(rb);
    const change =
      va === 'missing'
        ? 'added'
        : vb === 'missing'
          ? 'removed'
          : va === 'pass' && vb === 'fail'
            ? 'regressed'
            : va === 'fail' && vb === 'pass'
              ? 'fixed'
              : 'same';
    return {
      customId,
      a: va,
      b: vb,
      change,
      tokensA: ra ? ra.usage.total_tokens : null,
      tokensB: rb ? rb.usage.total_tokens : null,
      costNanoA: ra ? ra.costNano : null,
      costNanoB: rb ? rb.costNano : null,
    };
  });
  return {
    a: a.figures,
    b: b.figures,
    regressed: requests.filter((r) => r.change === 'regressed').length,
    fixed: requests.filter((r) => r.change === 'fixed').length,
    requests,
  };
}
