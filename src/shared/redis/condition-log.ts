import type { Logger } from '../logger.js';
import { describeRedisError } from './redis-errors.js';

/** How long one line stands for every failure of the same Redis condition. */
const QUIET_MS = 30_000;
const lastLogged = new Map<string, { at: number; folded: number }>();

/**
 * BullMQ's word that a job's lock lapsed (its renewal failed, or it was gone when the job ended): Redis was out of reach
 * or slow past CHATQ_LOCK_MS. One line per outage, as for Redis itself, not one per job.
 */
function jobLockLost(message: string): { code: string; message: string } | null {
  if (!/could not renew lock for job|Missing lock for job|Lock mismatch for job/i.test(message)) return null;
  return {
    code: 'job_lock_lost',
    message:
      "jobs' locks lapsed (Redis out of reach or slow past CHATQ_LOCK_MS): their requests go on, or are taken over once their call leases end",
  };
}

/**
 * Logs a failure, once per Redis condition (out of memory, unreachable, a refused command) per QUIET_MS in this
 * process: a full Redis makes every job, pass and dispatch fail the same way, and one line says so. The next line of
 * that condition says how many failures were folded into the last. Other failures are logged as they come.
 */
export function logFailure(
  logger: Logger,
  level: 'warn' | 'error',
  fields: Record<string, unknown>,
  err: unknown,
  msg: string,
): void {
  const message = err instanceof Error ? err.message : String(err);
  const problem = describeRedisError(err) ?? jobLockLost(message);
  if (!problem) {
    logger[level]({ ...fields, err: message }, msg);
    return;
  }
  const now = Date.now();
  const last = lastLogged.get(problem.code);
  if (last && now - last.at < QUIET_MS) {
    last.folded += 1;
    return;
  }
  lastLogged.set(problem.code, { at: now, folded: 0 });
  logger[level](
    { ...fields, err: message, condition: problem.code, ...(last?.folded ? { folded: last.folded } : {}) },
    `${problem.message} (${msg}; the same condition is logged again in ${QUIET_MS / 1000} s at the earliest)`,
  );
}
