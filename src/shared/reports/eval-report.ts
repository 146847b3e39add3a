import type { RedisClient } from '../redis/redis.js';
import { replyText, verdictOfGrade, type ExpectationFailure } from '../expectations.js';
import { getUsages } from '../batches/read-store.js';
import type { RedisKeys } from '../keys.js';
import { readBatchRequests } from '../batches/read-store.js';
import type { StoredRequest } from '../request-record.js';
import type { BatchRecord } from '../batch-record.js';

export interface EvalFailure {
  customId: string;
  failures: ExpectationFailure[];
  reply: string | null;
}

/** Passed, failed and ungraded requests, and the pass rate of those graded (ungraded ones are neither). */
export interface PassCounts {
  passed: number;
  failed: number;
  ungraded: number;
  /** passed / (passed + failed); null when none was graded. */
  passRate: number | null;
}

export interface EvalSummary extends PassCounts {
  batchId: string;
  /** Requests with expectations. */
  graded: number;
  /** The same counts by tag (a request counts under each of its tags). */
  byTag: Record<string, PassCounts>;
  /** What the batch spent answering and grading (nano-USD). */
  costNano: { answers: number; grading: number };
  failures: EvalFailure[];
}

const noCounts = (): PassCounts => ({ passed: 0, failed: 0, ungraded: 0, passRate: null });

function count(c: PassCounts, verdict: 'pass' | 'fail' | 'ungraded'): void {
  if (verdict === 'pass') c.passed += 1;
  else if (verdict === 'fail') c.failed += 1;
  else c.ungraded += 1;
  c.passRate = c.passed + c.failed ? c.passed / (c.passed + c.failed) : null;
}

/**
 * Pass rates of a batch's graded requests, overall and by tag, what failed (with the reply that failed it), and what
 * answering and grading cost.
 */
export async function evaluateBatch(redis: RedisClient, keys: RedisKeys, batch: BatchRecord): Promise<EvalSummary> {
  const [usage] = await getUsages(redis, keys, [{ project: batch.project, dim: 'batch', key: batch.id }]);
  const summary: EvalSummary = {
    batchId: batch.id,
    graded: 0,
    ...noCounts(),
    byTag: {},
    costNano: { answers: usage!.cost_nano - usage!.grading_cost_nano, grading: usage!.grading_cost_nano },
    failures: [],
  };
  for await (const r of readBatchRequests(redis, keys, batch.id)) {
    if (!r.expect) continue;
    // A request with expectations that never ran (skipped, cancelled) fails them; one scored alone counts in none.
    const failures = r.grade?.failures ?? [
      { kind: 'reply', expected: 'a reply', message: `the request was ${r.status}` },
    ];
    const verdict = r.grade ? verdictOfGrade(r.grade) : 'fail';
    if (verdict === undefined) continue;
    summary.graded += 1;
    count(summary, verdict);
    for (const tag of r.tags) count((summary.byTag[tag] ??= noCounts()), verdict);
    if (verdict === 'fail') summary.failures.push({ customId: r.customId, failures, reply: replyText(r.response) });
  }
  return summary;
}

/** `chatq eval --json`'s shape (the issue's contract): snake_case, costs in USD. */
export function evalJson(s: EvalSummary) {
  const counts = (c: PassCounts) => ({
    passed: c.passed,
    failed: c.failed,
    ungraded: c.ungraded,
    pass_rate: c.passRate,
  });
  return {
    batch: s.batchId,
    ...counts(s),
    by_tag: Object.fromEntries(Object.entries(s.byTag).map(([tag, c]) => [tag, counts(c)])),
    cost_usd: { answers: s.costNano.answers / 1e9, grading: s.costNano.grading / 1e9 },
    failures: s.failures.map((f) => ({ custom_id: f.customId, failures: f.failures, reply: f.reply })),
  };
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
  /** Pass counts by tag. */
  byTag: Record<string, PassCounts>;
}

export interface Comparison {
  a: BatchFigures;
  b: BatchFigures;
  regressed: number;
  fixed: number;
  requests: ComparedRequest[];
}

const verdictOf = (r: StoredRequest | undefined): Verdict =>
  !r ? 'missing' : !r.expect ? 'ungraded' : r.grade ? (verdictOfGrade(r.grade) ?? 'ungraded') : 'fail';

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
  const all = noCounts();
  const byTag: Record<string, PassCounts> = {};
  for await (const r of readBatchRequests(redis, keys, batchId)) {
    byId.set(r.customId, r);
    tokens += r.usage.total_tokens;
    costNano += r.costNano ?? 0;
    if (r.latencyMs !== null && r.status === 'succeeded') latencies.push(r.latencyMs);
    if (r.expect) {
      const verdict = verdictOf(r) as 'pass' | 'fail' | 'ungraded';
      count(all, verdict);
      for (const tag of r.tags) count((byTag[tag] ??= noCounts()), verdict);
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
      passRate: all.passRate,
      byTag,
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
