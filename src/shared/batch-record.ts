import { DEFAULT_PROJECT } from './keys.js';
import { maybeJson, maybeNum, num } from './request-record.js';

/** The stored shape of one batch (a Redis hash), as every part of chatq reads it. */

/** "expiring": its completion window ended, the calls in flight finish (shown as OpenAI's "finalizing"). */
export type BatchStatus =
  | 'validating'
  | 'in_progress'
  | 'completed'
  | 'cancelling'
  | 'cancelled'
  | 'failed'
  | 'expiring'
  | 'expired';

export interface BatchRecord {
  id: string;
  project: string;
  name: string;
  status: BatchStatus;
  input: string;
  createdAt: number;
  inProgressAt: number | null;
  completedAt: number | null;
  cancelledAt: number | null;
  /** Requests in the batch: final once the input is read, the count so far while it is being imported. */
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  skipped: number;
  /** Requests not done within the completion window. */
  expired: number;
  rejectedLines: number;
  metadata: Record<string, string>;
  /** Final failures by error code. */
  errors: Record<string, number>;
  /** Requests with expectations that passed / failed their grading. */
  evalPass: number;
  evalFail: number;
  /** Requests whose judge gave no verdict (expect.judge). */
  evalUngraded: number;
  /** Gradings not written yet: the batch ends when they are. */
  judging: number;
  inputFileId: string | null;
  /** Cancel asked while the batch was still being imported. */
  cancelRequested: boolean;
  maxCostNano: number | null;
  cancellingAt: number | null;
  failedAt: number | null;
  /** Why the import stopped before the end of its input (status "failed"), with how many requests it had enqueued. */
  importError: { code: string; message: string; enqueued: number } | null;
  /** The completion window as given ("24h") and when it ends (ms); null: none. */
  completionWindow: string | null;
  expiresAt: number | null;
  expiredAt: number | null;
  /** A memory benchmark run: which benchmark its input was (its questions report in that paper's shape). */
  benchmark: 'longmemeval' | 'locomo' | null;
}

export function toBatchRecord(id: string, h: Record<string, string>): BatchRecord | null {
  if (!h.status) return null;
  return {
    id,
    project: h.project || DEFAULT_PROJECT,
    name: h.name ?? '',
    status: h.status as BatchStatus,
    input: h.input ?? '',
    createdAt: num(h.created_at),
    inProgressAt: maybeNum(h.in_progress_at),
    completedAt: maybeNum(h.completed_at),
    cancelledAt: maybeNum(h.cancelled_at),
    total: num(h.total) || num(h.enqueued),
    succeeded: num(h.succeeded),
    failed: num(h.failed),
    cancelled: num(h.cancelled),
    skipped: num(h.skipped),
    expired: num(h.expired),
    rejectedLines: num(h.rejected_lines),
    metadata: maybeJson<Record<string, string>>(h.metadata) ?? {},
    evalPass: num(h.eval_pass),
    evalFail: num(h.eval_fail),
    evalUngraded: num(h.eval_ungraded),
    judging: num(h.judging),
    inputFileId: h.input_file_id ?? null,
    cancelRequested: h.cancel_requested !== undefined,
    maxCostNano: maybeNum(h.max_cost_nano),
    cancellingAt: maybeNum(h.cancelling_at),
    failedAt: maybeNum(h.failed_at),
    importError: maybeJson(h.import_error),
    completionWindow: h.completion_window ?? null,
    expiresAt: maybeNum(h.expires_at),
    expiredAt: maybeNum(h.expired_at),
    benchmark: h.benchmark === 'longmemeval' || h.benchmark === 'locomo' ? h.benchmark : null,
    errors: Object.fromEntries(
      Object.entries(h)
        .filter(([k]) => k.startsWith('error:'))
        .map(([k, v]) => [k.slice(6), Number(v)]),
    ),
  };
}

export const batchDone = (b: BatchRecord) => b.succeeded + b.failed + b.cancelled + b.skipped + b.expired;
/** A batch that will change no more. */
/** The status a batch ends in when its last request is done, by the status it had then (a cancel asked, past its window). */
export const BATCH_FINAL_STATUS = {
  in_progress: 'completed',
  cancelling: 'cancelled',
  expiring: 'expired',
} as const satisfies Partial<Record<BatchStatus, BatchStatus>>;
/** The statuses a batch ends in: the final ones, or failed (its import failed). */
export const ENDED_BATCH_STATUSES: readonly BatchStatus[] = [...Object.values(BATCH_FINAL_STATUS), 'failed'];
export const batchEnded = (s: string) => ENDED_BATCH_STATUSES.includes(s as BatchStatus);
