import { decodeBody } from '../../shared/body-codec.js';
import type { Grader } from '../../shared/graders/judges.js';
import type { Expect, Grade } from '../../shared/expectations.js';
import type { Usage } from '../../shared/usage/pricing.js';
import type { AttemptEntry, OnFailure, RequestError, UpstreamFields } from '../../shared/request-record.js';

/** What a worker holds of a request: a claimed run, who it belongs to, what its result is, or why it was not run. */

export interface StartedRequest {
  /** The request this run is for (the job's own, or one its lane handed to it). */
  id: string;
  body: Record<string, unknown>;
  userid: string;
  model: string;
  history: 'memory' | 'full';
  /** The messages of the earlier turns and their replies (history "full"); empty otherwise. */
  conversation: Record<string, unknown>[];
  attempt: number;
  batch: string;
  project: string;
  /** The batch has a budget: each run reserves its most costly outcome before calling. */
  budgeted: boolean;
  onFailure: OnFailure;
  /** Expectations to grade the result against (evaluation suites). */
  expect: Expect | null;
  /** Which claim of the request this run is (its lease is taken with it: begin-call.lua). */
  claim: number;
  /**
   * When the call lease taken with the claim ends, on this process's monotonic clock (performance.now()): a lane's
   * next request handed on by a finish is claimed with its first call's lease. Unset once used, or when there is none.
   */
  leasedUntil?: number;
  /** The W3C traceparent of the request's import span (its trace goes on in this run); "" when it has none. */
  traceparent: string;
  /** Since when it waited for this run (ms: its last requeue, else its import); 0 when unknown. */
  waitingSince: number;
  /** Set when this request is a grading (expect.judge): what it judges. */
  judges?: GradingOf;
}

/** What a grading judges: the request, that request's grade so far (its other expectations), the judge's bar, grader. */
export interface GradingOf {
  of: string;
  grade: Grade;
  threshold?: number;
  /** Whose judge reads the answer (chatq's when absent). */
  grader?: Grader;
}

/** The grading request a result makes (finish-request.lua writes it with the result). */
export interface GradingDraft {
  id: string;
  /** Its lane: one of its own, never a user's. */
  lane: string;
  custom_id: string;
  model: string;
  /** GradingOf, as JSON text. */
  judges: string;
  /** The grading call's body, as JSON text. */
  body: string;
}

/** Who a request belongs to: what its result is written under (and whether its batch has a budget, when known). */
export type RequestOwner = Pick<StartedRequest, 'userid' | 'model' | 'batch' | 'project'> &
  Partial<Pick<StartedRequest, 'budgeted' | 'claim'>>;

export interface FinishedRequest {
  status: 'succeeded' | 'failed';
  response?: Record<string, unknown>;
  error?: RequestError;
  /**
   * The failure's reason as the metrics count it, when it came from the upstream: its code when chatq knows it, else
   * "upstream_error" (an upstream's own codes are no label: they would make series without bound). Absent: the code.
   */
  failureReason?: string;
  /** What the upstream's answer says that the result keeps as it is (its HTTP status, its request id). */
  upstream?: UpstreamFields;
  latencyMs?: number;
  usage: Usage;
  costNano: number | undefined;
  conversation?: unknown[];
  /** This run's upstream calls, one entry each (429s and unreachable upstreams included). */
  attempts: AttemptEntry[];
  grade?: Grade;
  /** The grading this result makes (its grade is waiting for a judge). */
  grading?: GradingDraft;
  /** This result is a grading's: the judged request's grade with the verdict in. */
  judged?: { of: string; grade: Grade };
}

/** A request left unsent because its batch stops (being cancelled or expired, its import failed): cancel it with the batch. */
export interface StoppedClaim {
  stoppedBatch: string;
  status: string;
  id: string;
}

/** A claim as claim-request.lua answers it (its header says what each field is). */
export type ClaimReply =
  | {
      state: 'run';
      id: string;
      body: string;
      userid: string;
      model: string;
      history: string;
      conv: string;
      attempt: number;
      batch: string;
      on_failure: string;
      expect: string;
      project: string;
      budgeted: boolean;
      claim: number;
      traceparent: string;
      since: number;
      judges: string;
    }
  | { state: 'wait'; wait_ms: number }
  | { state: 'stopped'; batch: string; status: string; id: string }
  | { state: 'missing' | 'finished' };

/** A claim: a run to make, a turn gap to wait, a stopped batch, or nothing (finished, gone). */
export function toClaim(r: ClaimReply): StartedRequest | { waitMs: number } | StoppedClaim | undefined {
  if (r.state === 'wait') return { waitMs: r.wait_ms };
  if (r.state === 'stopped') return { stoppedBatch: r.batch, status: r.status, id: r.id };
  if (r.state !== 'run') return undefined;
  return {
    id: r.id,
    body: JSON.parse(decodeBody(r.body)) as Record<string, unknown>,
    userid: r.userid,
    model: r.model,
    history: r.history === 'full' ? 'full' : 'memory',
    conversation: r.conv ? (JSON.parse(r.conv) as Record<string, unknown>[]) : [],
    attempt: r.attempt,
    batch: r.batch,
    project: r.project,
    budgeted: r.budgeted,
    claim: r.claim,
    onFailure: r.on_failure === 'halt' ? 'halt' : 'continue',
    expect: r.expect ? (JSON.parse(r.expect) as Expect) : null,
    traceparent: r.traceparent,
    waitingSince: r.since,
    ...(r.judges ? { judges: JSON.parse(r.judges) as GradingOf } : {}),
  };
}
