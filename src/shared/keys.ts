import { MAX_SHARDS, shardOfId, shardOfUser, shardPrefix } from './shard-ids.js';

/** Every Redis key chatq uses, all under one hash-tagged prefix so each Lua script touches one cluster slot. */
export const QUEUE_NAME = 'requests';

export type UsageDimension = 'batch' | 'user' | 'model' | 'day';
export const USAGE_DIMENSIONS: readonly UsageDimension[] = ['batch', 'user', 'model', 'day'];
/** Usage kept beyond the daily detail: days older than the retention roll up into their month. */
export type StoredUsageDimension = UsageDimension | 'month';

export const DEFAULT_PROJECT = 'default';

function layout(prefix: string) {
  /** Keys of the default project keep the layout of before projects existed; others live under their project. */
  const scoped = (project: string) => (project === DEFAULT_PROJECT ? prefix : `${prefix}:project:${project}`);
  return {
    prefix,
    request: (id: string) => `${prefix}:req:${id}`,
    requestBody: (id: string) => `${prefix}:req:${id}:body`,
    /**
     * A finished request: one string (finished-record.ts) holding its fields, body and response, which replaces its
     * hash and body when it ends.
     */
    requestDone: (id: string) => `${prefix}:req:${id}:done`,
    batch: (id: string) => `${prefix}:batch:${id}`,
    batchRequests: (id: string) => `${prefix}:batch:${id}:reqs`,
    /** A batch's custom_ids, each with its request's seq (its id is `<batch>-<seq>`). */
    batchCustomIds: (id: string) => `${prefix}:batch:${id}:cids`,
    batchErrors: (id: string) => `${prefix}:batch:${id}:errors`,
    /** Budget reserved by the calls of a batch in flight (request id -> nano-USD). */
    batchReservations: (id: string) => `${prefix}:batch:${id}:reserved`,
    /** Held (and renewed) by the process importing a batch: an import without it has died. */
    batchImporter: (id: string) => `${prefix}:batch:${id}:importer`,
    /** A memory benchmark run's report and its questions' ids, kept once the run has ended (JSON; expires). */
    batchBenchmark: (id: string) => `${prefix}:batch:${id}:benchmark`,
    /** Memory set aside while a batch is imported, freed to record its failure when Redis is full. */
    batchReserve: (id: string) => `${prefix}:batch:${id}:reserve`,
    /** Every batch, by creation time (admin lists); trimmed as batch records expire. */
    batches: `${prefix}:batches`,
    /** A project's batches, by creation time. */
    projectBatches: (project: string) => `${prefix}:project:${project}:batches`,
    /** Projects that have made something (for admin sums). */
    projects: `${prefix}:projects`,
    /** Batches with a completion window, scored by when it ends (ms): what the reconciler expires. */
    expiring: `${prefix}:expiring`,
    /** Sharded batches not ended yet: the reconciler ends those whose parts have all ended (sharded-batch.ts). */
    openShardedBatches: `${prefix}:sharded-open`,
    /** Batches still being imported ("validating"). */
    importing: `${prefix}:importing`,
    /** The BullMQ job of a batch's HTTP import (jobId = batch id). */
    importJob: (batchId: string) => `${prefix}:imports:${batchId}`,
    lane: (userid: string) => `${prefix}:lane:${userid}`,
    /**
     * The user's call lease: "<request id>:<claim>" of the run whose call may be at the upstream, expiring at that
     * call's deadline plus a margin (begin-call.lua). While it stands, no other call of the user starts.
     */
    laneLease: (userid: string) => `${prefix}:lane:${userid}:lease`,
    lanes: `${prefix}:lanes`,
    /**
     * The project a userid belongs to: the first that used it (the endpoint's memory is per userid, so another
     * project's line with it is refused). Kept for as long as the endpoint may remember the userid: for ever, or
     * CHATQ_USERID_HOLD_DAYS after the user's latest import.
     */
    userProject: (userid: string) => `${prefix}:lane:${userid}:project`,
    /**
     * A project's lane heads in BullMQ waiting for a call slot (request id -> when admitted), at most its allowance,
     * and those held back past it, in order (admission.lua); the projects that have either.
     */
    queued: (project: string) => `${scoped(project)}:queued`,
    backlog: (project: string) => `${scoped(project)}:backlog`,
    queuedProjects: () => `${prefix}:queued-projects`,
    /** The call slots of each worker process (owner -> "slots:until ms"): the capacity projects share (admission). */
    workerSlots: `${prefix}:worker-slots`,
    /** A user's requests in one project, in submission order (lanes are global: memory belongs to the userid). */
    userRequests: (project: string, userid: string) => `${scoped(project)}:user:${userid}:reqs`,
    usage: (project: string, dim: StoredUsageDimension, key: string) => `${scoped(project)}:usage:${dim}:${key}`,
    /** The members of a usage dimension, scored by their latest write (ms): what retention trims. */
    usageIndex: (project: string, dim: StoredUsageDimension) => `${scoped(project)}:usage-idx:${dim}`,
    /** Batch events (a batch ended) waiting for the webhook dispatcher; bounded (see the events prelude). */
    events: `${prefix}:events`,
    /** One webhook dispatcher at a time. */
    eventsLock: `${prefix}:events-lock`,
    /** The latest webhook delivery attempts, newest first (capped). */
    webhookDeliveries: `${prefix}:webhook-deliveries`,
    /** A webhook receiver's failures in a row and pause (a project's, or "*" for the default one; expires). */
    webhookReceiver: (receiver: string) => `${prefix}:webhook-receiver:${receiver}`,
    /** Finished requests' usage records, waiting to be folded into the user, model and day aggregates. */
    pendingUsage: `${prefix}:usage-pending`,
    /** The BullMQ hash of a job, used to tell whether a lane head still has its job. */
    job: (id: string) => `${prefix}:${QUEUE_NAME}:${id}`,
    /** BullMQ's lists of jobs waiting to be taken (the finish script asks whether any lane waits). */
    queueWait: `${prefix}:${QUEUE_NAME}:wait`,
    queuePrioritized: `${prefix}:${QUEUE_NAME}:prioritized`,
    reconcilerLock: `${prefix}:reconciler-lock`,
    /** A signed-in dashboard browser, by the SHA-256 of its cookie's id (expires). */
    session: (digest: string) => `${prefix}:session:${digest}`,
    /** Failed tokens presented from one address ("a:<address>") or with one token prefix ("p:<hash>") in the current window (expires). */
    authFailures: (who: string) => `${prefix}:auth-failures:${who}`,
    pauseReason: `${prefix}:paused`,
    metrics: `${prefix}:metrics`,
    schedules: `${prefix}:schedules`,
    /** Each schedule's runs: its latest firing's batches and how many firings it skipped (JSON, by schedule id). */
    scheduleRuns: `${prefix}:schedule-runs`,
    /** Held while a schedule's firing imports its batches (expires). */
    scheduleFiring: (id: string) => `${prefix}:schedule-firing:${id}`,
    rateLimitPause: `${prefix}:limit:pause-until`,
    outage: `${prefix}:limit:outage`,
    outageUntil: `${prefix}:limit:outage-until`,
    outageProbe: `${prefix}:limit:outage-probe`,
    /**
     * A rate-limit scope's request log, token log and token total: "global", "model:<name>", "large" (large calls),
     * "global:none" (named, never touched, when a reservation has no model scope).
     */
    limitRequests: (scope: string) => `${prefix}:limit:${scope}:rpm`,
    limitTokenLog: (scope: string) => `${prefix}:limit:${scope}:tpm-log`,
    limitTokens: (scope: string) => `${prefix}:limit:${scope}:tpm`,
    /** When the workers that went on their own share of the RPM limit (the base tag out of reach) go back (ms, expires). */
    limitReturning: `${prefix}:limit:returning`,
    /** The projects asking for capacity lately (project -> last ask, ms): they share the global limits by weight. */
    limitProjects: `${prefix}:limit:projects`,
    /** An uploaded file's record, and its lines (a list). */
    file: (id: string) => `${prefix}:file:${id}`,
    fileLines: (id: string) => `${prefix}:file:${id}:lines`,
    /** Uploaded files by upload time (ms): every project's (admin lists), and each project's. */
    files: `${prefix}:files`,
    projectFiles: (project: string) => `${prefix}:project:${project}:files`,
    credentialsProven: `${prefix}:credentials-proven`,
    credentialsProbe: `${prefix}:credentials-probe`,
    /** The CHATQ_SHARDS the data here was written with. */
    shardsInUse: `${prefix}:shards`,
    /** How userids are derived here: the generated key (when CHATQ_USERID_SECRET is not set) and the secret's fingerprint. */
    useridScheme: `${prefix}:userid-scheme`,
  };
}

