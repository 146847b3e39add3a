/** Upper bounds (seconds) of the call latency histogram that workers fill in Redis and /metrics exposes. */
export const LATENCY_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

/** The histogram field a latency falls in: its smallest upper bound, or "+Inf". */
export function latencyBucket(ms: number): string {
  const le = LATENCY_BUCKETS.find((b) => ms <= b * 1000);
  return le === undefined ? '+Inf' : String(le);
}
