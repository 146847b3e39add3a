import type { GradingOptions } from '../shared/batches/grading-metadata.js';
import type { BatchEstimate, EstimateSettings } from '../producer/batch-estimate.js';
import {
  DEFAULT_LATENCY_MS,
  estimateInput,
  estimateSettings,
  readEstimateHistory,
} from '../producer/estimate-input.js';
import { readFileContent, type StoredFile } from '../shared/files/file-store.js';
import type { Scope } from '../shared/scope.js';
import { findPrice, type PriceTable } from '../shared/usage/pricing.js';
import type { ApiDeps } from './api-deps.js';

export interface FileEstimate {
  estimate: BatchEstimate;
  badLines: number;
  settings: EstimateSettings;
  /** Where the call latency it assumes comes from. */
  latencyFrom: string;
}

/**
 * What an uploaded file will send, cost and take, as `chatq estimate` says it: the configured limits, the
 * concurrency of the workers running now, the latency of the calls on record (else 1 s). The API's dry run and the
 * dashboard's file page both show it.
 */
export async function estimateStoredFile(
  deps: ApiDeps,
  prices: PriceTable,
  scope: Scope,
  file: StoredFile,
  /** How its batch is graded (its metadata): its grading calls are estimated as they will be made. */
  grading: GradingOptions = {},
): Promise<FileEstimate> {
  const { redis, keys, config } = deps;
  const [history, workers] = await Promise.all([
    readEstimateHistory(redis, keys, scope),
    deps.queues.getWorkersCount(),
  ]);
  const settings = estimateSettings(config, {
    concurrency: config.concurrency * Math.max(1, workers),
    latencyMs: history.latencyMs ?? DEFAULT_LATENCY_MS,
    prices,
    history,
  });
  const { estimate, badLines } = await estimateInput(
    () => readFileContent(redis, keys, file.id),
    {
      source: file.filename,
      outputLimit: (model) => findPrice(prices, model)?.maxOutput,
      ...(config.defaultModel ? { defaultModel: config.defaultModel } : {}),
      ...grading,
    },
    settings,
    () => undefined,
  );
  const latencyFrom = history.latencyMs !== undefined ? 'recorded calls, on average' : 'a guess';
  return { estimate, badLines, settings, latencyFrom };
}
