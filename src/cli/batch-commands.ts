import { createWriteStream } from 'node:fs';
import { CSV_COLUMNS, toCsvRow, toOutputLine } from '../shared/batches/batch-output.js';
import { formatUsd } from '../shared/usage/pricing.js';
import { REPORT_DIMENSIONS, usageCsv, usageJson, type ReportDimension } from '../shared/reports/usage-report.js';
import { pauseReason, resumeQueue } from '../shared/redis/queue-control.js';
import { getBatch, getRequests, getUsage } from '../shared/batches/read-store.js';
import type { FinishedStatus } from '../shared/request-record.js';
import { RETRYABLE_STATUSES } from '../shared/batches/retry-input.js';
import { sees } from '../shared/scope.js';
import { listDeliveries, receiverHealth, type ReceiverHealth } from '../webhooks/webhook-delivery.js';
import { batchTable, failuresTable, usageTable } from './batch-summary.js';
import { sumUsage } from './read-helpers.js';
import { cliScope, EXIT, readConfig, UsageError, withChatq, withContext } from './cli-context.js';
import { expandInputs } from './input-files.js';
import { submitFiles, type SubmitFlags } from './submit-files.js';
import { exitOnWriteError, out, say } from './output.js';
import { renderTable } from './table.js';

/** `chatq enqueue FILE...`: validates and enqueues; workers elsewhere do the calls. Prints the batch ids. */
export async function enqueueCommand(inputs: string[], flags: SubmitFlags): Promise<number> {
  if (flags.dryRun) return (await import('./estimate-command.js')).estimateCommand(inputs, flags);
  const files = expandInputs(inputs);
  return withContext(readConfig(), async (ctx) => {
    const results = await submitFiles(ctx, files, flags);
    for (const r of results) out(r.batchId);
    return results.some((r) => r.rejectedLines > 0) ? EXIT.failures : EXIT.ok;
  });
}

/** `chatq status ID`: a batch (counters, usage, failures, bad lines) or one request (its attempts). */
export async function statusCommand(id: string, flags: { json?: boolean }): Promise<number> {
  return withContext(readConfig(), async (ctx) => {
    const paused = await pauseReason(ctx.redis, ctx.keys);
    if (paused)
      out(
        `QUEUE PAUSED since ${new Date(paused.at).toISOString()}: ${paused.code}: ${paused.message}\nFix the cause, then run "chatq resume".\n`,
      );
    const batch = await getBatch(ctx.redis, ctx.keys, id);
    if (batch) {
      const usage = await getUsage(ctx.redis, ctx.keys, batch.project, 'batch', id);
      if (flags.json) {
        out(JSON.stringify({ batch, usage, paused }));
        return EXIT.ok;
      }
      out(batchTable([{ batch, usage }]));
      out(`\n${usageTable([{ label: id, usage }])}`);
      const failures = failuresTable([batch]);
      if (failures) out(`\n${failures}`);
      const lineErrors = await ctx.redis.lrange(ctx.keys.batchErrors(id), 0, 19);
      if (lineErrors.length) {
        const rows = lineErrors.map((e) => JSON.parse(e) as { line: number; field?: string; message: string });
        out(
          `\n${renderTable(
            ['line', 'field', 'problem'],
            rows.map((e) => [e.line, e.field ?? '', e.message]),
          )}`,
        );
      }
      return EXIT.ok;
    }
    const [request] = await getRequests(ctx.redis, ctx.keys, [id]);
    if (!request) throw new UsageError(`no batch or request "${id}" (unknown, or its results expired)`);
    if (flags.json) {
      out(JSON.stringify(request));
      return EXIT.ok;
    }
    out(
      renderTable(
        ['request', 'custom_id', 'batch', 'userid', 'status', 'attempts', 'cost'],
        [
          [
            request.id,
            request.customId,
            request.batch,
            request.userid,
            request.status,
            request.attempts,
            request.costNano === null ? 'unpriced' : formatUsd(request.costNano),
          ],
        ],
      ),
    );
    if (request.error) out(`\nerror: ${request.error.code}: ${request.error.message}`);
    if (request.attemptLog.length) {
      out(
        `\n${renderTable(
          ['#', 'at (UTC)', 'http', 'outcome', 'ms'],
          request.attemptLog.map((a, i) => [i + 1, new Date(a.at).toISOString(), a.status ?? '-', a.code, a.ms]),
        )}`,
      );
    }
    return EXIT.ok;
  });
}

