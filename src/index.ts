/** chatq as a library: `import { Chatq } from 'chatq'`. The CLI (`chatq`) is built on the same calls. */
export { Chatq } from './library/chatq.js';
export * from './library/errors.js';
export type * from './library/types.js';
export type { OutputLine } from './shared/batches/batch-output.js';
export type { UsageRow } from './shared/batches/read-store.js';
export type { BenchmarkReport, LocomoReport, LongMemEvalReport } from './shared/reports/benchmark-report.js';
