#!/usr/bin/env node
import { Command, Option } from 'commander';
import { evalOptions, limitOptions, submitOptions } from './cli/command-options.js';
import { CommandFailed, EXIT, UsageError } from './cli/cli-context.js';
import { ChatqError } from './library/errors.js';
import { exitOnWriteError, say } from './cli/output.js';

// Each command loads only what it needs (a worker neither the API server nor the simulator): fast start, small memory.
const batchCommands = () => import('./cli/batch-commands.js');
const evalCommands = () => import('./cli/eval-commands.js');

/** Commands that import or call: traced when OTEL_EXPORTER_OTLP_ENDPOINT is set (the SDK is loaded only then). */
const TRACED = new Set(['run', 'enqueue', 'worker', 'serve']);
let tracing: typeof import('./shared/tracing.js') | undefined;

/** Exits once the spans still buffered are sent. */
async function exit(code: number): Promise<never> {
  await tracing?.stopTracing();
  process.exit(code);
}

const program = new Command('chatq')
  .description('Run batches of memory-chat conversations (302.AI /v1/chat/completions + userid) through a Redis queue.')
  .showHelpAfterError()
  .exitOverride()
  .hook('preAction', async (_program, action) => {
    if (!TRACED.has(action.name())) return;
    tracing = await import('./shared/tracing.js');
    await tracing.startTracing(action.name()).catch((err: unknown) => {
      throw tracing && err instanceof tracing.TracingConfigError ? new UsageError(err.message) : err;
    });
  });

limitOptions(
  submitOptions(program.command('run').argument('<inputs...>', 'JSONL files or directories of them ("-" for stdin)')),
)
  .description('enqueue, process with an embedded worker pool, show progress, then print a summary and costs')
  .option('--show <n>', 'print the first N replies of each batch', '0')
  .option('--latency-ms <ms>', 'simulator latency when no CHATQ_API_KEY is set', '150')
  .action(async (inputs: string[], flags) =>
    exit(await (await import('./cli/run-command.js')).runCommand(inputs, flags)),
  );

limitOptions(
  evalOptions(
    program.command('estimate').argument('<inputs...>', 'JSONL files or directories of them ("-" for stdin)'),
  ),
)
  .description(
    'what each file will send, cost and take under the limits (requests, users, tokens, cost range, time and what bounds it); nothing is enqueued',
  )
  .option('--model <model>', 'model for lines that name none (or CHATQ_MODEL)')
  .option('--user <name>', 'user for lines with neither "userid" nor "user"')
  .option('--user-salt <salt>', 'derive userids with this salt')
  .option('--turn-gap-ms <ms>', "least time between the end of a user's call and the start of their next")
  .option('--project <name>', 'read earlier batches of this project only (completion tokens by model)')
  .option('--workers <n>', 'worker processes that will share the work (each with --concurrency calls in flight)', '1')
  .option('--latency-ms <ms>', "one call's latency (default: the average of the calls on record, else 1,000)")
  .option('--json', 'print one JSON line per file')
  .action(async (inputs: string[], flags) =>
    exit(await (await import('./cli/estimate-command.js')).estimateCommand(inputs, flags)),
  );

submitOptions(program.command('enqueue').argument('<inputs...>', 'JSONL files or directories of them ("-" for stdin)'))
  .description('validate and enqueue; prints one batch id per file (workers do the calls)')
  .action(async (inputs: string[], flags) => exit(await (await batchCommands()).enqueueCommand(inputs, flags)));

limitOptions(program.command('worker'))
  .description('process queued requests until SIGTERM/SIGINT (run as many as you like, anywhere)')
  .option('--shards <list>', 'with CHATQ_SHARDS > 1: the shards this worker consumes, e.g. 0,1,2 (default: every one)')
  .option('--health-port <port>', 'answer GET /healthz (alive) and /readyz (can take work) on this port')
  .option('--health-host <host>', 'the interface of --health-port', '127.0.0.1')
  .action(async (flags) => exit(await (await import('./cli/worker-command.js')).workerCommand(flags)));

program
  .command('status')
  .argument('<id>', 'batch id or request id')
  .option('--json', 'print JSON')
  .description('counters, usage and failures of a batch, or the attempts of one request')
  .action(async (id: string, flags) => exit(await (await batchCommands()).statusCommand(id, flags)));

