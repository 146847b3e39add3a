import { formatLineError } from '../producer/parse-input.js';
import { StrictInputError, submitBatch, type SubmitResult } from '../producer/submit-batch.js';
import { UsageError, type CliContext } from './cli-context.js';
import { openInput } from './input-files.js';

export interface SubmitFlags {
  model?: string;
  user?: string;
  strict?: boolean;
  name?: string;
  userSalt?: string;
  maxCostUsd?: string;
}

const SHOWN_ERRORS = 20;

/** Submits each file as one batch and reports its bad lines on stderr (file:line: field: reason). */
export async function submitFiles(ctx: CliContext, files: string[], flags: SubmitFlags): Promise<SubmitResult[]> {
  const budget = flags.maxCostUsd === undefined ? undefined : Number(flags.maxCostUsd);
  if (budget !== undefined && !(budget > 0)) throw new UsageError(`--max-cost-usd: expected a positive number of USD, got "${flags.maxCostUsd}"`);
  const results: SubmitResult[] = [];
  for (const file of files) {
    const source = file === '-' ? 'stdin' : file;
    if (flags.strict && file === '-') throw new UsageError('--strict needs a file: stdin cannot be read twice');
    let result: SubmitResult;
    try {
      result = await submitBatch(
        { redis: ctx.redis, queue: ctx.queue, keys: ctx.keys, resultTtlS: ctx.config.resultTtlS },
        openInput(file),
        {
          source,
          strict: flags.strict ?? false,
          ...(flags.name ? { name: flags.name } : {}),
          ...(flags.model ?? ctx.config.defaultModel ? { defaultModel: flags.model ?? ctx.config.defaultModel } : {}),
          ...(flags.user ? { defaultUser: flags.user } : {}),
          ...(flags.userSalt ? { userSalt: flags.userSalt } : {}),
          ...(budget !== undefined ? { maxCostNano: Math.round(budget * 1e9) } : {}),
        },
      );
    } catch (err) {
      if (err instanceof StrictInputError) throw new UsageError(`${source}: ${err.message}`);
      throw err;
    }
    for (const e of result.errors.slice(0, SHOWN_ERRORS)) process.stderr.write(`bad line: ${formatLineError(e)}\n`);
    if (result.rejectedLines > SHOWN_ERRORS) {
      process.stderr.write(`... and ${result.rejectedLines - SHOWN_ERRORS} more bad lines (chatq status ${result.batchId} lists them)\n`);
    }
    process.stderr.write(`${source}: batch ${result.batchId}: ${result.acceptedRequests} requests from ${result.acceptedLines} lines${result.rejectedLines ? `, ${result.rejectedLines} bad lines skipped` : ''}\n`);
    results.push(result);
  }
  return results;
}
