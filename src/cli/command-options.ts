import { type Command, Option } from 'commander';

/** The option sets several commands share, each as flags over its environment variables where it has one. */

/** Judged expectations and memory benchmark files: the judge, its prompt, the subset and the grader. */
export const evalOptions = (cmd: Command) =>
  cmd
    .option('--judge-model <model>', 'judge model of "judge" expectations that name none (or CHATQ_JUDGE_MODEL)')
    .option(
      '--judge-prompt <file>',
      'a judge prompt template for every "judge" expectation ({{question}} {{answer}} {{rubric}} {{reply}})',
    )
    .option('--limit <n>', 'a memory benchmark file (LongMemEval, LoCoMo): its first N instances (samples)')
    .option(
      '--types <list>',
      'a memory benchmark file: only these question types, comma-separated (e.g. temporal-reasoning,abstention)',
    )
    .addOption(
      new Option(
        '--grader <name>',
        "a memory benchmark file's judge: the published one by default (LongMemEval's, or Mem0's J for LoCoMo), chatq's own, or none",
      ).choices(['longmemeval', 'mem0', 'chatq', 'none']),
    )
    .option('--judge-adversarial', "a LoCoMo file: judge category 5 too (Mem0's J leaves it out)");

export const submitOptions = (cmd: Command) =>
  evalOptions(cmd)
    .option('--model <model>', 'model for lines that name none (or CHATQ_MODEL)')
    .option('--user <name>', 'user for lines with neither "userid" nor "user" (a stable UUID v4 is derived)')
    .option('--user-salt <salt>', 'derive userids with this salt: a fresh set of users (fresh memory) per salt')
    .option('--strict', 'reject the whole file if any line is bad')
    .option('--name <name>', 'batch name (default: the file name)')
    .option(
      '--max-cost-usd <usd>',
      'budget: no call is sent that could take a batch past this cost; the rest is cancelled (budget_exceeded)',
    )
    .option(
      '--batch <id>',
      'add to this existing batch the custom_ids it lacks (re-run the same file after a failed import)',
    )
    .option(
      '--completion-window <duration>',
      'what is not done within this time (e.g. 24h, 90m, 7d) ends "expired" (batch_expired); default: no limit',
    )
    .option(
      '--turn-gap-ms <ms>',
      "least time between the end of a user's call and the start of their next (lets the memory catch up); script lines may set turn_gap_ms",
    )
    .addOption(
      new Option(
        '--on-import-error <what>',
        'if the import cannot finish: cancel or keep the requests already enqueued',
      )
        .choices(['cancel', 'keep'])
        .default('cancel'),
    )
    .option('--project <name>', 'the project the batch belongs to (default: "default")')
    .option('--dry-run', 'print what each file would send, cost and take (as `chatq estimate`); enqueue nothing')
    .option('--json', 'with --dry-run: one JSON line per file');

/** Limits and retry settings, as flags over their environment variables (shown at worker start). */
export const limitOptions = (cmd: Command) =>
  cmd
    .option('-c, --concurrency <n>', 'calls in flight in this process (CHATQ_CONCURRENCY)')
    .option('--rpm <n>', 'requests per minute, all workers together (CHATQ_RPM)')
    .option('--tpm <n>', 'tokens per minute, all workers together (CHATQ_TPM)')
    .option('--model-limits <json>', 'per-model limits, e.g. \'{"gpt-4o":{"rpm":100}}\' (CHATQ_MODEL_LIMITS)')
    .option('--max-attempts <n>', 'attempts per request before it fails (CHATQ_MAX_ATTEMPTS)')
    .option('--timeout-ms <ms>', 'timeout of one call (CHATQ_TIMEOUT_MS)');