program
  .command('results')
  .argument('<batch>', 'batch id')
  .option('-o, --output <file>', 'write to a file instead of stdout')
  .addOption(
    new Option(
      '--format <format>',
      "output format; a memory benchmark run's answers as its official scorer reads them: longmemeval (evaluate_qa.py's output lines), locomo (its evaluate_qa.py's output file)",
    )
      .choices(['jsonl', 'csv', 'longmemeval', 'locomo'])
      .default('jsonl'),
  )
  .description('OpenAI Batch output lines (or CSV), in input order')
  .action(async (batch: string, flags) => exit(await (await batchCommands()).resultsCommand(batch, flags)));

program
  .command('cancel')
  .argument('<batch>', 'batch id')
  .description('cancel the requests of a batch not yet sent (those in flight finish)')
  .action(async (batch: string) => exit(await (await batchCommands()).cancelCommand(batch)));

program
  .command('retry')
  .argument('<batch>', 'batch id (an ended batch)')
  .option('--status <list>', 'statuses to send again, comma-separated (default: failed,cancelled,skipped,expired)')
  .option('--code <code>', 'only failures with this error code')
  .option('--completion-window <duration>', "the new batch's window (e.g. 24h); default: no limit")
  .description(
    'send again what a batch did not get done, as a new batch (same custom_ids, bodies and users; metadata.retry_of)',
  )
  .action(async (batch: string, flags) => exit(await (await batchCommands()).retryCommand(batch, flags)));

program
  .command('webhooks')
  .option('--project <name>', 'only this project')
  .option('--limit <n>', 'how many (newest first)', '50')
  .description('the latest webhook deliveries: event, batch, attempt, HTTP status, outcome')
  .action(async (flags) => exit(await (await batchCommands()).webhooksCommand(flags)));

program
  .command('report')
  .addOption(
    new Option('--by <dimension>', 'group by').choices(['batch', 'user', 'model', 'day', 'month']).default('model'),
  )
  .option('--project <name>', 'only this project (default: every project)')
  .option('--batch <id>', 'only this batch')
  .option('--from <day>', 'first UTC day (YYYY-MM-DD)')
  .option('--to <day>', 'last UTC day (YYYY-MM-DD)')
  .addOption(new Option('--format <format>', 'output').choices(['table', 'csv', 'json']).default('table'))
  .description('requests, tokens (prompt, cached, completion, reasoning) and cost, with unpriced requests counted')
  .action(async (flags) => exit(await (await batchCommands()).reportCommand(flags)));

const schedule = program
  .command('schedule')
  .description('scheduled runs of a suite (on BullMQ job schedulers; `chatq worker` processes run them)');
schedule
  .command('add')
  .argument('<name>', 'schedule name')
  .argument('<file>', 'suite (any chatq input file; lines may carry "expect")')
  .option('--cron <pattern>', 'cron pattern, e.g. "0 3 * * *"')
  .option('--every <ms>', 'or a fixed interval in milliseconds')
  .option('--tz <zone>', 'time zone of the cron pattern', 'UTC')
  .option('--model <model...>', 'run the suite against each of these models (one batch per model)')
  .option('--reuse-users', 'keep the same users (and their memory) across runs; default: fresh users each run')
  .option('--max-cost-usd <usd>', 'budget of each run')
  .option('--min-pass <fraction>', 'a run whose pass rate ends below this sends an eval.failed webhook (0-1)')
  .option('--project <name>', 'the project its runs belong to (default: "default")')
  .option('--judge-model <model>', 'judge model of its "judge" expectations that name none')
  .option('--judge-prompt <file>', 'a judge prompt template for its "judge" expectations (stored with the schedule)')
  .action(async (name: string, file: string, flags) =>
    exit(await (await evalCommands()).scheduleAddCommand(name, file, flags)),
  );
schedule
  .command('list')
  .option('--project <name>', "only this project's schedules")
  .description('schedules and their next run')
  .action(async (flags) => exit(await (await evalCommands()).scheduleListCommand(flags)));
