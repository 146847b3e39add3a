import { Queue } from 'bullmq';
import { CronExpressionParser } from 'cron-parser';
import type { ScheduleLimits } from '../config.js';
import { judgeTemplateSchema } from '../expectations.js';
import { modelNameSchema } from '../input-limits.js';
import { reportErrors, type RedisClient } from '../redis/redis.js';
import { z } from 'zod';
import { deleteFile, getFile, releaseFile } from './file-store.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../keys.js';
import { sees, type Scope } from '../scope.js';

/**
 * Scheduled runs of a suite (an input file kept in Redis), on BullMQ job schedulers: each firing becomes a new
 * batch named "<schedule>@<time>", imported by producer/schedule-runner and processed like any other.
 */
export const SCHEDULE_QUEUE = 'schedules';

export const scheduleSpecSchema = z
  .object({
    name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, { message: 'use 1-64 letters, digits, "_", "." or "-"' }),
    cron: z.string().min(1).optional(),
    every_ms: z.number().int().min(1_000).optional(),
    tz: z.string().default('UTC'),
    file_id: z.string().min(1),
    /** The suite's file name, for people. */
    source: z.string().default('suite.jsonl'),
    /** Run the suite against each of these models (one batch per model and firing); none: the lines' own models. */
    models: z.array(modelNameSchema).default([]),
    /** true: each run gets its own users (fresh memory); false: runs share users on purpose. */
    fresh_users: z.boolean().default(true),
    max_cost_usd: z.number().positive().optional(),
    /** A firing whose pass rate ends below this sends an eval.failed webhook. */
    min_pass: z.number().min(0).max(1).optional(),
    /** The judge model of its judge expectations that name none (--judge-model). */
    judge_model: modelNameSchema.optional(),
    /** The judge prompt template of its judge expectations (--judge-prompt): {{reply}} and what it needs. */
    judge_prompt: judgeTemplateSchema.optional(),
    /** The project its batches belong to. */
    project: z.string().default(DEFAULT_PROJECT),
  })
  .strict()
  .refine((s) => (s.cron === undefined) !== (s.every_ms === undefined), { message: 'give either cron or every_ms' });

export type ScheduleSpec = z.output<typeof scheduleSpecSchema>;

export interface ScheduleJob {
  /** The schedule's id (scheduleId). */
  schedule: string;
}

/**
 * A schedule is its project's: names are per project. Its id (the field of the schedules hash and the job scheduler's
 * id) is the name in the default project, "<project>/<name>" in the others ("/" is in neither a name nor a project).
 */
export const scheduleId = (project: string, name: string) =>
  project === DEFAULT_PROJECT ? name : `${project}/${name}`;

export function openScheduleQueue(connection: RedisClient, prefix: string): Queue<ScheduleJob> {
  return reportErrors(new Queue<ScheduleJob>(SCHEDULE_QUEUE, { connection, prefix }));
}

export class ScheduleError extends Error {}

/** Firings looked at for a cron's shortest gap: a day of them at one a minute (a pattern repeats well within it). */
const CRON_FIRINGS_CHECKED = 1_440;

/** The shortest time between two firings of a cron pattern (over its next CRON_FIRINGS_CHECKED firings). */
function cronGapMs(pattern: string, tz: string): number {
  let firings: ReturnType<typeof CronExpressionParser.parse>;
  try {
    firings = CronExpressionParser.parse(pattern, { tz });
  } catch (err) {
    throw new ScheduleError(`cron: "${pattern}" is not a cron pattern (${(err as Error).message})`);
  }
  let shortest = Number.POSITIVE_INFINITY;
  let last = firings.next().getTime();
  for (let i = 1; i < CRON_FIRINGS_CHECKED && firings.hasNext(); i += 1) {
    const at = firings.next().getTime();
    shortest = Math.min(shortest, at - last);
    last = at;
  }
  return shortest;
}

/** A schedule within the deployment's bounds (CHATQ_SCHEDULE_*): its interval and its models. */
export function checkScheduleBounds(spec: ScheduleSpec, limits: ScheduleLimits): void {
  const least = limits.minIntervalMs;
  if (spec.every_ms !== undefined && spec.every_ms < least)
    throw new ScheduleError(
      `every_ms: at least ${least} ms between runs (CHATQ_SCHEDULE_MIN_INTERVAL_MS), got ${spec.every_ms}`,
    );
  if (spec.cron !== undefined) {
    const gap = cronGapMs(spec.cron, spec.tz);
    if (gap < least)
      throw new ScheduleError(
        `cron: "${spec.cron}" fires ${gap} ms apart; at least ${least} ms between runs (CHATQ_SCHEDULE_MIN_INTERVAL_MS)`,
      );
  }
  if (spec.models.length > limits.maxModels)
    throw new ScheduleError(
      `models: at most ${limits.maxModels} models per schedule (CHATQ_SCHEDULE_MAX_MODELS), got ${spec.models.length}`,
    );
}

