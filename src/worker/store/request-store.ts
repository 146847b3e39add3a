import type { RedisClient } from '../../shared/redis/redis.js';
import { beginCallScript, findServedScript, requeueScript, reserveScript, startScript } from './store-scripts.js';
import { entriesText, finishCall, finishScript, type FinishReply } from './finish-call.js';
import { ConnectionTurns } from '../../shared/redis/connection-turns.js';
import { persist } from './persist.js';
import { BacklogRefills } from './backlog-refills.js';
import { repairLanes } from './lane-repair.js';
import { StallWatch } from './stall-watch.js';
import { BatchStops } from './batch-stops.js';
import type { RequestQueues } from '../../shared/redis/request-queue.js';
import { DEFAULT_PROJECT, type RedisKeys } from '../../shared/keys.js';
import type { AttemptEntry, RequestError } from '../../shared/request-record.js';
import {
  toClaim,
  type ClaimReply,
  type FinishedRequest,
  type RequestOwner,
  type StartedRequest,
  type StoppedClaim,
} from './request-claims.js';

/** A head counted as queued this long without its job is repaired by a refill (see refill-queues.lua). */
const REPAIR_QUEUED_AFTER_MS = 30_000;
/** A call's lease outlives its deadline by this much: clocks and aborts are not exact. */
const LEASE_MARGIN_MS = 2_000;

/**
 * With CHATQ_REDIS_WAIT_REPLICAS, a result no replica acknowledged is written again this often, this many times at
 * most, until one does: its master may lose it (stopped, then demoted when it wakes), and its call would be made again.
 */
const REWRITE_EVERY_MS = 1_000;
const REWRITES = 30;
/**
 * A result whose write stalled is written again this many times, half a second apart: a master that answers again
 * after its replica was promoted takes the writes queued for it before it learns it was demoted (the first ping from
 * a peer tells it).
 */
const STALLED_REWRITES = 2;
const STALLED_REWRITE_MS = 500;
/** While a shard's replicas do not acknowledge, one call this often asks again (the others wait out of the call slots). */
const REPLICA_PROBE_MS = 500;
/** After a stall, a lane head admitted within this may still have its job's add on the way (see repairLanes). */
const ADDING_MS = 1_000;

/** The request's state transitions on the worker side, each one Lua script. */
export class RequestStore {
  private readonly redis: RedisClient;
  private readonly replicas: { count: number; timeoutMs: number };

  /** The connections its transitions go on, one per turn of the event loop (see ConnectionTurns). */
  private readonly turns: ConnectionTurns;
  /** Refills of the backlogs when heads it deferred fall due. */
  readonly refills: BacklogRefills;
  /**
   * Whether the shard's replicas acknowledged the latest write that waited for them (CHATQ_REDIS_WAIT_REPLICAS), and
   * when a call may next ask them again while they do not.
   */
  private replicasAnswer = true;
  private nextReplicaProbe = 0;
  /** Repairs of the shard's lanes after one of its scripts stalled (a master away, then back), when watched. */
  readonly stalls: StallWatch | undefined;
  /** Whether a batch goes on, and the cancel of the requests of one that stopped. */
  readonly stops: BatchStops;

  constructor(
    /** The connections its scripts go on (a lossy link then stalls one connection's share of them, not all). */
    connections: RedisClient[],
    private readonly keys: RedisKeys,
    private readonly ttlS: number,
    private readonly queues: RequestQueues,
    private readonly calls: {
      /** Replicas that hold a claim before its call is sent and a result before it is reported (CHATQ_REDIS_WAIT_REPLICAS). */
      replicas?: { count: number; timeoutMs: number };
      /**
       * The call timeout (CHATQ_TIMEOUT_MS), when a claim takes its first call's lease (a job's own request, and a
       * lane's next one handed on by a finish): given where calls go as soon as they are claimed (no RPM/TPM limit to
       * wait for; a worker killed while its calls wait would otherwise hold their users for the whole timeout).
       * Without it, begin-call.lua takes the lease just before the call.
       */
      timeoutMs?: number;
      /** Watch the scripts for a stalled master, and repair the lanes after one (told how many heads were re-added). */
      onStallRepair?: (readded: number) => void;
    } = {},
  ) {
    this.redis = connections[0]!;
    this.turns = new ConnectionTurns(connections);
    this.replicas = calls.replicas ?? { count: 0, timeoutMs: 0 };
    this.refills = new BacklogRefills(this.redis, keys, queues, REPAIR_QUEUED_AFTER_MS);
    this.stops = new BatchStops(this.redis, keys, queues, ttlS, (id, owner, attempts) =>
      this.release(id, owner, attempts),
    );
    this.stalls =
      calls.onStallRepair &&
      new StallWatch(
        async () => (await repairLanes(this.redis, keys, queues, ADDING_MS)).readded,
        calls.onStallRepair,
        this.replicas.count ? this.replicas.timeoutMs : 0,
      );
  }

