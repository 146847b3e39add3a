import { formatCount, formatDuration } from '../shared/display-format.js';
import { formatUsd } from '../shared/usage/pricing.js';
import type { BatchEstimate, EstimateSettings } from './batch-estimate.js';

/**
 * An estimate as rows of what it will take and what it assumed (`latencyFrom`: where the call latency came from),
 * the same in `chatq estimate` and on the dashboard's file page.
 */
export function estimateRows(e: BatchEstimate, s: EstimateSettings, latencyFrom: string): [string, string][] {
  const time = (ms: number) => (ms < 10_000 ? `${(ms / 1000).toFixed(1)}s` : formatDuration(ms));
  const limit = (n: number) => (n > 0 ? formatCount(n) : 'no limit');
  const usd = (nano: number) => formatUsd(nano);
  const bounds = (Object.entries(e.boundsMs) as [string, number][])
    .map(([k, ms]) => `${k} ${ms > 0 ? time(ms) : '-'}`)
    .join(' · ');
  return [
    ['requests', `${formatCount(e.requests)} (${formatCount(e.users)} users)`],
    [
      'longest chain',
      `${formatCount(e.longestChain.requests)} turns of one user${e.longestChain.gapMs ? `, ${time(e.longestChain.gapMs)} of turn gaps` : ''}`,
    ],
    ['prompt tokens', formatCount(e.promptTokens)],
    [
      'completion tokens',
      `${formatCount(e.completionTokens.expected)} expected, ${formatCount(e.completionTokens.atMost)} at most`,
    ],
    [
      'cost',
      `${usd(e.costNano.low)} - ${usd(e.costNano.high)} (expected ${usd(e.costNano.expected)})${e.unpriced ? `; ${formatCount(e.unpriced)} requests of unpriced models not counted` : ''}`,
    ],
    ['time', `${time(e.durationMs)}, bound by ${e.binds}`],
    ['each bound alone', bounds],
    [
      'assumed',
      `${Math.round(s.latencyMs)} ms a call (${latencyFrom}), ${formatCount(s.concurrency)} in flight, rpm ${limit(s.rpm)}, tpm ${limit(s.tpm)}`,
    ],
  ];
}
