import { setFlagsFromString } from 'node:v8';

/**
 * Holds how far the process's JavaScript heap grows past what its last full collection kept (Config.heapGrowthPercent;
 * 0 leaves it to V8). Process-wide, so the commands that run a worker pool set it (`chatq worker`, `chatq run`).
 * bench/high-concurrency (2,000 calls in flight): held at 60 %, peak RSS about two thirds of V8's own (Config).
 */
export function holdHeapGrowth(percent: number): void {
  if (percent > 0) setFlagsFromString(`--heap-growing-percent=${percent}`);
}
