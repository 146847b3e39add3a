import { type BenchmarkTable, benchmarkTable, comparedTables } from '../shared/reports/benchmark-table.js';
import { benchmarkText } from './batch-summary.js';
import { createReadStream } from 'node:fs';
import { basename } from 'node:path';
import { formatLineError, parseRecord } from '../producer/parse-input.js';
import { csvCell } from '../shared/batches/batch-output.js';
import { readInputRecords } from '../shared/input-records.js';
import { deleteFile, FileWriter, keepFile } from '../shared/files/file-store.js';
import { newFileId } from '../shared/ids.js';
import { DEFAULT_PROJECT } from '../shared/keys.js';
import { formatUsd } from '../shared/usage/pricing.js';
import { evalJson, type EvalSummary } from '../shared/reports/eval-report.js';
import { tagTable } from './batch-summary.js';
import { judgePromptFlag } from './judge-prompt-flag.js';
import {
  addSchedule,
  checkScheduleBounds,
  listSchedules,
  openScheduleQueue,
  removeSchedule,
  ScheduleError,
  scheduleId,
  scheduleSpecSchema,
} from '../shared/files/schedules.js';
import { cliScope, EXIT, readConfig, UsageError, withChatq, withContext } from './cli-context.js';
import { out, say } from './output.js';
import { renderTable } from './table.js';

const pct = (r: number | null) => (r === null ? '-' : `${(r * 100).toFixed(1)}%`);
const when = (ms: number | null) => (ms === null ? '-' : new Date(ms).toISOString().replace('.000Z', 'Z'));

export interface ScheduleAddFlags {
  cron?: string;
  every?: string;
  tz?: string;
  model?: string[];
  reuseUsers?: boolean;
  maxCostUsd?: string;
  minPass?: string;
  project?: string;
  judgeModel?: string;
  judgePrompt?: string;
}

/** `chatq schedule add NAME FILE`: checks the suite now (not at 3 am), stores it in Redis, and schedules it. */
export async function scheduleAddCommand(name: string, file: string, flags: ScheduleAddFlags): Promise<number> {
  const parsed = scheduleSpecSchema.safeParse({
    name,
    ...(flags.cron ? { cron: flags.cron } : {}),
    ...(flags.every ? { every_ms: Number(flags.every) } : {}),
    tz: flags.tz ?? 'UTC',
    file_id: newFileId(),
    source: basename(file),
    models: flags.model ?? [],
    fresh_users: !flags.reuseUsers,
    ...(flags.maxCostUsd ? { max_cost_usd: Number(flags.maxCostUsd) } : {}),
    ...(flags.minPass ? { min_pass: Number(flags.minPass) } : {}),
    ...(flags.project ? { project: flags.project } : {}),
    ...(flags.judgeModel ? { judge_model: flags.judgeModel } : {}),
    ...(flags.judgePrompt !== undefined ? { judge_prompt: judgePromptFlag(flags.judgePrompt) } : {}),
  });
  if (!parsed.success)
    throw new UsageError(
      `schedule: ${parsed.error.issues.map((i) => `${i.path.join('.') || 'options'}: ${i.message}`).join('; ')}`,
    );
  const spec = parsed.data;
  const parseOptions = { source: file, ...(spec.models[0] ? { defaultModel: spec.models[0] } : {}) };
  const records = readInputRecords(createReadStream(file));
  const config = readConfig();
  try {
    checkScheduleBounds(spec, config.schedules);
  } catch (err) {
    if (err instanceof ScheduleError) throw new UsageError(`schedule: ${err.message}`);
    throw err;
  }
  return withContext(config, async (ctx) => {
    // One pass: each line is checked and stored; any bad line discards the upload before anything is scheduled.
    const writer = new FileWriter(ctx.redis, ctx.keys, spec.file_id);
    const bad: string[] = [];
    for await (const l of records) {
      const parsed = parseRecord(l, parseOptions);
      if (!parsed) continue;
      if (!parsed.ok) bad.push(formatLineError(parsed.error));
      else if ('text' in l) await writer.push(l.text, l.kind);
    }
    if (bad.length) {
      await writer.discard();
      throw new UsageError(
        `${file}: ${bad.length} bad line(s); fix them before scheduling:\n${bad.slice(0, 20).join('\n')}`,
      );
    }
    await writer.commit(basename(file), 'schedule', spec.project, ctx.config.resultTtlS);
    await keepFile(ctx.redis, ctx.keys, spec.file_id);
    const queue = openScheduleQueue(ctx.redis, ctx.keys.prefix);
    try {
      const { next } = await addSchedule(ctx.redis, ctx.keys, queue, spec, ctx.config.schedules);
      out(
        `schedule "${name}": ${spec.cron ? `cron "${spec.cron}" (${spec.tz})` : `every ${spec.every_ms} ms`}, ${writer.lines} lines, ${spec.fresh_users ? 'fresh users each run' : 'same users every run'}; next run ${when(next)}`,
      );
    } catch (err) {
      if (!(err instanceof ScheduleError)) throw err;
      // The suite stored for it goes with the refused schedule.
      await deleteFile(ctx.redis, ctx.keys, spec.file_id);
      throw new UsageError(err.message);
    } finally {
      await queue.close();
    }
    return EXIT.ok;
  });
}

