import type { Grader } from '../shared/graders/judges.js';
import { ImportFailedError, ImportRefused, StrictInputError } from '../producer/import-errors.js';
import { formatLineError, type ParseOptions } from '../producer/parse-input.js';
import { submitBatch, type OnImportError, type SubmitResult } from '../producer/submit-batch.js';
import { cliScope, CommandFailed, producerContext, UsageError, type CliContext } from './cli-context.js';
import { parseCompletionWindow, type CompletionWindow } from '../shared/completion-window.js';
import { LIMITS } from '../shared/input-limits.js';
import { openInput } from './input-files.js';
import { say } from './output.js';
import { judgePromptFlag } from './judge-prompt-flag.js';

export interface SubmitFlags {
  model?: string;
  user?: string;
  strict?: boolean;
  name?: string;
  userSalt?: string;
  maxCostUsd?: string;
  batch?: string;
  onImportError?: string;
  project?: string;
  turnGapMs?: string;
  judgeModel?: string;
  judgePrompt?: string;
  limit?: string;
  types?: string;
  grader?: Grader | 'none';
  judgeAdversarial?: boolean;
  completionWindow?: string;
  /** Estimate instead (chatq estimate): nothing is enqueued. */
  dryRun?: boolean;
  json?: boolean;
}

const SHOWN_ERRORS = 20;

/** `--completion-window`, read: none when not given; a usage error (exit 2) when unreadable. */
export function completionWindowFlag(text: string | undefined): CompletionWindow | undefined {
  if (text === undefined) return undefined;
  const window = parseCompletionWindow(text);
  if ('error' in window) throw new UsageError(`--completion-window: ${window.error}`);
  return window;
}

/** An import that stopped: one line for people, exit 1 (the batch is "failed", or left for the reconciler). */
function importStopped(source: string, err: ImportFailedError, flags: SubmitFlags): CommandFailed {
  const kept = flags.onImportError === 'keep' ? 'kept (they run)' : 'cancelled';
  const states: Record<string, string> = {
    failed: `batch ${err.batchId} is failed: ${err.enqueued} requests were enqueued before it stopped and are ${kept}`,
    busy: `another process imports batch ${err.batchId} now; ${err.enqueued} requests were enqueued by this one`,
  };
  const state =
    states[err.status] ??
    `batch ${err.batchId} could not even be marked failed (Redis refused); ${err.enqueued} requests were enqueued`;
  return new CommandFailed(
    `${source}: ${err.message}. ${state}. To add the rest once the cause is fixed: chatq enqueue ${source} --batch ${err.batchId}`,
  );
}

/**
 * How a file's lines are read, from the flags `run`, `enqueue` and `estimate` share: the model and user for lines
 * that name none, the userid salt, the turn gap. A usage error (exit 2) when the turn gap is unreadable.
 */
export function lineOptions(
  flags: Pick<SubmitFlags, 'model' | 'user' | 'userSalt' | 'turnGapMs' | EvalFlag>,
  defaultModel: string | undefined,
): Pick<ParseOptions, 'defaultModel' | 'defaultUser' | 'userSalt' | 'turnGapMs' | EvalOption> {
  const gap = flags.turnGapMs === undefined ? undefined : Number(flags.turnGapMs);
  if (gap !== undefined && !(Number.isInteger(gap) && gap >= 0 && gap <= LIMITS.turnGapMs))
    throw new UsageError(`--turn-gap-ms: expected an integer from 0 to ${LIMITS.turnGapMs}, got "${flags.turnGapMs}"`);
  const model = flags.model ?? defaultModel;
  return {
    ...(model ? { defaultModel: model } : {}),
    ...(flags.user ? { defaultUser: flags.user } : {}),
    ...(flags.userSalt ? { userSalt: flags.userSalt } : {}),
    ...(gap ? { turnGapMs: gap } : {}),
    ...evalOptions(flags),
  };
}

type EvalFlag = 'judgeModel' | 'judgePrompt' | 'limit' | 'types' | 'grader' | 'judgeAdversarial';
type EvalOption = 'judgeModel' | 'judgePrompt' | 'benchmark';

