import type { BatchEstimate, EstimateSettings } from '../producer/batch-estimate.js';
import {
  DEFAULT_LATENCY_MS,
  type EstimateHistory,
  estimateInput,
  estimateSettings,
  readEstimateHistory,
} from '../producer/estimate-input.js';
import { estimateRows } from '../producer/estimate-rows.js';
import { formatLineError } from '../producer/parse-input.js';
import type { Config } from '../shared/config.js';
import { redisKeys } from '../shared/keys.js';
import { connectRedis } from '../shared/redis/redis.js';
import { probeRedis } from '../shared/redis/redis-probe.js';
import type { Scope } from '../shared/scope.js';
import { findPrice, loadPrices } from '../shared/usage/pricing.js';
import { cliScope, EXIT, type LimitFlags, limitOverrides, readConfig, UsageError } from './cli-context.js';
import { expandInputs, openInput } from './input-files.js';
import { out, say } from './output.js';
import { lineOptions, type SubmitFlags } from './submit-files.js';
import { renderTable } from './table.js';

export interface EstimateFlags
  extends LimitFlags,
    Pick<
      SubmitFlags,
      | 'model'
      | 'user'
      | 'userSalt'
      | 'turnGapMs'
      | 'project'
      | 'judgeModel'
      | 'judgePrompt'
      | 'limit'
      | 'types'
      | 'grader'
      | 'judgeAdversarial'
    > {
  workers?: string;
  latencyMs?: string;
  json?: boolean;
}

const SHOWN_ERRORS = 20;

/** What Redis holds of earlier batches, if Redis answers (an estimate needs no Redis): or why there is none. */
async function readHistory(config: Config, scope: Scope): Promise<EstimateHistory & { missing?: string }> {
  const probe = await probeRedis(config, 1_000);
  if (!probe.ok) return { completionByModel: new Map(), missing: `no history: ${probe.reason}` };
  const redis = connectRedis(config, 'chatq-estimate', { failFast: true });
  try {
    return await readEstimateHistory(redis, redisKeys(config.prefix, config.shards), scope);
  } finally {
    redis.disconnect();
  }
}

const positiveInt = (flag: string, text: string, max = 1_000_000_000) => {
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1 || n > max)
    throw new UsageError(`${flag}: expected an integer from 1 to ${max}, got "${text}"`);
  return n;
};

/** One file's estimate as a table of what it will take, and what the estimate assumed. */
const estimateTable = (file: string, e: BatchEstimate, s: EstimateSettings, latencyFrom: string): string =>
  renderTable(['estimate', file], estimateRows(e, s, latencyFrom));

/**
 * `chatq estimate FILE...` (and `--dry-run` on `run` and `enqueue`): what each file will send, cost and take, read
 * the way an import reads it; nothing is enqueued. `latencyMs` is the latency to assume when no --latency-ms is given
 * (`run --dry-run` against the simulator: its latency).
 */
export async function estimateCommand(inputs: string[], flags: EstimateFlags, latencyMs?: number): Promise<number> {
  const files = expandInputs(inputs);
  const config = readConfig(limitOverrides(flags));
  const workers = positiveInt('--workers', flags.workers ?? '1', 10_000);
  const lines = lineOptions(flags, config.defaultModel);
  const history = await readHistory(config, cliScope(flags));
  if (history.missing) say(`note: ${history.missing}; the estimate uses max_tokens for replies.`);
  const given = flags.latencyMs === undefined ? latencyMs : positiveInt('--latency-ms', flags.latencyMs, 3_600_000);
  const assumedLatency = given ?? history.latencyMs ?? DEFAULT_LATENCY_MS;
  const latencyFrom =
    given !== undefined ? 'given' : history.latencyMs !== undefined ? 'recorded calls, on average' : 'a guess';
  const prices = loadPrices(config.pricesFile);
  const settings = estimateSettings(config, {
    concurrency: config.concurrency * workers,
    latencyMs: assumedLatency,
    prices,
    history,
  });
  let bad = 0;
  for (const file of files) {
    const source = file === '-' ? 'stdin' : file;
    let shown = 0;
    const { estimate, badLines } = await estimateInput(
      openInput(file),
      {
        source,
        outputLimit: (model) => findPrice(prices, model)?.maxOutput,
        ...lines,
      },
      settings,
      (error) => {
        if (shown++ < SHOWN_ERRORS) say(formatLineError(error));
      },
    );
    bad += badLines;
    if (flags.json) out(JSON.stringify({ file: source, ...estimate, latencyMs: assumedLatency }));
    else out(`${file === files[0] ? '' : '\n'}${estimateTable(source, estimate, settings, latencyFrom)}`);
  }
  if (bad > 0) say(`${bad} bad line(s) left out of the estimate (an import would skip them too).`);
  return bad > 0 ? EXIT.failures : EXIT.ok;
}
