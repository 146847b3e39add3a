import { latencyBucket } from '../../shared/latency-buckets.js';
import type { RedisKeys } from '../../shared/keys.js';
import type { AdmissionArg } from '../../shared/redis/admission.js';
import { defineScript } from '../../shared/redis/script-contract.js';
import type { AttemptEntry } from '../../shared/request-record.js';
import { encodeBody } from '../../shared/body-codec.js';
import { encodeResponse } from '../../shared/response-codec.js';
import type { ClaimReply, FinishedRequest, GradingDraft, RequestOwner } from './request-claims.js';
import { verdictOfGrade } from '../../shared/expectations.js';
import type { UsageRecord } from '../../shared/usage/usage-fold.js';

/** finish-request.lua's arguments; left out when undefined. */
interface FinishArgs {
  id: string;
  status: 'succeeded' | 'failed';
  /** Now, ms. */
  now: number;
  /** How long the result is kept (s). */
  ttl_s: number;
  /** The key prefix (the keys the script finds on the way are built on it). */
  prefix: string;
  batch: string;
  userid: string;
  /** This run's attempt entries, each [at, status (false: none), code, ms] (left out when none). */
  attempts: [number, number | false, string, number][] | undefined;
  /** Upstream calls made in this run. */
  calls: number;
  /** The cost in nano-USD (left out: unpriced). */
  cost_nano: number | undefined;
  /** A failure's code, counted per batch as "error:<code>". */
  error_code: string | undefined;
  /** An evaluation's grade. */
  grade: 'pass' | 'fail' | undefined;
  /** The usage record for fold-usage.lua (JSON text). */
  usage_record: string;
  /**
   * The serving job's id when it goes on with the lane's next request (left out: a new job takes it; "?" and the id
   * when its time slice is over: it goes on only while no other job waits for a slot).
   */
  serving_job: string | undefined;
  /**
   * The serving job's project holds less than its share of the worker's call slots: it keeps its slot for its slice
   * while another project has heads waiting (else it goes on only while no job waits).
   */
  within_share: boolean | undefined;
  /** Whether the batch has a budget (its reservation is released; left out when unknown). */
  budgeted: boolean | undefined;
  /** The run's claim number (left out when no run: a job given up). */
  claim: number | undefined;
  /** The lease a handed head's claim takes for its first call (left out: begin-call.lua takes it). */
  lease_ms: number | undefined;
  /**
   * The projects' shares of the queue (admission.lua): a next head not handed on goes to BullMQ within its project's,
   * else to the project's backlog (next_head is then "").
   */
  admission: AdmissionArg;
  /**
   * The grading request this result makes (expect.judge): written with the result, on a lane of its own (no user's:
   * the user's next turn does not wait for it), counted in the batch's "judging" until its judgement is written.
   */
  grading: GradingDraft | undefined;
  /**
   * This request is a grading: the request it judges, that request's grade with the verdict in (written into its
   * record), and the verdict (counted as eval_<verdict>). A grading moves the batch's "judging", not its counters.
   */
  judged_of: string | undefined;
  judged_grade: string | undefined;
  verdict: 'pass' | 'fail' | 'ungraded' | undefined;
  /** The result's fields (of FINISHED_RECORD_FIELDS), kept as they are. */
  fields: Record<string, string | number>;
  /** The response as stored (response-codec.ts); left out when none. */
  response: string | Buffer | undefined;
}

/** finish-request.lua's answer. */
export interface FinishReply {
  outcome: 'ok' | 'duplicate' | 'missing';
  /** The lane's next request, or "". */
  next_head: string;
  /** That head was handed to the serving job (and claimed for it: `claim`). */
  handed: boolean;
  /** The next head's turn gap: its job is added delayed by that much. */
  wait_ms: number;
  /** The lane's next request, claimed for the serving job (claim-request.lua's answer): only when handed. */
  claim?: ClaimReply;
  /** The grading request this result made, admitted to BullMQ at once (else "": it waits in its project's backlog). */
  grading_head: string;
}

