import type { Logger } from '../logger.js';
import { describeRedisError } from './redis-errors.js';

/** How long one line stands for every failure of the same Redis condition. */
const QUIET_MS = 30_000;
const lastLogged = new Map<string, { at: number; folded: number }>();

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
  const problem = describeRedisError(err);
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
