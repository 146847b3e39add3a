import type { RedisClient } from '../../shared/redis/redis.js';
import { defineScript } from '../../shared/redis/script-contract.js';
import type { RedisKeys } from '../../shared/keys.js';
import { estimatePromptTokens, replyBound } from '../../shared/token-bounds.js';
import { GroupedReservations, type ReservedGroup } from './grouped-reservations.js';
import {
  type AcquireReply,
  acquireArgs,
  acquireKeys,
  acquireScript,
  type CallScopes,
  leaveOwnShareScript,
  DEFAULT_HEADROOM,
  RESERVE_AHEAD_MS,
  settleCall,
  settleScript,
} from './acquire-call.js';
import { DEFAULT_PROJECT } from '../../shared/keys.js';
import { StoppableWaits } from './stoppable-waits.js';
import { UpstreamGate } from './upstream-gate.js';
import { endLease, keepLease } from './held-lease.js';
import { BaseReach } from './base-reach.js';

const noteOutageScript = defineScript<
  {
    /** The backoff's base and cap (ms). */
    base_ms: number;
    cap_ms: number;
    /** Jitter, in [0, 1]. */
    jitter: number;
  },
  /** The ms left of the backoff. */
  { wait_ms: number }
>()({
  file: new URL('./note-outage.lua', import.meta.url),
  // The outage record (a hash: round) and outage-until (expires when the backoff ends).
  keys: ['outage', 'outage_until'],
  args: { base_ms: 'whole', cap_ms: 'whole', jitter: 'number' },
});

export interface Limits {
  rpm: number;
  tpm: number;
  modelLimits: Record<string, { rpm?: number; tpm?: number }>;
  /** Tokens assumed for the reply when the body has no max_tokens / max_completion_tokens. */
  defaultMaxTokens: number;
  /** The credentials probe's lease: a killed prober frees it within this time (the job lock duration). */
  lockMs: number;
  /** Base of the shared backoff while the upstream cannot be reached. */
  backoffMs?: number;
  /** Fraction of each window left unused, to absorb clock and network jitter (default 1%). */
  headroom?: number;
  /**
   * A call whose token bound is over this share of the TPM limit is large: it is charged half that share before the
   * call (its real usage after), large calls together hold at most that share of any minute, and a large call waits
   * for room outside the call slots (CHATQ_LARGE_CALL_SHARE, default 0.1; at most 0.33, so that a charge fits a sixth
   * of the window).
   */
  largeShare?: number;
  /** Each project's weight in the shares of the global limits (CHATQ_PROJECT_WEIGHTS; 1 when absent). */
  projectWeights?: Record<string, number>;
}

export interface Reservation {
  member: string;
  estimate: number;
  model: string;
  /** This call proves the credentials for everyone (the first call, or the first after a pause). */
  probe: boolean;
  /** An upstream outage is on record: this call's success ends it. */
  outage: boolean;
  /** Reserved with other calls of this process in one step: their tokens are one log entry, settled once. */
  group?: ReservedGroup;
  /** A large call: charged to the large-call scope too. */
  large?: boolean;
  /** Made on the worker's own share while the base tag was away: its tokens are in the worker's own log. */
  own?: boolean;
  /** The call's project (its scope holds the project's share while other projects ask too). */
  project: string;
}

/** Why no reservation was made: paused or stopping; the request's batch is being cancelled; a large call, come back later. */
export type NotReserved = 'paused' | 'cancelled' | { laterMs: number };
export const isReservation = (r: unknown): r is Reservation => typeof r === 'object' && r !== null && 'member' in r;

const DEFAULT_LARGE_SHARE = 0.1;

/** Longest sleep before asking again while not reserved: a pause that ends early is noticed within it. */
const RECHECK_MS = 1_000;
const OUTAGE_CAP_MS = 30_000;
/** The longest a call that found no room stays out of the queue before it asks again. */
const LATER_MOST_MS = 5_000;
/**
 * Global request and token limits, shared by every worker process through Redis, plus the pauses every worker
 * honours (after a 429, during an outage, or while the queue is paused). Waiting here is not an attempt.
 */
export class CapacityLimiter {
  private counter = 0;
  /** Pauses and proven credentials, read at most every 200 ms: without RPM/TPM limits, all a call checks. */
  private readonly gate: UpstreamGate;
  /** Ended when the worker stops: waits end at once and their requests go back to the queue. */
  private readonly waits = new StoppableWaits();
  /** Lease renewals of probes in flight (their stops), by member. */
  private readonly renewals = new Map<string, () => void>();
  /**
   * Calls under the global limits alone, reserved together with the others of this process that ask meanwhile: one
   * group at a time per project (each project's calls are charged to its own share).
   */
  private readonly groups = new Map<string, GroupedReservations>();