export const finishScript = defineScript<FinishArgs, FinishReply>()({
  file: new URL('./finish-request.lua', import.meta.url),
  keys: [
    'request',
    'batch',
    'lane',
    'lanes',
    // The batch's usage (its cost).
    'batch_usage',
    'batch_requests',
    'batch_custom_ids',
    'batch_errors',
    // The user's request index in the project.
    'user_requests',
    // The batch's budget reservations.
    'reservations',
    // Usage records waiting for the fold.
    'pending_usage',
    // Batch events (a batch that ends here).
    'events',
    // The request's body, and its finished record (finished-record.ts), which replaces the hash and body.
    'body',
    'done',
    // The user's call lease (begin-call.lua): released here when this run holds it.
    'lease',
    // BullMQ's waiting and prioritized jobs of the queue.
    'queue_wait',
    'queue_prioritized',
    // The grading request this result makes: its hash, body and lane.
    'grading',
    'grading_body',
    'grading_lane',
    // The finished record of the request a grading judges (when this is a grading).
    'judged_done',
  ],
  args: {
    id: 'string',
    status: 'string',
    now: 'whole',
    ttl_s: 'whole',
    prefix: 'string',
    batch: 'string',
    userid: 'string',
    attempts: 'list?',
    calls: 'whole',
    cost_nano: 'whole?',
    error_code: 'string?',
    grade: 'string?',
    usage_record: 'string',
    serving_job: 'string?',
    within_share: 'boolean?',
    budgeted: 'boolean?',
    claim: 'whole?',
    lease_ms: 'whole?',
    admission: 'table',
    grading: 'table?',
    judged_of: 'string?',
    judged_grade: 'string?',
    verdict: 'string?',
    fields: 'table',
    response: 'bytes?',
  },
});

export type FinishKeys = Parameters<typeof finishScript.run>[1];

/** A request's grading: its id and its lane (one of its own). */
export const gradingId = (id: string) => `${id}-judge`;
export const gradingLane = (id: string) => `judge:${id}`;

/** A run's attempt entries as requeue-request.lua takes them (JSON objects, no brackets). */
export const entriesText = (entries: AttemptEntry[]) => entries.map((e) => JSON.stringify(e)).join(',');
let dayCache = { until: 0, day: '' };
/** The UTC day of `ms`, recomputed once per day boundary rather than per request. */
function utcDay(ms: number): string {
  if (ms >= dayCache.until || ms < dayCache.until - 86_400_000) {
    const start = ms - (ms % 86_400_000);
    dayCache = { until: start + 86_400_000, day: new Date(start).toISOString().slice(0, 10) };
  }
  return dayCache.day;
}

/** An attempt entry as a finished record keeps it: [at, status (false: none), code, ms]. */
const packedAttempt = (e: AttemptEntry): [number, number | false, string, number] => [
  e.at,
  e.status ?? false,
  e.code,
  e.ms,
];

/** The result's fields that it has (a count of zero is not written: readers take a missing one as 0). */
function resultFields(result: FinishedRequest): Record<string, string | number> {
  const fields: Record<string, string | number> = {};
  const set = (field: string, value: string | number | null | undefined) => {
    if (value !== undefined && value !== null && value !== '') fields[field] = value;
  };
  set('error', result.error && JSON.stringify(result.error));
  for (const [field, value] of Object.entries(result.upstream ?? {})) set(field, value);
  set('latency_ms', result.latencyMs);
  set('conv', result.conversation && JSON.stringify(result.conversation));
  set('grade', result.grade && JSON.stringify(result.grade));
  set('cost_nano', result.costNano);
  for (const [field, n] of Object.entries(result.usage)) if (n > 0) fields[field] = n;
  return fields;
}

/**
 * finish-request.lua's keys and arguments for a run's result: the result's fields (only those it has), its usage
 * record for the fold, the stored response. `servingJob` goes on with the lane's next request ("" for a new job; "?"
 * before it: past its slice; "+": its project holds less than its share of the slots);
 * `leaseMs` is the lease that a handed request's claim takes for its first call (undefined: begin-call.lua takes it).
 */