schedule
  .command('remove')
  .argument('<name>', 'schedule name')
  .option('--project <name>', 'the project whose schedule it is (default: "default")')
  .description('stop a schedule')
  .action(async (name: string, flags) => exit(await (await evalCommands()).scheduleRemoveCommand(name, flags)));

program
  .command('eval')
  .argument('<batch>', 'batch id')
  .option('--min-pass <fraction>', 'exit 1 when the pass rate is below this (0-1)')
  .option('--json', 'print JSON (as --format json)')
  .addOption(new Option('--format <format>', 'output format').choices(['table', 'json', 'csv']).default('table'))
  .description(
    'pass rates of the graded requests, overall and by tag (a benchmark: accuracy by question type), costs of answering and grading, and each failure with its reply',
  )
  .action(async (batch: string, flags) => exit(await (await evalCommands()).evalCommand(batch, flags)));

program
  .command('compare')
  .argument('<batchA>', 'the baseline run')
  .argument('<batchB>', 'the new run')
  .addOption(new Option('--format <format>', 'output').choices(['table', 'json', 'csv']).default('table'))
  .description(
    'what went from pass to fail (and back) per custom_id; change in tokens, cost, p50/p95 latency; exit 1 on regressions',
  )
  .action(async (a: string, b: string, flags) => exit(await (await evalCommands()).compareCommand(a, b, flags)));

program
  .command('serve')
  .option('-p, --port <port>', 'port', '8080')
  .option('--host <host>', 'interface', '127.0.0.1')
  .option('--max-upload-mb <mb>', 'largest file upload', '512')
  .description(
    'HTTP API: OpenAI Batch-compatible /v1/files and /v1/batches, usage, /metrics, /admin/queues (needs CHATQ_API_TOKENS)',
  )
  .action(async (flags) => exit(await (await import('./cli/serve-command.js')).serveCommand(flags)));

program
  .command('resume')
  .description('resume the queue after a pause (bad key, no balance, quota) once the cause is fixed')
  .action(async () => exit(await (await batchCommands()).resumeCommand()));

program
  .command('simulator')
  .description('serve the local memory-chat endpoint (the default upstream of tests and demos)')
  .option('-p, --port <port>', 'port', '4010')
  .option('--host <host>', 'interface', '127.0.0.1')
  .option('--latency-ms <ms>', 'base latency')
  .option('--jitter-ms <ms>', 'latency jitter (+/-)')
  .option('--rpm <n>', 'its own requests-per-minute limit (429 beyond)')
  .option('--tpm <n>', 'its own tokens-per-minute limit (429 beyond)')
  .option('--api-key <key>', 'accept only this bearer key (401 otherwise)')
  .option('--fail-5xx <rate>', 'fraction of calls answered 503')
  .option('--fail-429 <rate>', 'fraction of calls answered 429 with retry-after')
  .option('--fail-timeout <rate>', 'fraction of calls never answered')
  .option('--fail-drop <rate>', 'fraction of connections dropped')
  .option('--fail-malformed <rate>', 'fraction of calls answered with broken JSON')
  .action(async (flags) => exit(await (await import('./cli/simulator-command.js')).simulatorCommand(flags)));

// A closed pipe (`chatq results B | head`) ends the command quietly; any other write error (a full disk) in one line.
exitOnWriteError(process.stdout, 'the output');

try {
  await program.parseAsync(process.argv);
} catch (err) {
  const code = (err as { code?: string }).code;
  if (code === 'commander.helpDisplayed' || code === 'commander.version' || code === 'commander.help')
    process.exit(EXIT.ok);
  if (typeof code === 'string' && code.startsWith('commander.')) process.exit(EXIT.usage);
  const { describeRedisError } = await import('./shared/redis/redis-errors.js');
  // The user's to fix (a flag, a line, Redis's address, a batch id): the library's errors and the CLI's own.
  const usage = err instanceof ChatqError;
  const message =
    usage || err instanceof CommandFailed
      ? (err as Error).message
      : (describeRedisError(err)?.message ?? (err instanceof Error ? err.message : String(err)));
  say(`chatq: ${message}`);
  if (process.env.LOG_LEVEL === 'debug' && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
  await exit(usage ? EXIT.usage : EXIT.failures);
}