export async function scheduleListCommand(flags: { project?: string }): Promise<number> {
  return withContext(readConfig(), async (ctx) => {
    const queue = openScheduleQueue(ctx.redis, ctx.keys.prefix);
    try {
      const rows = await listSchedules(ctx.redis, ctx.keys, queue, cliScope(flags));
      out(
        rows.length
          ? renderTable(
              ['name', 'when', 'suite', 'models', 'users', 'next run (UTC)', 'skipped'],
              rows.map((s) => [
                s.name,
                s.cron ? `${s.cron} ${s.tz}` : `every ${s.every_ms} ms`,
                s.source,
                s.models.join(' ') || '(lines)',
                s.fresh_users ? 'fresh' : 'reused',
                when(s.next),
                String(s.skipped_runs),
              ]),
            )
          : 'no schedules',
      );
    } finally {
      await queue.close();
    }
    return EXIT.ok;
  });
}

export async function scheduleRemoveCommand(name: string, flags: { project?: string }): Promise<number> {
  const project = flags.project ?? DEFAULT_PROJECT;
  return withContext(readConfig(), async (ctx) => {
    const queue = openScheduleQueue(ctx.redis, ctx.keys.prefix);
    try {
      if (!(await removeSchedule(ctx.redis, ctx.keys, queue, scheduleId(project, name), ctx.config.resultTtlS)))
        throw new UsageError(`no schedule "${name}" in project "${project}"`);
      out(`schedule "${name}" removed`);
    } finally {
      await queue.close();
    }
    return EXIT.ok;
  });
}

const tableCsv = (t: BenchmarkTable) => [t.headers, ...t.rows].map((r) => r.map(csvCell).join(',')).join('\n');

function tagCsv(s: EvalSummary): string {
  const rows = [
    ...Object.keys(s.byTag)
      .sort()
      .map((t) => [t, s.byTag[t]!] as const),
    ['overall', s] as const,
  ];
  return [
    'tag,graded,passed,failed,ungraded,pass_rate',
    ...rows.map(([t, c]) =>
      [t, c.passed + c.failed + c.ungraded, c.passed, c.failed, c.ungraded, c.passRate ?? ''].map(csvCell).join(','),
    ),
  ].join('\n');
}

/** `chatq eval BATCH`: pass rates (overall and by tag), costs and failures; exit 1 under --min-pass. */
export async function evalCommand(
  batchId: string,
  flags: { minPass?: string; json?: boolean; format?: string },
): Promise<number> {
  const minPass = flags.minPass === undefined ? undefined : Number(flags.minPass);
  if (minPass !== undefined && !(minPass >= 0 && minPass <= 1))
    throw new UsageError(`--min-pass: expected a fraction between 0 and 1, got "${flags.minPass}"`);
  return withChatq(async (chatq) => {
    const s = await chatq.evaluation(batchId);
    const benchmark = await chatq.benchmarkReport(batchId);
    if (flags.json || flags.format === 'json')
      out(JSON.stringify({ ...evalJson(s), ...(benchmark ? { benchmark } : {}) }));
    else if (flags.format === 'csv') out(benchmark ? tableCsv(benchmarkTable(benchmark)) : tagCsv(s));
    else if (benchmark) out(benchmarkText(benchmarkTable(benchmark)));
    else {
      out(
        `${batchId}: ${s.passed}/${s.passed + s.failed} passed (${pct(s.passRate)})${s.ungraded ? `, ${s.ungraded} ungraded` : ''}; answers ${formatUsd(s.costNano.answers)}, grading ${formatUsd(s.costNano.grading)}`,
      );
      if (Object.keys(s.byTag).length) out(`\n${tagTable(s)}`);
      if (s.failures.length) {
        out(
          `\n${renderTable(
            ['custom_id', 'expectation', 'why', 'reply'],
            s.failures.flatMap((f) =>
              f.failures.map((x) => [f.customId, x.kind, x.message.slice(0, 60), (f.reply ?? '').slice(0, 60)]),
            ),
          )}`,
        );
      }
    }
    if (s.graded === 0) say('note: no request of this batch has expectations ("expect")');
    return minPass !== undefined && (s.passRate ?? 0) < minPass ? EXIT.failures : EXIT.ok;
  });
}