  /** The connection its commands go on (a pool's: the first of its script connections that is connected). */
  private readonly connection: () => RedisClient;

  /** The base tag's answers, and the worker's own share of the limits while they do not come. */
  private readonly base: BaseReach;

  constructor(
    redis: RedisClient | (() => RedisClient),
    private readonly keys: RedisKeys,
    private readonly limits: Limits,
    private readonly owner: string,
    /** The live workers as last read (0: not known; then no call goes while the base tag is out of reach). */
    workers: () => number = () => 0,
  ) {
    this.connection = typeof redis === 'function' ? redis : () => redis;
    this.gate = new UpstreamGate(this.connection, keys);
    this.base = new BaseReach(
      { rpm: limits.rpm, tpm: limits.tpm, headroom: limits.headroom ?? DEFAULT_HEADROOM, aheadMs: RESERVE_AHEAD_MS },
      workers,
      async (switchMs, entries, windowMs) =>
        (
          await leaveOwnShareScript.run(
            this.connection(),
            { returning: keys.limitReturning, log: keys.limitTokenLog('global'), amounts: keys.limitTokens('global') },
            { switch_ms: switchMs, entries, window_ms: windowMs },
          )
        ).switch_in_ms,
    );
  }

  /** The group reservations of a project's calls (made on first use). */
  private groupOf(project: string): GroupedReservations {
    let group = this.groups.get(project);
    if (!group) {
      group = new GroupedReservations(
        { rpm: this.limits.rpm, tpm: this.limits.tpm, headroom: this.limits.headroom ?? DEFAULT_HEADROOM },
        (tokens, calls) => this.reserveGlobal(tokens, calls, project),
      );
      this.groups.set(project, group);
    }
    return group;
  }

  private modelLimit(model: string) {
    return this.limits.modelLimits[model] ?? {};
  }

  /** Whether an RPM/TPM limit (global, or any model's) may hold a call back after its request is claimed. */
  get limitsCalls(): boolean {
    return (
      this.limits.rpm > 0 ||
      this.limits.tpm > 0 ||
      Object.values(this.limits.modelLimits).some((m) => (m.rpm ?? 0) > 0 || (m.tpm ?? 0) > 0)
    );
  }

  private limited(model: string): boolean {
    const m = this.modelLimit(model);
    return this.limits.rpm > 0 || this.limits.tpm > 0 || (m.rpm ?? 0) > 0 || (m.tpm ?? 0) > 0;
  }

  /** The worker is stopping: no new work is taken on. */
  get stopping(): boolean {
    return this.waits.stopped;
  }

  /** Ends every wait: calls not yet made give their requests back (see acquire). */
  stop(): void {
    this.waits.stop();
  }

  /**
   * The tokens large calls may hold together in a minute (the share of the smallest TPM limit that applies), when
   * this call is one: its bound is over that share. 0 for an ordinary call.
   */
  private largeCallsShare(model: string, bound: number): number {
    const tpms = [this.limits.tpm, this.modelLimit(model).tpm ?? 0].filter((t) => t > 0);
    if (tpms.length === 0) return 0;
    const share = Math.max(2, Math.floor(Math.min(...tpms) * (this.limits.largeShare ?? DEFAULT_LARGE_SHARE)));
    return bound > share ? share : 0;
  }