/**
 * Keys that stay in the base hash tag whatever the shard: state every worker shares (pause, limits, credentials,
 * schedules, sign-ins, webhook deliveries, HTTP imports). Everything else a shard holds under its own tag.
 */
const SHARED_KEYS = [
  'pauseReason',
  'schedules',
  'scheduleRuns',
  'scheduleFiring',
  'rateLimitPause',
  'outage',
  'outageUntil',
  'outageProbe',
  'credentialsProven',
  'credentialsProbe',
  'session',
  'authFailures',
  'eventsLock',
  'webhookDeliveries',
  'webhookReceiver',
  'importJob',
  'projects',
  'projectBatches',
  'shardsInUse',
  'useridScheme',
  'workerSlots',
  'limitRequests',
  'limitTokenLog',
  'limitTokens',
  'limitReturning',
  'limitProjects',
  'file',
  'fileLines',
  'files',
  'projectFiles',
] as const satisfies readonly (keyof ReturnType<typeof layout>)[];

export type RedisKeys = ReturnType<typeof layout> & {
  /** How many shards the deployment spreads users over (CHATQ_SHARDS; 1: everything under the base tag). */
  readonly shardCount: number;
  /** This layout's shard (-1: the base tag). */
  readonly shardIndex: number;
  /** The keys of shard `i` (with one shard: these keys). */
  shard(i: number): RedisKeys;
  /** Every shard's keys, in order. */
  readonly shards: readonly RedisKeys[];
  /** The shard that holds a user's lane, requests and memory order. */
  forUser(userid: string): RedisKeys;
  /** The shard holding a batch part (`<batch>_s<i>of<n>`) or a request of one (under its n); the base keys for anything else. */
  forId(id: string): RedisKeys;
};

