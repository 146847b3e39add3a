import type { RedisKeys } from '../../shared/keys.js';
import { defineScript } from '../../shared/redis/script-contract.js';

/** acquire-capacity.lua's and settle-capacity.lua's contracts, keys and arguments, apart from any I/O. */

/** While the upstream is down, one call per this interval checks whether it is back. */
const OUTAGE_PROBE_MS = 1_000;
/**
 * How far ahead a call's request slot may be reserved: the call sleeps until it in its call slot. A slot further out
 * is not reserved: the call goes back to the queue (it holds no call slot while it waits) and asks again.
 */
export const RESERVE_AHEAD_MS = 1_000;
/** The window of the RPM and TPM limits. */
const MINUTE_MS = 60_000;
/** The fraction of each window kept free by default. */
export const DEFAULT_HEADROOM = 0.01;

/**
 * The rate-limit scopes, each by name: the limits a call goes through. Each has its keys (its request slots, its token
 * log and the log's amounts), and each call says which apply and with what limits (AcquireScope). A new dimension of
 * capacity is one name here and its entry in `scopesOf`.
 * - global: CHATQ_RPM / CHATQ_TPM;
 * - model: the call's model's own limits (CHATQ_MODEL_LIMITS);
 * - large: the large calls' share of the TPM limit (its tokens only, not smoothed);
 * - project: the call's project's share of the global limits while more than one project asks.
 */
export const SCOPES = ['global', 'model', 'large', 'project'] as const;
export type ScopeName = (typeof SCOPES)[number];

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

/** The key name of each scope a call goes through (unused ones: UNUSED_SCOPE). */
function scopeKeyNames({ model, large, project }: CallScopes): Record<ScopeName, string> {
  return {
    global: 'global',
    model: model ? `model:${model}` : UNUSED_SCOPE,
    large: large ? 'large' : UNUSED_SCOPE,
    project: `project:${project}`,
  };
}

/** One scope of an ask: its limits (0: none) over its window; smoothed (a sixth of the limit per sixth of the window); a share (the project's). */
export interface AcquireScope {
  name: ScopeName;
  rpm: number;
  tpm: number;
  window_ms: number;
  smooth: boolean;
  share: boolean;
}

type ScopeKey = `${ScopeName}_requests` | `${ScopeName}_log` | `${ScopeName}_amounts`;
const scopeKeys = (kind: 'requests' | 'log' | 'amounts') => SCOPES.map((s) => `${s}_${kind}` as ScopeKey);
const gateKeys = [
  'pause_until',
  'paused',
  'credentials_proven',
  'credentials_probe',
  'outage',
  'outage_until',
  'outage_probe',
] as const;

interface AcquireArgs {
  /** Unique per call, or per group. */
  member: string;
  /** Estimated tokens (a group's: their sum). */
  tokens: number;
  /** The fraction of each window kept free, 0..0.5. */
  headroom: number;
  /** The scopes that apply, in order. */
  scopes: AcquireScope[];
  probe_lease_ms: number;
  /** The outage probe's interval. */
  outage_probe_ms: number;
  /**
   * Reserved together: 1, or a group of one process's calls (consecutive request slots, their tokens as one log entry;
   * a group is not reserved as a probe or during an outage's backoff, where one call at a time goes).
   */
  calls: number;
  /** How far ahead a request slot may be reserved. */
  ahead_ms: number;
  project: string;
  /** Each project's weight (1 when absent). */
  weights: Record<string, number>;
  /** How long after its last ask a project still counts as asking. */
  active_ms: number;
}

/** acquire-capacity.lua's answer. */
export interface AcquireReply {
  /** 1 reserved, 2 reserved as the probe, 0 not reserved, -1 the queue is paused. */
  state: number;
  /** Reserved: before calling; not reserved: before asking again. */
  wait_ms: number;
  /** 1 while an outage is on record: a success should end it. */
  outage: number;
  /** Reserved: the ms between the group's request slots. */
  spacing_ms: number;
  /** The global token log's total after the ask. */
  global_tokens: number;
}

export const acquireScript = defineScript<AcquireArgs, AcquireReply>()({
  file: new URL('./acquire-capacity.lua', import.meta.url),
  keys: [...gateKeys, ...scopeKeys('requests'), ...scopeKeys('log'), ...scopeKeys('amounts'), 'projects'],
  args: {
    member: 'string',
    tokens: 'whole',
    headroom: 'number',
    scopes: 'list',
    probe_lease_ms: 'whole',
    outage_probe_ms: 'whole',
    calls: 'whole',
    ahead_ms: 'whole',
    project: 'string',
    weights: 'table',
    active_ms: 'whole',
  },
});