  /**
   * Whether a call of this shard should go back to wait without taking a call slot: its replicas did not acknowledge
   * the latest claim (its master has none to: killed, its replica promoted, or they lag), and another call asked
   * them within the last half second. The slots serve the other shards meanwhile.
   */
  waitsForReplicas(): boolean {
    if (this.replicasAnswer) return false;
    const now = Date.now();
    if (now < this.nextReplicaProbe) return true;
    this.nextReplicaProbe = now + REPLICA_PROBE_MS;
    return false;
  }

  /** Whether the shard cannot take calls now: its master is away (its scripts wait), or its replicas do not acknowledge. */
  held(): boolean {
    return !this.replicasAnswer || (this.stalls?.holding() ?? false);
  }

  /** Notes whether a write that waited for the replicas was acknowledged by them. */
  private noted(replicated: boolean): boolean {
    if (this.replicas.count) this.replicasAnswer = replicated;
    return replicated;
  }

  /** A script's answer, watched for a stall when the store watches (see StallWatch). */
  private async watched<T>(script: Promise<T>): Promise<T> {
    return (await this.timed(script)).answer;
  }

  /** A script's answer and whether it stalled (never, when the store does not watch). */
  private timed<T>(script: Promise<T>): Promise<{ answer: T; stalled: boolean }> {
    return this.stalls ? this.stalls.observe(script) : script.then((answer) => ({ answer, stalled: false }));
  }

  /**
   * Claims the request a job serves for a run: its own, or the lane's next one handed to it; how long to wait when its
   * turn gap has not passed; undefined when there is nothing to call (finished, or gone).
   */
  async start(jobId: string): Promise<StartedRequest | { waitMs: number } | StoppedClaim | undefined> {
    const sent = performance.now();
    const leaseMs = this.leaseMs();
    // A claim that takes the call's lease waits for the replicas as begin-call.lua would; one without, not.
    const { reply, replicated } = await this.watched(
      startScript.runReplicated(
        this.turns.current,
        { request: this.keys.request(jobId) },
        {
          now: Date.now(),
          prefix: this.keys.prefix,
          job: jobId,
          lease_ms: leaseMs,
          admission: await this.queues.admission.arg(),
        },
        leaseMs ? this.replicas : { count: 0, timeoutMs: 0 },
      ),
    );
    const { refill, claim } = reply;
    // The job left its project's queued heads: the heads its backlog held back take its place (a failed add is
    // repaired by the reconciler: a lane head without a job).
    if (refill.length) void this.queues.add(refill).catch(() => undefined);
    return this.leased(toClaim(claim), sent, leaseMs ? this.noted(replicated) : replicated);
  }

  /** The lease a claim takes for its run's first call (the call timeout and the margin), when claims take it. */
  private leaseMs(): number | undefined {
    return this.calls.timeoutMs ? this.calls.timeoutMs + LEASE_MARGIN_MS : undefined;
  }

  /**
   * A claim sent at `sent` took its first call's lease, no later than when it answered: that call must end by `sent` +
   * the timeout. Not when fewer replicas than asked hold it (begin-call.lua then takes it again, and waits for them).
   */
  private leased<T extends ReturnType<typeof toClaim>>(claim: T, sent: number, replicated: boolean): T {
    const timeoutMs = this.calls.timeoutMs;
    if (!timeoutMs || !replicated || !claim || !('body' in claim)) return claim;
    return { ...claim, leasedUntil: sent + timeoutMs };
  }