export function finishCall(
  k: RedisKeys,
  {
    id,
    owner,
    result,
    servingJob,
    ttlS,
    leaseMs,
    admission,
  }: {
    id: string;
    owner: RequestOwner;
    result: FinishedRequest;
    servingJob: string;
    ttlS: number;
    leaseMs: number | undefined;
    admission: AdmissionArg;
  },
): { keys: FinishKeys; args: FinishArgs } {
  const now = Date.now();
  const fields = resultFields(result);
  const grade = result.judged?.grade ?? result.grade;
  // A grade waiting for its judge is counted when the judgement is written (by the grading's finish).
  const verdict = grade && !result.grading ? verdictOfGrade(grade) : undefined;
  // The usage record names its aggregates by project and names; fold-usage.lua builds their keys.
  const record: UsageRecord = {
    project: owner.project,
    // A grading belongs to no user: its usage is the batch's, model's and day's, as grading spend (the judge's calls
    // it paid for, re-asks included; none for a grading never sent).
    userid: result.judged ? '' : owner.userid,
    ...(result.judged
      ? { grading_calls: result.attempts.filter((a) => a.status !== null && a.status < 300).length }
      : {}),
    model: owner.model,
    day: utcDay(now),
    batch: owner.batch,
    status: result.status,
    tokens: Object.fromEntries(Object.entries(result.usage).filter(([, n]) => n > 0)),
    cost_nano: result.costNano ?? -1,
    latency_bucket: result.latencyMs !== undefined ? latencyBucket(result.latencyMs) : '',
    latency_ms: result.latencyMs ?? 0,
    // A failure's reason, counted by the fold for /metrics.
    ...(result.error ? { reason: result.failureReason ?? result.error.code } : {}),
  };
  const grading = result.grading ?? { id: gradingId(id), lane: gradingLane(id) };
  const keys: FinishKeys = {
    request: k.request(id),
    batch: k.batch(owner.batch),
    lane: k.lane(owner.userid),
    lanes: k.lanes,
    batch_usage: k.usage(owner.project, 'batch', owner.batch),
    batch_requests: k.batchRequests(owner.batch),
    batch_custom_ids: k.batchCustomIds(owner.batch),
    batch_errors: k.batchErrors(owner.batch),
    user_requests: k.userRequests(owner.project, owner.userid),
    reservations: k.batchReservations(owner.batch),
    pending_usage: k.pendingUsage,
    events: k.events,
    body: k.requestBody(id),
    done: k.requestDone(id),
    lease: k.laneLease(owner.userid),
    queue_wait: k.queueWait,
    queue_prioritized: k.queuePrioritized,
    grading: k.request(grading.id),
    grading_body: k.requestBody(grading.id),
    grading_lane: k.lane(grading.lane),
    judged_done: k.requestDone(result.judged?.of ?? id),
  };
  const args: FinishArgs = {
    id,
    status: result.status,
    now,
    ttl_s: ttlS,
    prefix: k.prefix,
    batch: owner.batch,
    userid: owner.userid,
    attempts: result.attempts.length ? result.attempts.map(packedAttempt) : undefined,
    calls: result.attempts.length,
    cost_nano: result.costNano,
    error_code: result.error?.code,
    grade: verdict === 'ungraded' || result.judged ? undefined : verdict,
    grading: result.grading && { ...result.grading, body: encodeBody(result.grading.body) },
    judged_of: result.judged?.of,
    judged_grade: result.judged && JSON.stringify(result.judged.grade),
    verdict: result.judged ? verdict : undefined,
    usage_record: JSON.stringify(record),
    serving_job: servingJob.replace(/^\+/, '') || undefined,
    within_share: servingJob.startsWith('+') || undefined,
    budgeted: owner.budgeted,
    claim: owner.claim,
    lease_ms: leaseMs,
    admission,
    fields,
    response: result.response ? encodeResponse(JSON.stringify(result.response)) : undefined,
  };
  return { keys, args };
}