export const settleScript = defineScript<
  {
    member: string;
    /** The call's real tokens. */
    tokens: number;
    /** The scopes it was charged in. */
    scopes: ScopeName[];
  },
  Record<string, never>
>()({
  file: new URL('./settle-capacity.lua', import.meta.url),
  keys: [...scopeKeys('log'), ...scopeKeys('amounts')],
  args: { member: 'string', tokens: 'whole', scopes: 'list' },
});

/** A call made on a worker's own share: its log entry, how long ago it was made, and its tokens. */
export interface OwnEntry {
  member: string;
  ago_ms: number;
  tokens: number;
}

export const leaveOwnShareScript = defineScript<
  {
    /** How long after the first worker's answer they all go back to the global limit. */
    switch_ms: number;
    /** The worker's own calls of the last window, into the global token log. */
    entries: OwnEntry[];
    /** The token log's window (with its headroom). */
    window_ms: number;
  },
  { switch_in_ms: number }
>()({
  file: new URL('./leave-own-share.lua', import.meta.url),
  // When the workers go back, and the global token log with its amounts.
  keys: ['returning', 'log', 'amounts'],
  args: { switch_ms: 'whole', entries: 'list', window_ms: 'number' },
});

type AcquireKeys = Parameters<typeof acquireScript.run>[1];

/** The keys of every scope (those a call does not go through: named, never touched). */
function allScopeKeys(k: RedisKeys, scopes: CallScopes) {
  const names = scopeKeyNames(scopes);
  const keys = {} as Record<ScopeKey, string>;
  for (const s of SCOPES) {
    keys[`${s}_requests`] = k.limitRequests(names[s]);
    keys[`${s}_log`] = k.limitTokenLog(names[s]);
    keys[`${s}_amounts`] = k.limitTokens(names[s]);
  }
  return keys;
}

/** acquire-capacity.lua's keys: the gate's (pauses, credentials, outage), each scope's, the projects asking. */
export const acquireKeys = (k: RedisKeys, scopes: CallScopes): AcquireKeys => ({
  pause_until: k.rateLimitPause,
  paused: k.pauseReason,
  credentials_proven: k.credentialsProven,
  credentials_probe: k.credentialsProbe,
  outage: k.outage,
  outage_until: k.outageUntil,
  outage_probe: k.outageProbe,
  ...allScopeKeys(k, scopes),
  projects: k.limitProjects,
});

type SettleKeys = Parameters<typeof settleScript.run>[1];

/** settle-capacity.lua's keys and the scopes a call was charged in (its token log and amounts in each). */
export function settleCall(k: RedisKeys, scopes: CallScopes): { keys: SettleKeys; charged: ScopeName[] } {
  const keys = Object.fromEntries(
    Object.entries(allScopeKeys(k, scopes)).filter(([name]) => !name.endsWith('_requests')),
  ) as SettleKeys;
  const charged = SCOPES.filter((s) => (s === 'model' ? scopes.model : s === 'large' ? scopes.large : true));
  return { keys, charged };
}

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

/** The scopes an ask goes through, with their limits. */
function scopesOf(limits: { rpm: number; tpm: number }, ask: AcquireAsk): AcquireScope[] {
  const scope = (name: ScopeName, rpm: number, tpm: number, more: Partial<AcquireScope> = {}): AcquireScope => ({
    name,
    rpm,
    tpm,
    window_ms: MINUTE_MS,
    smooth: true,
    share: false,
    ...more,
  });
  return [
    scope('global', limits.rpm, limits.tpm),
    scope('model', ask.modelRpm, ask.modelTpm),
    ...(ask.largeTpm > 0 ? [scope('large', 0, ask.largeTpm, { smooth: false })] : []),
    scope('project', limits.rpm, limits.tpm, { share: true }),
  ];
}

/** acquire-capacity.lua's arguments. */
export function acquireArgs(
  limits: { rpm: number; tpm: number; lockMs: number; headroom?: number; weights: Record<string, number> },
  ask: AcquireAsk,
): AcquireArgs {
  return {
    member: ask.member,
    tokens: ask.tokens,
    headroom: limits.headroom ?? DEFAULT_HEADROOM,
    scopes: scopesOf(limits, ask),
    probe_lease_ms: limits.lockMs,
    outage_probe_ms: OUTAGE_PROBE_MS,
    calls: ask.calls,
    ahead_ms: RESERVE_AHEAD_MS,
    project: ask.project,
    weights: limits.weights,
    active_ms: PROJECT_ACTIVE_MS,
  };
}
