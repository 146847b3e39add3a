import type { RedisKeys } from '../../shared/keys.js';
import { packArgs } from '../../shared/redis/redis.js';

/** acquire-capacity.lua's keys and arguments, apart from any I/O. */

/** While the upstream is down, one call per this interval checks whether it is back. */
const OUTAGE_PROBE_MS = 1_000;
/**
 * How far ahead a call's request slot may be reserved: the call sleeps until it in its call slot. A slot further out
 * is not reserved: the call goes back to the queue (it holds no call slot while it waits) and asks again.
 */
export const RESERVE_AHEAD_MS = 1_000;

/** A rate-limit scope's keys: its request slots, its token log and the log's amounts (settle-capacity.lua takes the last two). */
export const scopeKeys = (k: RedisKeys, scope: string) => [
  k.limitRequests(scope),
  k.limitTokenLog(scope),
  k.limitTokens(scope),
];

/** A scope that does not apply to a call: named (its slot's), never touched. */
const UNUSED_SCOPE = 'global:none';

/**
 * How long after its last ask a project still counts among those sharing the limits: longer than a call that found
 * no room stays out of the queue (5 s), so that a project waiting for room keeps its share.
 */
export const PROJECT_ACTIVE_MS = 12_000;

/** The scopes a call goes through: its model's (when it has limits of its own), the large calls' (a large call), its project's. */
export interface CallScopes {
  model?: string | undefined;
  large?: boolean | undefined;
  project: string;
}

/** acquire-capacity.lua's keys: the gate's (pauses, credentials, outage), each scope's (global, model, large, project), the projects asking. */
export const acquireKeys = (k: RedisKeys, { model, large, project }: CallScopes): string[] => [
  k.rateLimitPause,
  k.pauseReason,
  k.credentialsProven,
  k.credentialsProbe,
  k.outage,
  k.outageUntil,
  k.outageProbe,
  ...scopeKeys(k, 'global'),
  ...scopeKeys(k, model ? `model:${model}` : UNUSED_SCOPE),
  ...scopeKeys(k, large ? 'large' : UNUSED_SCOPE),
  ...scopeKeys(k, `project:${project}`),
  k.limitProjects,
];

/** settle-capacity.lua's keys: the token log and amounts of each scope a call was charged in. */
export const settleKeys = (k: RedisKeys, { model, large, project }: CallScopes): string[] =>
  ['global', ...(model ? [`model:${model}`] : []), ...(large ? ['large'] : []), `project:${project}`].flatMap((scope) =>
    scopeKeys(k, scope).slice(1),
  );

/** What one ask reserves: `calls` calls of `tokens` in all, under `member`, with the model's limits and the large calls' share. */
export interface AcquireAsk {
  member: string;
  tokens: number;
  calls: number;
  modelRpm: number;
  modelTpm: number;
  largeTpm: number;
  project: string;
}

/** acquire-capacity.lua's named arguments (its header says what each one means), packed. */
export function acquireArgs(
  limits: { rpm: number; tpm: number; lockMs: number; headroom?: number; weightsText: string },
  ask: AcquireAsk,
) {
  return packArgs({
    member: ask.member,
    tokens: ask.tokens,
    headroom: limits.headroom ?? 0.01,
    rpm: limits.rpm,
    tpm: limits.tpm,
    model_rpm: ask.modelRpm,
    model_tpm: ask.modelTpm,
    probe_lease_ms: limits.lockMs,
    outage_probe_ms: OUTAGE_PROBE_MS,
    calls: ask.calls,
    large_tpm: ask.largeTpm,
    ahead_ms: RESERVE_AHEAD_MS,
    project: ask.project,
    weights: limits.weightsText,
    active_ms: PROJECT_ACTIVE_MS,
  });
}
