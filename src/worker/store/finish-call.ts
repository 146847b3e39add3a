import { latencyBucket } from '../../shared/latency-buckets.js';
import type { RedisKeys } from '../../shared/keys.js';
import { packArgs } from '../../shared/redis/redis.js';
import type { AttemptEntry } from '../../shared/request-record.js';
import { encodeResponse } from '../../shared/response-codec.js';
import type { FinishedRequest, RequestOwner } from './request-claims.js';
import { verdictOfGrade } from '../../shared/expectations.js';

/** finish-request.lua's named arguments (its header says what each one means); left out when undefined. */
interface FinishArgs {
  id: string;
  status: 'succeeded' | 'failed';
  now: number;
  ttl_s: number;
  prefix: string;
  batch: string;
  userid: string;
  attempt_log: string | undefined;
  calls: number;
  cost_nano: number | undefined;
  error_code: string | undefined;
  grade: 'pass' | 'fail' | undefined;
  usage_record: string;
  serving_job: string | undefined;
  budgeted: boolean | undefined;
  claim: number | undefined;
  lease_ms: number | undefined;
  admission: string;
  within_share: boolean | undefined;
  grading: string | undefined;
  judged_of: string | undefined;
  judged_grade: string | undefined;
  verdict: 'pass' | 'fail' | 'ungraded' | undefined;
}

/** finish-request.lua's named answer. */
export interface FinishReply {
  outcome: 'ok' | 'duplicate' | 'missing';
  next_head: string;
  handed: number;
  wait_ms: number;
  /** The lane's next request, claimed for the serving job (claim-request.lua's answer): only when handed. */
  claim?: (string | number)[];
  /** The grading request this result made, admitted to BullMQ at once (else "": it waits in its project's backlog). */
  grading_head?: string;
}

/** Keys 18-21: the grading a result makes (its hash, body and lane) and the record of the request a grading judges. */
function gradingKeys(k: RedisKeys, id: string, result: FinishedRequest): string[] {
  const grading = result.grading ?? { id: gradingId(id), lane: gradingLane(id) };
  return [
    k.request(grading.id),
    k.requestBody(grading.id),
    k.lane(grading.lane),
    k.requestDone(result.judged?.of ?? id),
  ];
}

/** A request's grading: its id and its lane (one of its own). */
export const gradingId = (id: string) => `${id}-judge`;
export const gradingLane = (id: string) => `judge:${id}`;

/** A run's attempt entries as finish-request.lua and requeue-request.lua take them (JSON objects, no brackets). */
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
    admission: string;
  },
): { keys: string[]; args: ReturnType<typeof packArgs> } {
  const now = Date.now();
  const fields: (string | number)[] = [];
  const set = (field: string, value: string | number | null | undefined) => {
    if (value !== undefined && value !== null && value !== '') fields.push(field, value);
  };
  const u = result.usage;
  set('error', result.error && JSON.stringify(result.error));
  set('http_status', result.httpStatus);
  set('upstream_request_id', result.upstreamRequestId);
  set('latency_ms', result.latencyMs);
  set('conv', result.conversation && JSON.stringify(result.conversation));
  set('grade', result.grade && JSON.stringify(result.grade));
  const grade = result.judged?.grade ?? result.grade;
  // A grade waiting for its judge is counted when the judgement is written (by the grading's finish).
  const verdict = grade && !result.grading ? verdictOfGrade(grade) : undefined;
  set('cost_nano', result.costNano);
  // A count of zero is not written (readers take a missing one as 0): fewer fields, a smaller hash.
  for (const [field, n] of Object.entries(u)) if (n > 0) fields.push(field, n);
  const p = owner.project;
  // The usage record names its aggregates by project and names; fold-usage.lua builds their keys.
  const record = {
    p,
    // A grading belongs to no user: its usage is the batch's, model's and day's, as grading spend (g: the judge's
    // calls it paid for, re-asks included; none for a grading never sent).
    u: result.judged ? '' : owner.userid,
    ...(result.judged ? { g: result.attempts.filter((a) => a.status !== null && a.status < 300).length } : {}),
    m: owner.model,
    d: utcDay(now),
    b: owner.batch,
    s: result.status,
    t: [u.prompt_tokens, u.completion_tokens, u.total_tokens, u.cached_tokens, u.reasoning_tokens],
    c: result.costNano ?? -1,
    l: result.latencyMs !== undefined ? latencyBucket(result.latencyMs) : '',
    ms: result.latencyMs ?? 0,
    // A failure's reason, counted by the fold for /metrics.
    ...(result.error ? { e: result.failureReason ?? result.error.code } : {}),
  };
  const keys = [
    k.request(id),
    k.batch(owner.batch),
    k.lane(owner.userid),
    k.lanes,
    k.usage(p, 'batch', owner.batch),
    k.batchRequests(owner.batch),
    k.batchCustomIds(owner.batch),
    k.batchErrors(owner.batch),
    k.userRequests(p, owner.userid),
    k.batchReservations(owner.batch),
    k.pendingUsage,
    k.events,
    k.requestBody(id),
    k.requestDone(id),
    k.laneLease(owner.userid),
    k.queueWait,
    k.queuePrioritized,
    ...gradingKeys(k, id, result),
  ];
  const args = packArgs(
    {
      id,
      status: result.status,
      now,
      ttl_s: ttlS,
      prefix: k.prefix,
      batch: owner.batch,
      userid: owner.userid,
      attempt_log: entriesText(result.attempts) || undefined,
      calls: result.attempts.length,
      cost_nano: result.costNano,
      error_code: result.error?.code,
      grade: verdict === 'ungraded' || result.judged ? undefined : verdict,
      grading: result.grading && JSON.stringify(result.grading),
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
    } satisfies FinishArgs,
    result.response ? encodeResponse(JSON.stringify(result.response)) : '',
    ...fields,
  );
  return { keys, args };
}