  /**
   * Takes the lease of the run's next upstream call: its deadline, `timeoutMs` from now in Redis time, goes on the
   * request before the call is sent. Returns how long the call may take so that it ends by that deadline (the
   * timeout less the round trip), 'taken' when this run no longer holds the request (another run took it over), or
   * 'late' when the round trip ate the time (Redis answered too late: the call is not sent), 'unreplicated' when
   * fewer replicas than CHATQ_REDIS_WAIT_REPLICAS acknowledged the lease (a failover could lose it: not sent either).
   */
  async beginCall(started: StartedRequest, timeoutMs: number): Promise<number | 'taken' | 'late' | 'unreplicated'> {
    const leasedLeft = (started.leasedUntil ?? 0) - performance.now();
    // A lease taken with the claim is used once, and only while at least half the call's time is left.
    started.leasedUntil = undefined;
    if (leasedLeft >= timeoutMs / 2) return Math.floor(leasedLeft);
    const sent = performance.now();
    const { reply, replicated } = await this.watched(
      beginCallScript.runReplicated(
        this.turns.current,
        { request: this.keys.request(started.id), lease: this.keys.laneLease(started.userid) },
        { id: started.id, claim: started.claim, timeout_ms: timeoutMs, margin_ms: LEASE_MARGIN_MS },
        this.replicas,
      ),
    );
    const left = timeoutMs - (performance.now() - sent);
    if (!reply.go) return 'taken';
    if (!this.noted(replicated)) return 'unreplicated';
    // A call left less than half its time (Redis answered that late) is not sent.
    return left >= timeoutMs / 2 ? Math.floor(left) : 'late';
  }

  /** The unfinished request a job serves (its own, or its lane's head handed to it), if any. */
  async servedBy(jobId: string): Promise<string | undefined> {
    const { id } = await findServedScript.run(
      this.redis,
      { request: this.keys.request(jobId) },
      { prefix: this.keys.prefix, job: jobId },
    );
    return id;
  }

  /** Who a request belongs to, for finishing it without a run (a job BullMQ gave up on). */
  async identity(id: string): Promise<RequestOwner | undefined> {
    const [userid, model, batch, project] = await this.redis.hmget(
      this.keys.request(id),
      'userid',
      'model',
      'batch',
      'project',
    );
    return userid && model && batch ? { userid, model, batch, project: project || DEFAULT_PROJECT } : undefined;
  }

  /**
   * Reserves the most this call can cost against its batch's budget: 'reserved' (or no budget), 'wait' (calls in
   * flight may leave room), 'never' (it cannot fit in what is left).
   */
  async reserveBudget(id: string, owner: RequestOwner, boundNano: number): Promise<'reserved' | 'wait' | 'never'> {
    const k = this.keys;
    const { outcome } = await reserveScript.run(
      this.redis,
      {
        batch: k.batch(owner.batch),
        batch_usage: k.usage(owner.project, 'batch', owner.batch),
        reservations: k.batchReservations(owner.batch),
      },
      { id, bound: boundNano },
    );
    return outcome;
  }

  /**
   * A failed attempt that will be retried: back to waiting at the lane head, with this run's calls logged;
   * `mayStillRun` (the call timed out) keeps the call's lease to its end.
   */
  async retry(
    id: string,
    owner: RequestOwner,
    attempts: AttemptEntry[],
    error: RequestError,
    mayStillRun = false,
  ): Promise<void> {
    await this.requeue(id, owner, attempts, JSON.stringify(error), 'retrying', mayStillRun);
  }

  /** Back to waiting without a counted attempt (the queue was paused, the worker is stopping, the budget is busy). */
  async release(id: string, owner: RequestOwner, attempts: AttemptEntry[]): Promise<void> {
    await this.requeue(id, owner, attempts, undefined, 'queued');
  }

  /**
   * Back to waiting without a counted attempt, out of BullMQ: its call found no capacity, so it waits in its project's
   * backlog until `waitMs` from now (its job then ends), and goes to BullMQ with the project's next refill (or this
   * process's, once it is due: a worker gone, the reconciler's).
   */
  async defer(id: string, owner: RequestOwner, attempts: AttemptEntry[], waitMs: number): Promise<void> {
    await this.requeue(id, owner, attempts, undefined, 'queued', false, Date.now() + Math.ceil(waitMs));
    this.refills.after(waitMs);
  }

  private async requeue(
    id: string,
    owner: RequestOwner,
    attempts: AttemptEntry[],
    error: string | undefined,
    status: 'retrying' | 'queued',
    keepLease = false,
    deferUntil?: number,
  ): Promise<void> {
    // The run's calls are on record once this is written: a Redis error here is written again, not dropped.
    await persist(() =>
      this.watched(
        requeueScript.run(
          this.turns.current,
          {
            request: this.keys.request(id),
            reservations: this.keys.batchReservations(owner.batch),
            lease: this.keys.laneLease(owner.userid),
            backlog: this.keys.backlog(owner.project),
            projects: this.keys.queuedProjects(),
          },
          {
            id,
            entries: entriesText(attempts),
            calls: attempts.length,
            error,
            status,
            claim: owner.claim ?? 0,
            keep_lease: keepLease,
            defer_until: deferUntil,
            project: owner.project,
          },
        ),
      ),
    );
  }