/** --judge-model, --judge-prompt FILE (read now: bounded), and a memory benchmark's --limit, --types, --grader. */
function evalOptions(flags: Pick<SubmitFlags, EvalFlag>): Pick<ParseOptions, EvalOption> {
  const limit = flags.limit === undefined ? undefined : Number(flags.limit);
  if (limit !== undefined && !(Number.isInteger(limit) && limit >= 1))
    throw new UsageError(`--limit: expected a whole number of instances from 1, got "${flags.limit}"`);
  const types = flags.types
    ?.split(',')
    .map((t) => t.trim())
    .filter(Boolean);
  const prompt = judgePromptFlag(flags.judgePrompt);
  return {
    ...(flags.judgeModel ? { judgeModel: flags.judgeModel } : {}),
    ...(prompt !== undefined ? { judgePrompt: prompt } : {}),
    benchmark: {
      ...(limit !== undefined ? { limit } : {}),
      ...(types?.length ? { types } : {}),
      ...(flags.grader ? { grader: flags.grader } : {}),
      ...(flags.judgeAdversarial ? { judgeAdversarial: true } : {}),
    },
  };
}

/** Submits each file as one batch and reports its bad lines on stderr (file:line: field: reason). */
export async function submitFiles(ctx: CliContext, files: string[], flags: SubmitFlags): Promise<SubmitResult[]> {
  const budget = flags.maxCostUsd === undefined ? undefined : Number(flags.maxCostUsd);
  if (budget !== undefined && !(budget > 0))
    throw new UsageError(`--max-cost-usd: expected a positive number of USD, got "${flags.maxCostUsd}"`);
  if (flags.batch !== undefined && files.length !== 1)
    throw new UsageError('--batch adds to one batch: give exactly one input file');
  const onImportError = (flags.onImportError ?? 'cancel') as OnImportError;
  const lines = lineOptions(flags, ctx.config.defaultModel);
  const window = completionWindowFlag(flags.completionWindow);
  if (window && flags.batch !== undefined)
    throw new UsageError('--completion-window is set when a batch is made; --batch adds to one that has its own');
  const results: SubmitResult[] = [];
  for (const file of files) {
    const source = file === '-' ? 'stdin' : file;
    if (flags.strict && file === '-') throw new UsageError('--strict needs a file: stdin cannot be read twice');
    let result: SubmitResult;
    try {
      result = await submitBatch(producerContext(ctx), openInput(file), {
        source,
        strict: flags.strict ?? false,
        onImportError,
        ...(flags.project ? { project: cliScope(flags).project! } : {}),
        ...(flags.batch ? { batchId: flags.batch, resume: true } : {}),
        ...(flags.name ? { name: flags.name } : {}),
        ...lines,
        ...(window ? { completionWindow: window } : {}),
        ...(budget !== undefined ? { maxCostNano: Math.round(budget * 1e9) } : {}),
      });
    } catch (err) {
      if (err instanceof StrictInputError) throw new UsageError(`${source}: ${err.message}`);
      if (err instanceof ImportRefused) throw new UsageError(`${source}: ${err.message}`);
      if (err instanceof ImportFailedError) throw importStopped(source, err, flags);
      throw err;
    }
    for (const e of result.errors.slice(0, SHOWN_ERRORS)) say(`bad line: ${formatLineError(e)}`);
    if (result.rejectedLines > SHOWN_ERRORS)
      say(`... and ${result.rejectedLines - SHOWN_ERRORS} more bad lines (chatq status ${result.batchId} lists them)`);
    const held = result.alreadyPresent ? `, ${result.alreadyPresent} lines already in the batch` : '';
    say(
      `${source}: batch ${result.batchId}: ${result.acceptedRequests} requests from ${result.acceptedLines} lines${held}${result.rejectedLines ? `, ${result.rejectedLines} bad lines skipped` : ''}`,
    );
    results.push(result);
  }
  return results;
}
