import type { RedisKeys } from '../shared/keys.js';
import { packArgs } from '../shared/redis/redis.js';

/** acquire-capacity.lua's keys and arguments, apart from any I/O. */

/** While the upstream is down, one call per this interval checks whether it is back. */
const OUTAGE_PROBE_MS = 1_000;

/** A rate-limit scope's keys: its request slots, its token log and the log's amounts (settle-capacity.lua takes the last two). */
export const scopeKeys = (k: RedisKeys, scope: string) => [
  k.limitRequests(scope),
  k.limitTokenLog(scope),
  k.limitTokens(scope),
];

/** acquire-capacity.lua's keys: the gate's (pauses, credentials, outage), then each scope's (global, model, large). */
export const acquireKeys = (k: RedisKeys, ...scopes: string[]): string[] => [
  k.rateLimitPause,
  k.pauseReason,
  k.credentialsProven,
  k.credentialsProbe,
  k.outage,
  k.outageUntil,
  k.outageProbe,
  ...scopes.flatMap((scope) => scopeKeys(k, scope)),
];

/** What one ask reserves: `calls` calls of `tokens` in all, under `member`, with the model's limits and the large calls' share. */
export interface AcquireAsk {
  member: string;
  tokens: number;
  calls: number;
  modelRpm: number;
  modelTpm: number;
  largeTpm: number;
}

/** acquire-capacity.lua's named arguments (its header says what each one means), packed. */
export function acquireArgs(limits: { rpm: number; tpm: number; lockMs: number; headroom?: number }, ask: AcquireAsk) {
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
  });
}
