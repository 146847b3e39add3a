/** Every Redis key chatq uses, all under one hash-tagged prefix so each Lua script touches one cluster slot. */
export const QUEUE_NAME = 'requests';

export type UsageDimension = 'batch' | 'user' | 'model' | 'day';
export const USAGE_DIMENSIONS: readonly UsageDimension[] = ['batch', 'user', 'model', 'day'];
/** Usage kept beyond the daily detail: days older than the retention roll up into their month. */
export type StoredUsageDimension = UsageDimension | 'month';

export const DEFAULT_PROJECT = 'default';

export function redisKeys(prefix: string) {
  /** Keys of the default project keep the layout of before projects existed; others live under their project. */
  const scoped = (project: string) => (project === DEFAULT_PROJECT ? prefix : `${prefix}:project:${project}`);
  return {
    prefix,
    request: (id: string) => `${prefix}:req:${id}`,
    requestBody: (id: string) => `${prefix}:req:${id}:body`,
    requestResponse: (id: string) => `${prefix}:req:${id}:resp`,
    batch: (id: string) => `${prefix}:batch:${id}`,
    batchRequests: (id: string) => `${prefix}:batch:${id}:reqs`,
    batchCustomIds: (id: string) => `${prefix}:batch:${id}:cids`,
    batchErrors: (id: string) => `${prefix}:batch:${id}:errors`,
    /** Budget reserved by the calls of a batch in flight (request id -> nano-USD). */
    batchReservations: (id: string) => `${prefix}:batch:${id}:reserved`,
    /** Held (and renewed) by the process importing a batch: an import without it has died. */
    batchImporter: (id: string) => `${prefix}:batch:${id}:importer`,
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
    /** Batches still being imported ("validating"). */
    importing: `${prefix}:importing`,
    /** The BullMQ job of a batch's HTTP import (jobId = batch id). */
    importJob: (batchId: string) => `${prefix}:imports:${batchId}`,
    lane: (userid: string) => `${prefix}:lane:${userid}`,
    lanes: `${prefix}:lanes`,
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
    /** Finished requests' usage records, waiting to be folded into the user, model and day aggregates. */
    pendingUsage: `${prefix}:usage-pending`,
    /** The set-shaped index of before retention existed, migrated once by the usage roll-up. */
    legacyUsageIndex: (project: string, dim: UsageDimension) => `${scoped(project)}:usage-index:${dim}`,
    /** The BullMQ hash of a job, used to tell whether a lane head still has its job. */
    job: (id: string) => `${prefix}:${QUEUE_NAME}:${id}`,
    reconcilerLock: `${prefix}:reconciler-lock`,
    /** A signed-in dashboard browser, by the SHA-256 of its cookie's id (expires). */
    session: (digest: string) => `${prefix}:session:${digest}`,
    /** Failed sign-ins from one address in the current window (expires). */
    loginFailures: (address: string) => `${prefix}:login-failures:${address}`,
    pauseReason: `${prefix}:paused`,
    metrics: `${prefix}:metrics`,
    schedules: `${prefix}:schedules`,
    rateLimitPause: `${prefix}:limit:pause-until`,
    outage: `${prefix}:limit:outage`,
    outageUntil: `${prefix}:limit:outage-until`,
    outageProbe: `${prefix}:limit:outage-probe`,
    credentialsProven: `${prefix}:credentials-proven`,
    credentialsProbe: `${prefix}:credentials-probe`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/** The key builders Lua scripts get from the generated prelude (see redis.ts), so no script copies the layout. */
export const SCRIPT_KEY_BUILDERS = ['request', 'requestBody', 'requestResponse', 'lane', 'batch'] as const;
