import type { AdmissionArg } from '../../shared/redis/admission.js';
import { defineScript } from '../../shared/redis/script-contract.js';
import type { ClaimReply } from './request-claims.js';

/** The contracts of the request store's scripts (request-store.ts runs them; finish-request's is in finish-call.ts). */

/** Claims the request a job serves for one run (start-request.lua). */
export const startScript = defineScript<
  {
    now: number;
    /** The key prefix: the lane, a handed-over head, the previous turn of a "full" history script (same slot). */
    prefix: string;
    job: string;
    /** The lease (ms: timeout and margin) the claim takes for the run's first call (left out: begin-call.lua takes it). */
    lease_ms: number | undefined;
    admission: AdmissionArg;
  },
  /** Heads to add to BullMQ (from the backlog), and the claim. */
  { refill: string[]; claim: ClaimReply }
>()({
  file: new URL('./start-request.lua', import.meta.url),
  // The job's own request (its body is the string beside it).
  keys: ['request'],
  args: { now: 'whole', prefix: 'string', job: 'string', lease_ms: 'whole?', admission: 'table' },
});

/** Puts a running request back to waiting (requeue-request.lua). */
export const requeueScript = defineScript<
  {
    id: string;
    /** This run's attempt entries (JSON objects without brackets; "" when none). */
    entries: string;
    /** Upstream calls made in this run. */
    calls: number;
    /** The last error (JSON text; left out: the one on record stays). */
    error: string | undefined;
    status: 'retrying' | 'queued';
    /** The run's claim number: a run taken over since (another claimed the request) changes nothing. */
    claim: number;
    /**
     * The run's call may still be running at the upstream (it timed out, or its connection broke): its lease stands
     * until its deadline and margin, so that no call of the user starts before then.
     */
    keep_lease: boolean;
    /** When it may go again (ms): it waits in its project's backlog until then (left out: its job waits in BullMQ). */
    defer_until: number | undefined;
    project: string;
  },
  /** The request's status now ("missing" when gone, "taken" when another run claimed it since). */
  { status: string }
>()({
  file: new URL('./requeue-request.lua', import.meta.url),
  // The request, its batch's budget reservations, the user's call lease, its project's backlog, the projects with
  // heads queued or held back.
  keys: ['request', 'reservations', 'lease', 'backlog', 'projects'],
  args: {
    id: 'string',
    entries: 'string',
    calls: 'whole',
    error: 'string?',
    status: 'string',
    claim: 'whole',
    keep_lease: 'boolean',
    defer_until: 'whole?',
    project: 'string',
  },
});

/** Reserves the most a call can cost against its batch's budget (reserve-budget.lua). */
export const reserveScript = defineScript<
  {
    id: string;
    /** This call's bound (nano-USD). */
    bound: number;
  },
  /** "reserved" (or the batch has no budget), "wait" (calls in flight may leave room), "never" (it cannot fit). */
  { outcome: 'reserved' | 'wait' | 'never' }
>()({
  file: new URL('./reserve-budget.lua', import.meta.url),
  // The batch, its usage (cost_nano spent) and its reservations (request id -> nano-USD).
  keys: ['batch', 'batch_usage', 'reservations'],
  args: { id: 'string', bound: 'whole' },
});

/** Which request a job serves, without claiming it (find-served-request.lua). */
export const findServedScript = defineScript<
  {
    /** The key prefix (the lane and a handed-over head: same slot). */
    prefix: string;
    job: string;
  },
  /** The request id (absent: none). */
  { id?: string }
>()({
  file: new URL('./find-served-request.lua', import.meta.url),
  // The job's own request.
  keys: ['request'],
  args: { prefix: 'string', job: 'string' },
});

/** Takes the user's call lease just before a call is sent (begin-call.lua). */
export const beginCallScript = defineScript<
  {
    id: string;
    /** The run's claim number (the request's `claims` when it was claimed). */
    claim: number;
    /** The call timeout and the margin (ms). */
    timeout_ms: number;
    margin_ms: number;
  },
  /** Whether the call may go; when not, why (the request's status, or "leased": another run's call may be out). */
  { go: boolean; reason?: string }
>()({
  file: new URL('./begin-call.lua', import.meta.url),
  keys: ['request', 'lease'],
  args: { id: 'string', claim: 'whole', timeout_ms: 'whole', margin_ms: 'whole' },
});
