import type { RequestDraft } from '../shared/request-record.js';
import type { BenchmarkContext } from './benchmarks/benchmark-calls.js';
import { locomoDrafts } from './benchmarks/locomo-input.js';
import { longMemEvalDrafts } from './benchmarks/longmemeval-input.js';

/**
 * Memory benchmarks as input, recognised by their shape (an item of a JSON array, or a line): LongMemEval instances
 * (benchmarks/longmemeval-input.ts) and LoCoMo samples (benchmarks/locomo-input.ts). Each item is one fresh user:
 * its sessions, then its questions (benchmarks/benchmark-calls.ts).
 */

export type { BenchmarkContext } from './benchmarks/benchmark-calls.js';

export type BenchmarkFormat = 'longmemeval' | 'locomo';

/** Which benchmark an item is, by its shape; undefined: not one (a chatq line). */
export function benchmarkFormat(obj: Record<string, unknown>): BenchmarkFormat | undefined {
  if ('haystack_sessions' in obj && 'question_id' in obj) return 'longmemeval';
  if ('sample_id' in obj && 'conversation' in obj && 'qa' in obj) return 'locomo';
  return undefined;
}

/** An item's calls. */
export const benchmarkDrafts = (
  format: BenchmarkFormat,
  obj: Record<string, unknown>,
  c: BenchmarkContext,
): RequestDraft[] => (format === 'longmemeval' ? longMemEvalDrafts(obj, c) : locomoDrafts(obj, c));