  /**
   * Reserves the call's capacity, or says when to ask again. Not reserved: 'paused' when the queue was paused
   * meanwhile or the worker is stopping (the request goes back to the queue, no attempt spent); 'cancelled' when
   * `stillWanted` (asked while it waits for the credentials' probe) says the request's batch is being cancelled;
   * `{laterMs}` when there is no room now (tokens, a request slot within RESERVE_AHEAD_MS, an outage's backoff): the
   * call waits outside the call slots, its request back in the queue. A reserved request slot up to RESERVE_AHEAD_MS
   * ahead is slept out here. `promptTokens` gives the body's prompt estimate when the caller has it already (a run
   * asks again after each 429 or outage round).
   */
  async acquire(
    model: string,
    body: Record<string, unknown>,
    {
      project = DEFAULT_PROJECT,
      promptTokens = () => estimatePromptTokens(body),
      stillWanted,
    }: { project?: string; promptTokens?: () => number; stillWanted?: () => Promise<boolean> } = {},
  ): Promise<Reservation | NotReserved> {
    if (this.waits.stopped) return 'paused';
    if (!this.limited(model) && (await this.gate.isOpen()))
      return { member: '', estimate: 0, model, probe: false, outage: this.gate.outage, project };
    const m = this.modelLimit(model);
    const charged = this.limits.tpm > 0 || (m.tpm ?? 0) > 0;
    const bound = charged ? promptTokens() + replyBound(body, this.limits.defaultMaxTokens) : 0;
    // A large call is charged half the large calls' share (two may be in flight; its real usage replaces it after).
    const largeShare = this.largeCallsShare(model, bound);
    const largeCharge = Math.floor(largeShare / 2);
    const estimate = largeCharge || bound;
    const member = `${this.owner}:${++this.counter}`;
    const k = this.keys;
    const keys = acquireKeys(k, { model, large: largeCharge > 0, project });
    const args = acquireArgs(
      { ...this.limits, weights: this.limits.projectWeights ?? {} },
      {
        member,
        tokens: estimate,
        calls: 1,
        modelRpm: m.rpm ?? 0,
        modelTpm: m.tpm ?? 0,
        largeTpm: largeShare,
        project,
      },
    );
    let wantedAt = Date.now();
    while (!this.waits.stopped) {
      // Calls under the global limits alone, while nothing is paused and the credentials are proven, are reserved
      // together with the others of this process that ask meanwhile: one script for many calls.
      const open = await this.gate.isOpen();
      const together = (m.rpm ?? 0) === 0 && (m.tpm ?? 0) === 0 && largeCharge === 0 && open;
      // While the credentials are unproven, one call of the process asks at a time; the others wait for its turn.
      const endTurn = !open && !this.gate.proven ? await this.gate.turnWhileUnproven() : () => undefined;
      if (!endTurn) {
        if (stillWanted && Date.now() - wantedAt >= RECHECK_MS) {
          wantedAt = Date.now();
          if (!(await stillWanted())) return 'cancelled';
        }
        continue;
      }
      try {
        // Under the global limits alone, a base tag out of reach is met by the worker's own share of them (see
        // BaseReach); otherwise (a model's own limits, a large call) the call waits for it, as the limits say.
        const ownShare = together && (this.limits.tpm > 0 || this.limits.rpm > 0);
        const ask = () =>
          together
            ? this.groupOf(project).reserve(estimate)
            : acquireScript.run(this.connection(), keys, args).then((r) => ({
                state: r.state,
                waitMs: r.wait_ms,
                outage: r.outage,
                globalTokens: r.global_tokens,
                group: undefined,
              }));
        const answer = ownShare ? await this.base.ask(ask) : await ask();
        if (!answer) {
          return this.ownShareCall({ member, estimate, model, project });
        }
        const { state, waitMs, outage, group } = answer;
        if (state === -1) return 'paused';
        const reserved = group?.member ?? member;
        if (state === 2) this.renewWhileInFlight(reserved);
        if (state > 0) {
          // A reserved slot in the future is ours: sleep until it. Otherwise ask again soon, so that a pause that
          // ends early (a probe succeeded) is noticed.
          if (waitMs > 0) await this.waits.wait(waitMs);
          if (!this.waits.stopped)
            return {
              member: reserved,
              estimate,
              model,
              probe: state === 2,
              outage: outage === 1,
              project,
              ...(group ? { group } : {}),
              ...(largeCharge ? { large: true } : {}),
            };
          // A call given up is not made: its group's entry keeps only the others' tokens.
          if (group && --group.unsettled === 0 && estimate > 0)
            await this.settleEntry(group.member, group.realTokens, { project });
          // A probe given up must not keep the others waiting for its lease.
          if (state === 2) await this.endProbe(reserved);
          break;
        }
        // While another call proves the credentials (a moment: one call), this one waits for it here.
        if (!open && !this.gate.proven) {
          wantedAt = Date.now();
          if (stillWanted && !(await stillWanted())) return 'cancelled';
          await this.waits.wait(Math.min(waitMs, RECHECK_MS) + Math.random() * 50);
          continue;
        }
        // No call waits for capacity holding a call slot: its request goes back to the queue until there may be room
        // (a large call no sooner than a second: its room comes from a share of the minute).
        // An ordinary call under a token limit asks again within RECHECK_MS: the calls in flight settle at their real
        // usage, mostly below what they were charged, so room often comes back before the log's entries expire.
        return {
          laterMs: largeCharge
            ? Math.min(Math.max(waitMs, RECHECK_MS), LATER_MOST_MS)
            : Math.min(Math.max(waitMs, 1), charged ? RECHECK_MS : LATER_MOST_MS),
        };
      } finally {
        endTurn();
      }
    }
    return 'paused';
  }

