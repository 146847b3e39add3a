/**
 * A worker's own share of the global RPM/TPM limits while the base tag's master is out of reach (stopped, failing
 * over), so that its shards on other masters go on: limit ÷ the live workers (as last read), taken on a schedule that
 * keeps the sum of every worker's calls within the limit in any sliding minute, whatever was reserved through Redis
 * before. The global limiter spaces requests evenly (60 s / RPM apart) and lets at most a sixth of the minute's tokens
 * go in any 10 s, so the calls reserved before the switch thin out as the minute goes on:
 * - requests: the k-th local request of a worker goes no sooner than RESERVE_AHEAD_MS (the furthest a slot was
 *   reserved ahead) plus k times N spacings after the switch, so N workers together add no more than one spacing's
 *   worth per spacing of the minute that the earlier reservations leave;
 * - tokens: nothing for a sixth of the minute (the earlier reservations' last sixth may hold a sixth of the limit),
 *   then the worker's share of the limit at an even rate.
 * A worker that comes back to Redis charges what it took on its own to the global limits (see CapacityLimiter).
 */
export interface ShareLimits {
  rpm: number;
  tpm: number;
  /** The fraction of each window kept free (as the global limiter keeps it). */
  headroom: number;
  /** How far ahead the global limiter reserves a request slot. */
  aheadMs: number;
}

const MINUTE_MS = 60_000;
/** The global limiter's smoothing: at most a sixth of the minute's tokens in any sixth of it. */
const SIXTH_MS = MINUTE_MS / 6;

export class LocalShare {
  private since: number | undefined;
  private workers = 1;
  private requests = 0;
  private tokens = 0;

  constructor(private readonly limits: ShareLimits) {}

  /** Whether the worker is on its own share now. */
  get active(): boolean {
    return this.since !== undefined;
  }

  /** The base tag went out of reach at `now`, with `workers` workers live as last read (this one among them). */
  enter(now: number, workers: number): void {
    if (this.since !== undefined) return;
    this.since = now;
    this.workers = Math.max(1, workers);
    this.requests = 0;
    this.tokens = 0;
  }

  /** The base tag answers again: what was taken on the worker's own share, for the global limits to be charged. */
  leave(): { requests: number; tokens: number } {
    const taken = { requests: this.requests, tokens: this.tokens };
    this.since = undefined;
    return taken;
  }

  /** Takes one call of `tokens` at `now` (0), or says in how many ms it may (it is not taken). */
  take(tokens: number, now: number): number {
    const since = this.since ?? now;
    const { rpm, tpm, headroom, aheadMs } = this.limits;
    let waitMs = 0;
    if (rpm > 0) {
      const spacingMs = (MINUTE_MS / (rpm * (1 - headroom))) * this.workers;
      waitMs = Math.max(waitMs, since + aheadMs + (this.requests + 1) * spacingMs - now);
    }
    if (tpm > 0) {
      const perMs = (tpm * (1 - headroom)) / MINUTE_MS / this.workers;
      waitMs = Math.max(waitMs, since + SIXTH_MS + (this.tokens + tokens) / perMs - now);
    }
    if (waitMs > 0) return Math.ceil(waitMs);
    this.requests += 1;
    this.tokens += tokens;
    return 0;
  }
}
