import { setFlagsFromString } from 'node:v8';
import { MANY_CALLS_IN_FLIGHT } from '../shared/config.js';
import type { Logger } from '../shared/logger.js';

/**
 * Holds how far the process's JavaScript heap grows past what its last full collection kept (Config.heapGrowthPercent;
 * 0 leaves it to V8). Process-wide, so the commands that run a worker pool set it (`chatq worker`, `chatq run`).
 * bench/high-concurrency (2,000 calls in flight): held at 60 %, peak RSS about two thirds of V8's own (Config).
 * Says once (a warning) when the young generation is left to grow as Node 24 lets it (youngGenerationAdvice).
 */
export function holdHeapGrowth(config: { heapGrowthPercent: number; concurrency: number }, logger: Logger): void {
  if (config.heapGrowthPercent > 0) setFlagsFromString(`--heap-growing-percent=${config.heapGrowthPercent}`);
  const advice = youngGenerationAdvice({
    nodeMajor: Number(process.versions.node.split('.')[0]),
    concurrency: config.concurrency,
    flags: [...process.execArgv, process.env.NODE_OPTIONS ?? ''].join(' '),
  });
  if (advice) logger.warn(advice);
}

/**
 * Node 24 lets V8's young generation grow to 128 MB (Node 20: 32 MB), and only a flag at start bounds it: with many
 * calls in flight, what they allocate fills it (bench/high-concurrency, 2,000 in flight: 394 MB, 291 MB with
 * --max-semi-space-size=16). The advice to set it, when it is not set; else undefined.
 */
export function youngGenerationAdvice(p: {
  nodeMajor: number;
  concurrency: number;
  flags: string;
}): string | undefined {
  if (p.nodeMajor < 24 || p.concurrency < MANY_CALLS_IN_FLIGHT || /--max-semi-space-size\b/.test(p.flags)) return;
  return `Node ${p.nodeMajor} lets the young generation grow to 128 MB: with ${p.concurrency} calls in flight, start the worker with NODE_OPTIONS=--max-semi-space-size=16 to hold its memory (about 290 MB, not 390, at 2,000 in flight)`;
}