/** `chatq results BATCH`: OpenAI Batch output lines (or CSV) in input order. */
export async function resultsCommand(id: string, flags: { output?: string; format?: string }): Promise<number> {
  const format = flags.format ?? 'jsonl';
  if (!['jsonl', 'csv', 'longmemeval', 'locomo'].includes(format))
    throw new UsageError(`--format: expected jsonl, csv, longmemeval or locomo, got "${format}"`);
  return withChatq(async (chatq) => {
    await chatq.status(id);
    const sink = flags.output ? createWriteStream(flags.output) : process.stdout;
    if (flags.output) exitOnWriteError(sink, flags.output);
    const write = (text: string) =>
      sink.write(text) ? undefined : new Promise<void>((r) => sink.once('drain', () => r()));
    let failed = 0;
    if (format === 'longmemeval' || format === 'locomo') {
      const report = await chatq.benchmarkReport(id);
      if (report?.benchmark !== format)
        throw new UsageError(
          `${id} is ${report ? `a ${report.benchmark} run` : 'no memory benchmark run'}: --format ${format} writes ${format === 'longmemeval' ? "LongMemEval's" : "LoCoMo's"} answers`,
        );
      for await (const chunk of chatq.benchmarkAnswers(id)) await write(chunk);
      failed = report.unanswered;
    } else {
      if (format === 'csv') await write(`${CSV_COLUMNS.join(',')}\n`);
      for await (const r of chatq.requests(id)) {
        if (r.status !== 'succeeded') failed += 1;
        await write(`${format === 'csv' ? toCsvRow(r) : JSON.stringify(toOutputLine(r))}\n`);
      }
    }
    if (flags.output) await new Promise<void>((r) => (sink as ReturnType<typeof createWriteStream>).end(() => r()));
    return failed > 0 ? EXIT.failures : EXIT.ok;
  });
}

/** `chatq resume`: lifts a pause (bad key, no balance, quota) once the cause is fixed. */
export async function resumeCommand(): Promise<number> {
  return withContext(readConfig(), async (ctx) => {
    const reason = await pauseReason(ctx.redis, ctx.keys);
    await resumeQueue(ctx.queues, ctx.redis, ctx.keys);
    out(reason ? `resumed (was paused: ${reason.code}: ${reason.message})` : 'resumed (the queue was not paused)');
    return EXIT.ok;
  });
}

/** `chatq cancel BATCH`: requests not yet sent are cancelled; those in flight finish. */
export async function cancelCommand(id: string): Promise<number> {
  return withChatq(async (chatq) => {
    const batch = await chatq.cancel(id);
    out(`${id}: ${batch.status} (${batch.cancelled} cancelled, ${batch.succeeded} succeeded, ${batch.failed} failed)`);
    return EXIT.ok;
  });
}