  /** A call while the base tag is away: on the worker's own share of the global limits (see BaseReach), or later. */
  private async ownShareCall(call: {
    member: string;
    estimate: number;
    model: string;
    project: string;
  }): Promise<Reservation | NotReserved> {
    const { member, estimate, model, project } = call;
    if (!this.base.onOwnShare) return { laterMs: RECHECK_MS };
    const tokens = this.limits.tpm > 0 ? estimate : 0;
    const slot = this.base.take(tokens, member);
    if ('laterMs' in slot) return { laterMs: Math.min(slot.laterMs, LATER_MOST_MS) };
    if (slot.sleepMs > 0) await this.waits.wait(slot.sleepMs);
    // A slot given up is not given back (its tokens stay counted in the worker's own log).
    if (this.waits.stopped) return 'paused';
    return { member, estimate: tokens, model, probe: false, outage: false, project, own: true };
  }

  /** One acquire-capacity.lua call for `calls` calls of a project under the global limits alone, `tokens` in all. */
  private async reserveGlobal(
    tokens: number,
    calls: number,
    project: string,
  ): Promise<{ member: string; reply: AcquireReply }> {
    const member = `${this.owner}:${++this.counter}`;
    // No model scope here (its limits are passed as 0, so its keys, named in the same slot, are never touched).
    const keys = acquireKeys(this.keys, { project });
    const args = acquireArgs(
      { ...this.limits, weights: this.limits.projectWeights ?? {} },
      { member, tokens, calls, modelRpm: 0, modelTpm: 0, largeTpm: 0, project },
    );
    return { member, reply: await acquireScript.run(this.connection(), keys, args) };
  }

  private renewWhileInFlight(member: string): void {
    this.renewals.set(member, keepLease(this.connection, this.keys.credentialsProbe, member, this.limits.lockMs));
  }

  /** Ends a probe's lease: its renewal stops at once, whatever Redis says; the key goes if it is still this probe's. */
  private async endProbe(member: string): Promise<void> {
    this.renewals.get(member)?.();
    this.renewals.delete(member);
    await endLease(this.connection(), this.keys.credentialsProbe, member);
  }

  /**
   * After the call: the real token count replaces the estimate; a success proves the credentials and ends an outage.
   * A probe's lease stops being renewed first, whatever fails after (else every worker would wait on it for good).
   */
  async settle(r: Reservation, actualTokens: number, succeeded: boolean): Promise<void> {
    const k = this.keys;
    if (r.probe) {
      // The calls waiting for the probe read the gate again now, rather than when it is 200 ms old.
      this.gate.close();
      try {
        if (succeeded) await this.connection().set(k.credentialsProven, '1');
      } finally {
        await this.endProbe(r.member);
      }
    }
    if (succeeded && r.outage) {
      this.gate.close();
      await this.connection().del(k.outage, k.outageUntil, k.outageProbe);
    }
    if (r.estimate === 0) return;
    // Its own call's entry: in the worker's own log, or in the global one once handed back.
    if (r.own && this.base.settle(r.member, actualTokens)) return;
    if (r.group) {
      // The group's entry is set to its calls' real tokens once, when the last of them has settled.
      r.group.realTokens += actualTokens;
      r.group.unsettled -= 1;
      if (r.group.unsettled > 0) return;
      return this.settleEntry(r.group.member, r.group.realTokens, { project: r.project });
    }
    const modelScope = (this.modelLimit(r.model).tpm ?? 0) > 0 ? r.model : undefined;
    return this.settleEntry(r.member, actualTokens, { model: modelScope, large: r.large, project: r.project });
  }

  /** Sets a log entry to its real tokens in the scopes it was charged in (a scope it is not in is left alone). */
  private async settleEntry(member: string, actualTokens: number, scopes: CallScopes): Promise<void> {
    const { keys, charged } = settleCall(this.keys, scopes);
    await settleScript.run(this.connection(), keys, { member, tokens: actualTokens, scopes: charged });
  }

  /** The upstream could not be reached: every worker backs off together (the backoff grows per round, not per call). */
  async noteOutage(): Promise<number> {
    this.gate.close();
    const k = this.keys;
    const { wait_ms } = await noteOutageScript.run(
      this.connection(),
      { outage: k.outage, outage_until: k.outageUntil },
      { base_ms: this.limits.backoffMs ?? 1_000, cap_ms: OUTAGE_CAP_MS, jitter: Math.random() },
    );
    return wait_ms;
  }

  /** The credentials failed (401, no balance...): the next call after a resume is a probe again. */
  async distrustCredentials(): Promise<void> {
    this.gate.close();
    await this.connection().del(this.keys.credentialsProven, this.keys.credentialsProbe);
  }

  /** Holds every worker's next call for `ms` (the upstream said 429). */
  async pauseFor(ms: number): Promise<void> {
    this.gate.close();
    const [seconds, micros] = await this.connection().time();
    const now = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
    await this.connection().set(this.keys.rateLimitPause, String(now + ms), 'PX', ms + 1000);
  }
}