/** `chatq compare A B`: regressions and fixes per custom_id, and the change in tokens, cost and latency. */
export async function compareCommand(a: string, b: string, flags: { format?: string }): Promise<number> {
  return withChatq(async (chatq) => {
    const c = await chatq.compare(a, b);
    const [ra, rb] = await Promise.all([chatq.benchmarkReport(a), chatq.benchmarkReport(b)]);
    const benchmarks = ra && rb && ra.benchmark === rb.benchmark ? { a: ra, b: rb } : undefined;
    const changed = c.requests.filter((r) => r.change !== 'same');
    if (flags.format === 'json') out(JSON.stringify({ ...c, ...(benchmarks ? { benchmark: benchmarks } : {}) }));
    else if (benchmarks && flags.format !== 'csv') out(benchmarkText(comparedTables(benchmarks.a, benchmarks.b)));
    else if (flags.format === 'csv') {
      out('custom_id,a,b,change,tokens_a,tokens_b,cost_usd_a,cost_usd_b');
      for (const r of c.requests)
        out(
          [
            r.customId,
            r.a,
            r.b,
            r.change,
            r.tokensA,
            r.tokensB,
            r.costNanoA === null ? '' : r.costNanoA / 1e9,
            r.costNanoB === null ? '' : r.costNanoB / 1e9,
          ]
            .map(csvCell)
            .join(','),
        );
    } else {
      const delta = (x: number | null, y: number | null, f: (v: number) => string) =>
        x === null || y === null
          ? '-'
          : `${f(x)} -> ${f(y)} (${y - x >= 0 ? '+' : ''}${x ? (((y - x) / x) * 100).toFixed(1) : '∞'}%)`;
      out(
        renderTable(
          ['', 'A', 'B', 'change'],
          [
            ['pass rate', pct(c.a.passRate), pct(c.b.passRate), `${c.regressed} regressed, ${c.fixed} fixed`],
            ...[...new Set([...Object.keys(c.a.byTag), ...Object.keys(c.b.byTag)])].sort().map((tag) => {
              const [a, b] = [c.a.byTag[tag]?.passRate ?? null, c.b.byTag[tag]?.passRate ?? null];
              return [`  ${tag}`, pct(a), pct(b), delta(a, b, pct)];
            }),
            ['tokens', c.a.tokens, c.b.tokens, delta(c.a.tokens, c.b.tokens, String)],
            [
              'cost',
              formatUsd(c.a.costNano),
              formatUsd(c.b.costNano),
              delta(c.a.costNano, c.b.costNano, (v) => formatUsd(v)),
            ],
            [
              'p50 latency ms',
              c.a.p50LatencyMs ?? '-',
              c.b.p50LatencyMs ?? '-',
              delta(c.a.p50LatencyMs, c.b.p50LatencyMs, String),
            ],
            [
              'p95 latency ms',
              c.a.p95LatencyMs ?? '-',
              c.b.p95LatencyMs ?? '-',
              delta(c.a.p95LatencyMs, c.b.p95LatencyMs, String),
            ],
          ],
        ),
      );
      if (changed.length)
        out(
          `\n${renderTable(
            ['custom_id', 'A', 'B', 'change'],
            changed.map((r) => [r.customId, r.a, r.b, r.change]),
          )}`,
        );
    }
    return c.regressed > 0 ? EXIT.failures : EXIT.ok;
  });
}
