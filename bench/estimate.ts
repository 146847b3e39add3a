/**
 * bench/estimate: how close `chatq estimate`'s duration comes to a real run, for an RPM-, a TPM-, a concurrency- and a
 * chain-bound batch (test/helpers/estimate-runs.ts: each estimated, then run on the simulator with the same limits
 * and latency). The baseline is the real run itself, in the same process. Prints one JSON line: per case the estimated
 * and real milliseconds, their ratio (median over the rounds), and the cost range with the real cost.
 *   npx tsx bench/estimate.ts [--rounds 3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CASES, estimateAndRun } from '../test/helpers/estimate-runs.js';
import { arg, median, round } from './bench-kit.js';

const ROUNDS = arg('rounds', 3);
const dir = mkdtempSync(join(tmpdir(), 'chatq-bench-estimate-'));
const ratios: number[][] = CASES.map(() => []);
let last: Awaited<ReturnType<typeof estimateAndRun>>[] = [];
for (let r = 0; r < ROUNDS; r++) {
  // One case at a time: the machine's two cores go to one run, as a user's estimate assumes.
  last = [];
  for (const c of CASES) last.push(await estimateAndRun(c, dir));
  for (const [i, run] of last.entries()) ratios[i]!.push(run.realMs / run.estimate.durationMs);
}
rmSync(dir, { recursive: true, force: true });
console.log(
  JSON.stringify({
    bench: 'estimate',
    rounds: ROUNDS,
    cases: CASES.map((c, i) => ({
      binds: c.binds,
      estimatedMs: last[i]!.estimate.durationMs,
      realMs: last[i]!.realMs,
      ratio: round(median(ratios[i]!), 2),
      ratios: ratios[i]!.map((x) => round(x, 2)),
      costNano: [last[i]!.estimate.costNano.low, last[i]!.realCostNano, last[i]!.estimate.costNano.high],
    })),
  }),
);
process.exit(0);