/** `chatq report`: requests, tokens and cost by batch, user, model or day, as a table, CSV or JSON. */
export async function reportCommand(flags: {
  by?: string;
  batch?: string;
  from?: string;
  to?: string;
  format?: string;
  project?: string;
}): Promise<number> {
  const by = (flags.by ?? 'model') as ReportDimension;
  if (!REPORT_DIMENSIONS.includes(by))
    throw new UsageError(`--by: expected one of ${REPORT_DIMENSIONS.join(', ')}, got "${flags.by}"`);
  const project = cliScope(flags).project;
  return withChatq(async (chatq) => {
    const rows = await chatq.report({
      by,
      ...(project ? { project } : {}),
      ...(flags.batch ? { batch: flags.batch } : {}),
      ...(flags.from ? { from: flags.from } : {}),
      ...(flags.to ? { to: flags.to } : {}),
    });
    if (flags.format === 'csv') process.stdout.write(usageCsv(rows, by));
    else if (flags.format === 'json') out(JSON.stringify(usageJson(rows, by)));
    else
      out(
        rows.length
          ? usageTable([
              ...rows.map((u) => ({ label: u.key, usage: u })),
              ...(rows.length > 1 ? [{ label: 'total', usage: sumUsage(rows) }] : []),
            ])
          : 'no usage recorded yet',
      );
    return EXIT.ok;
  });
}

/** `chatq retry BATCH`: what a batch did not get done, as a new batch (same custom_ids, bodies, users; metadata.retry_of). */
export async function retryCommand(
  id: string,
  flags: { status?: string; code?: string; completionWindow?: string },
): Promise<number> {
  const statuses = (flags.status ?? RETRYABLE_STATUSES.join(',')).split(',').map((s) => s.trim()) as FinishedStatus[];
  const wrong = statuses.filter((s) => !RETRYABLE_STATUSES.includes(s));
  if (wrong.length)
    throw new UsageError(`--status: expected some of ${RETRYABLE_STATUSES.join(', ')}, got "${wrong.join(',')}"`);
  return withChatq(async (chatq) => {
    const result = await chatq.retry(id, {
      statuses,
      ...(flags.code ? { code: flags.code } : {}),
      ...(flags.completionWindow ? { completionWindow: flags.completionWindow } : {}),
    });
    say(
      `retry of ${id}: batch ${result.id}: ${result.requests} requests (${statuses.join(', ')}${flags.code ? `, code ${flags.code}` : ''})`,
    );
    out(result.id);
    return EXIT.ok;
  });
}

/** `chatq webhooks`: each receiver's health (failures in a row, paused), then the latest delivery attempts, newest first. */
export async function webhooksCommand(flags: { project?: string; limit?: string }): Promise<number> {
  const scope = cliScope(flags);
  const limit = Number(flags.limit ?? 50);
  if (!Number.isInteger(limit) || limit < 1 || limit > 1_000)
    throw new UsageError(`--limit: expected 1-1000, got "${flags.limit}"`);
  return withContext(readConfig(), async (ctx) => {
    const visible = (project: string) => sees(scope, project);
    const receivers = await receiverHealth(ctx.config, ctx.redis, ctx.keys, visible, scope.all);
    if (receivers.length > 0) {
      const state = (r: ReceiverHealth) =>
        r.pausedUntil
          ? `paused until ${new Date(r.pausedUntil).toISOString()} (${r.failuresInARow} failures in a row)`
          : r.failuresInARow
            ? `failing (${r.failuresInARow} in a row)`
            : 'ok';
      out(
        renderTable(
          ['receiver', 'state', 'last error'],
          receivers.map((r) => [
            r.receiver === '*' ? 'default (CHATQ_WEBHOOK_URL)' : r.receiver,
            state(r),
            r.lastError,
          ]),
        ),
      );
    }
    const rows = await listDeliveries(ctx.redis, ctx.keys, visible, limit);
    if (rows.length === 0) {
      out('no webhook deliveries yet');
      return EXIT.ok;
    }
    out(
      renderTable(
        ['at (UTC)', 'event', 'type', 'batch', 'project', 'attempt', 'http', 'outcome', 'error'],
        rows.map((d) => [
          new Date(d.at).toISOString(),
          d.event,
          d.type,
          d.batch,
          d.project,
          d.attempt,
          d.status ?? '-',
          d.outcome,
          d.error ?? '',
        ]),
      ),
    );
    return EXIT.ok;
  });
}