/**
 * Adds (or replaces) a schedule within the bounds: its interval, its models, and the project's number of schedules
 * (checked again once written: of two adds at once past the bound, neither stays).
 */
export async function addSchedule(
  redis: RedisClient,
  keys: RedisKeys,
  queue: Queue<ScheduleJob>,
  spec: ScheduleSpec,
  limits: ScheduleLimits,
): Promise<{ next: number | null }> {
  checkScheduleBounds(spec, limits);
  const id = scheduleId(spec.project, spec.name);
  const ofProject = async () => (await getSchedules(redis, keys)).filter((s) => s.project === spec.project);
  const tooMany = () =>
    new ScheduleError(
      `at most ${limits.perProject} schedules per project (CHATQ_SCHEDULES_PER_PROJECT); remove one first`,
    );
  const existing = await ofProject();
  const replaces = existing.some((s) => s.name === spec.name);
  if (!replaces && existing.length >= limits.perProject) throw tooMany();
  const repeat = spec.cron !== undefined ? { pattern: spec.cron, tz: spec.tz } : { every: spec.every_ms! };
  try {
    await queue.upsertJobScheduler(id, repeat, {
      name: 'fire',
      data: { schedule: id },
      opts: { removeOnComplete: { count: 100 }, removeOnFail: { count: 100 } },
    });
  } catch (err) {
    throw new ScheduleError(`cannot schedule "${spec.name}": ${(err as Error).message}`);
  }
  await redis.hset(keys.schedules, id, JSON.stringify(spec));
  if (!replaces && (await ofProject()).length > limits.perProject) {
    await queue.removeJobScheduler(id);
    await redis.hdel(keys.schedules, id);
    throw tooMany();
  }
  const scheduler = await queue.getJobScheduler(id);
  return { next: scheduler?.next ?? null };
}

/**
 * Stops a schedule. Its suite goes with it when nothing else runs it: a suite `chatq schedule add` stored is deleted,
 * an uploaded file gets its expiry back (it is its uploader's, to delete or let expire).
 */
export async function removeSchedule(
  redis: RedisClient,
  keys: RedisKeys,
  queue: Queue<ScheduleJob>,
  id: string,
  ttlS: number,
): Promise<boolean> {
  const spec = await getSchedule(redis, keys, id);
  const removed = await queue.removeJobScheduler(id);
  const deleted = (await redis.hdel(keys.schedules, id)) > 0;
  await redis.hdel(keys.scheduleRuns, id);
  if (spec && !(await getSchedules(redis, keys)).some((s) => s.file_id === spec.file_id)) {
    const file = await getFile(redis, keys, spec.file_id);
    if (file?.purpose === 'schedule') await deleteFile(redis, keys, spec.file_id);
    else if (file) await releaseFile(redis, keys, spec.file_id, ttlS);
  }
  return deleted || removed;
}

/** The schedule of this id (scheduleId(project, name)). */
export async function getSchedule(redis: RedisClient, keys: RedisKeys, id: string): Promise<ScheduleSpec | null> {
  const raw = await redis.hget(keys.schedules, id);
  return raw ? (JSON.parse(raw) as ScheduleSpec) : null;
}

/** Every schedule of every project (bounded: one per name and project). */
export async function getSchedules(redis: RedisClient, keys: RedisKeys): Promise<ScheduleSpec[]> {
  return Object.values(await redis.hgetall(keys.schedules)).map((raw) => JSON.parse(raw) as ScheduleSpec);
}

export async function listSchedules(
  redis: RedisClient,
  keys: RedisKeys,
  queue: Queue<ScheduleJob>,
  scope: Scope,
): Promise<(ScheduleSpec & { next: number | null; skipped_runs: number })[]> {
  const specs = (await getSchedules(redis, keys)).filter((s) => sees(scope, s.project));
  const sorted = specs.sort((a, b) => a.project.localeCompare(b.project) || a.name.localeCompare(b.name));
  return Promise.all(
    sorted.map(async (s) => {
      const id = scheduleId(s.project, s.name);
      return {
        ...s,
        next: (await queue.getJobScheduler(id))?.next ?? null,
        skipped_runs: (await scheduleRuns(redis, keys, id)).skipped,
      };
    }),
  );
}

/** A schedule's latest firing's batches, and how many firings it skipped while a run was still going. */
export interface ScheduleRuns {
  batches: string[];
  skipped: number;
}

export async function scheduleRuns(redis: RedisClient, keys: RedisKeys, id: string): Promise<ScheduleRuns> {
  const raw = await redis.hget(keys.scheduleRuns, id);
  return raw ? (JSON.parse(raw) as ScheduleRuns) : { batches: [], skipped: 0 };
}

export async function saveScheduleRuns(redis: RedisClient, keys: RedisKeys, id: string, runs: ScheduleRuns) {
  await redis.hset(keys.scheduleRuns, id, JSON.stringify(runs));
}