/** The base tag and every shard's (the base alone when unsharded): where records of either layout may be. */
export const everyTag = (keys: RedisKeys): readonly RedisKeys[] =>
  keys.shardCount > 1 ? [rootOf(keys), ...keys.shards] : keys.shards;
const roots = new WeakMap<readonly RedisKeys[], RedisKeys>();
const rootOf = (keys: RedisKeys) => roots.get(keys.shards)!;

/** Layouts of other shard counts, for ids written under them (a few at most). */
const otherLayouts = new Map<string, RedisKeys>();
function layoutOf(prefix: string, count: number): RedisKeys {
  const key = `${prefix}|${count}`;
  let keys = otherLayouts.get(key);
  if (!keys) otherLayouts.set(key, (keys = redisKeys(prefix, count)));
  return keys;
}

/**
 * Every Redis key chatq uses. With `shardCount` > 1, users are spread over that many hash tags by shardOfUser: a
 * shard holds its users' lanes and requests, its own BullMQ queue, and its part of every batch; Redis Cluster puts
 * the tags on different masters.
 */
export function redisKeys(prefix: string, shardCount = 1): RedisKeys {
  const base = layout(prefix);
  const shards: RedisKeys[] = [];
  const make = (own: ReturnType<typeof layout>, shardIndex: number): RedisKeys => {
    const keys: RedisKeys = {
      ...own,
      shardCount,
      shardIndex,
      shard: (i) => shards[i]!,
      shards,
      forUser: (userid) => shards[shardOfUser(userid, shardCount)]!,
      forId: (id) => {
        const s = shardOfId(id);
        if (!s || s.count > MAX_SHARDS) return keys;
        return s.count === shardCount ? shards[s.index]! : layoutOf(prefix, s.count).shards[s.index]!;
      },
    };
    return keys;
  };
  const root = make(base, shardCount > 1 ? -1 : 0);
  roots.set(shards, root);
  if (shardCount <= 1) {
    shards.push(root);
    return root;
  }
  for (let i = 0; i < shardCount; i += 1) {
    const own = layout(shardPrefix(prefix, i, shardCount));
    for (const name of SHARED_KEYS) (own as Record<string, unknown>)[name] = base[name];
    shards.push(make(own, i));
  }
  return root;
}

/**
 * The key builders Lua scripts get from the generated prelude (see redis.ts), so no script copies the layout: each
 * with its parameters after the prefix, e.g. `KEY.usage(prefix, project, dim, key)`.
 */
export const SCRIPT_KEY_BUILDERS = {
  request: ['id'],
  requestBody: ['id'],
  requestDone: ['id'],
  lane: ['userid'],
  laneLease: ['userid'],
  userProject: ['userid'],
  queued: ['project'],
  backlog: ['project'],
  queuedProjects: [],
  batch: ['id'],
  usage: ['project', 'dim', 'key'],
  usageIndex: ['project', 'dim'],
  job: ['id'],
} as const;
