/** Every Redis key chatq uses, all under one hash-tagged prefix so each Lua script touches one cluster slot. */
export const QUEUE_NAME = 'requests';

export type UsageDimension = 'batch' | 'user' | 'model' | 'day';
export const USAGE_DIMENSIONS: readonly UsageDimension[] = ['batch', 'user', 'model', 'day'];

export function redisKeys(prefix: string) {
  return {
    prefix,
    request: (id: string) => `${prefix}:req:${id}`,
    requestBody: (id: string) => `${prefix}:req:${id}:body`,
    requestResponse: (id: string) => `${prefix}:req:${id}:resp`,
    batch: (id: string) => `${prefix}:batch:${id}`,
    batchRequests: (id: string) => `${prefix}:batch:${id}:reqs`,
    batchCustomIds: (id: string) => `${prefix}:batch:${id}:cids`,
    batchErrors: (id: string) => `${prefix}:batch:${id}:errors`,
    batches: `${prefix}:batches`,
    lane: (userid: string) => `${prefix}:lane:${userid}`,
    lanes: `${prefix}:lanes`,
    userRequests: (userid: string) => `${prefix}:user:${userid}:reqs`,
    usage: (dim: UsageDimension, key: string) => `${prefix}:usage:${dim}:${key}`,
    usageIndex: (dim: UsageDimension) => `${prefix}:usage-index:${dim}`,
    /** The BullMQ hash of a job, used to tell whether a lane head still has its job. */
    job: (id: string) => `${prefix}:${QUEUE_NAME}:${id}`,
    reconcilerLock: `${prefix}:reconciler-lock`,
    pauseReason: `${prefix}:paused`,
    metrics: `${prefix}:metrics`,
    schedules: `${prefix}:schedules`,
    rateLimitPause: `${prefix}:limit:pause-until`,
    credentialsProven: `${prefix}:credentials-proven`,
    credentialsProbe: `${prefix}:credentials-probe`,
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;