  /**
   * Writes the final result once, then hands the lane to its next request: to `servingJob` when given (it goes on
   * with it: that request, already claimed for its run, is returned), else to a new BullMQ job.
   */
  async finish(
    id: string,
    owner: RequestOwner,
    result: FinishedRequest,
    servingJob = '',
  ): Promise<StartedRequest | undefined> {
    const sent = performance.now();
    // A result is paid for: a Redis error while it is written is met by writing it again (never by calling again).
    const written = await persist(() => this.writeResult(id, owner, result, servingJob));
    const { nextHead, gapMs, replicated, stalled, gradingHead } = written;
    if (gradingHead) await this.addHead(gradingHead, 0);
    // When the first write was lost (a later one counted), so was the claim it handed on: the lane's next head has a
    // job of its own now, and this one does not go on with it (its turn would reach the upstream before this one's
    // call, made again).
    const doubted = !replicated || stalled;
    const claim =
      doubted && (await this.rewriteUntilReplicated(id, owner, result, stalled ? STALLED_REWRITES : 0))
        ? undefined
        : written.claim;
    // The lane's next head: a job that cannot be added is the reconciler's (a lane head without a job).
    if (nextHead && !claim) await this.addHead(nextHead, gapMs);
    const next = claim && toClaim(claim);
    return next && 'body' in next ? this.leased(next, sent, replicated) : undefined;
  }

  private async addHead(head: string, gapMs: number): Promise<void> {
    await persist(() => this.queues.add([head], gapMs)).catch(() => undefined);
  }

  /**
   * A result written but on no replica is written again (the same call's result: counted once, wherever the first
   * one landed) until a replica acknowledges it, and `atLeast` times whatever (a write that stalled: its master may
   * have been away, and may drop it once it learns it was demoted). Returns whether a later write counted (the first
   * was lost with its master): that one added the lane's next head.
   */
  private async rewriteUntilReplicated(
    id: string,
    owner: RequestOwner,
    result: FinishedRequest,
    atLeast: number,
  ): Promise<boolean> {
    let counted = false;
    // After a stall, half a second apart (the master is back: its replica may be too, any moment), as long in all.
    const everyMs = atLeast ? STALLED_REWRITE_MS : REWRITE_EVERY_MS;
    for (let i = 0; i < Math.max((REWRITES * REWRITE_EVERY_MS) / everyMs, atLeast); i++) {
      await new Promise((r) => setTimeout(r, everyMs));
      const written = await persist(() => this.writeResult(id, owner, result, ''));
      counted ||= written.outcome === 'ok';
      if (written.nextHead) await this.addHead(written.nextHead, written.gapMs);
      if (written.gradingHead) await this.addHead(written.gradingHead, 0);
      if (written.replicated && i + 1 >= atLeast) break;
    }
    return counted;
  }

  private async writeResult(
    id: string,
    owner: RequestOwner,
    result: FinishedRequest,
    servingJob: string,
  ): Promise<{
    outcome: FinishReply['outcome'];
    nextHead: string;
    claim: ClaimReply | undefined;
    gapMs: number;
    replicated: boolean;
    /** It took so long that its master may have been away: it may drop the write once it learns it was demoted. */
    stalled: boolean;
    gradingHead: string;
  }> {
    const { keys, args } = finishCall(this.keys, {
      id,
      owner,
      result,
      servingJob,
      ttlS: this.ttlS,
      leaseMs: this.leaseMs(),
      admission: await this.queues.admission.arg(),
    });
    // With CHATQ_REDIS_WAIT_REPLICAS, the result is on the replicas before the lane goes on (a result no replica
    // acknowledged in time is written again: rewriteUntilReplicated).
    const {
      answer: { reply, replicated },
      stalled,
    } = await this.timed(finishScript.runReplicated(this.turns.current, keys, args, this.replicas));
    const { outcome, next_head, handed, wait_ms, claim, grading_head } = reply;
    return {
      outcome,
      nextHead: next_head,
      claim: handed ? claim : undefined,
      gapMs: wait_ms,
      replicated: this.noted(replicated),
      stalled,
      gradingHead: grading_head,
    };
  }
}
