import { describeRedisError } from '../../shared/redis/redis-errors.js';

/**
 * A worker's own share of the global RPM limit while the base tag's master is out of reach (stopped, failing over),
 * so that its shards on other masters go on: the limit ÷ the live workers (as last read). The global limiter spaces
 * requests evenly (60 s / RPM apart, a slot reserved at most RESERVE_AHEAD_MS ahead), so the requests reserved
 * before the switch thin out as the minute goes on; a worker's own slots start RESERVE_AHEAD_MS after it found the
 * base tag away and are spaced N times as far apart, so N workers together add no more than the global spacing
 * would: no sliding minute holds more than the limit (and one request). Every worker goes back to the global limit
 * at one moment (BaseReach), so the spacing goes on without an overlap. A TPM limit has no such share (a window's
 * tokens are not spaced): with one set, calls wait for the base tag as before. A base master that answers, but
 * slower than a second, counts as out of reach: its workers' own shares then add to what it still reserves.
 */
export interface ShareLimits {
  rpm: number;
  /** The fraction of each window kept free (as the global limiter keeps it). */
  headroom: number;
  /** How far ahead a request slot may be reserved (the call sleeps until it in its call slot). */
  aheadMs: number;
}

const MINUTE_MS = 60_000;

export class LocalShare {
  private nextSlot: number | undefined;
  private spacingMs = 0;

  constructor(private readonly limits: ShareLimits) {}

  /** Whether the worker is on its own share. */
  get active(): boolean {
    return this.nextSlot !== undefined;
  }

  /** The base tag went out of reach at `now`, with `workers` workers live as last read (this one among them). */
  enter(now: number, workers: number): void {
    if (this.nextSlot !== undefined) return;
    const { rpm, headroom, aheadMs } = this.limits;
    this.spacingMs = ((MINUTE_MS * (1 + headroom)) / rpm) * Math.max(1, workers);
    this.nextSlot = now + aheadMs + this.spacingMs;
  }

  /** Back to the global limit. */
  leave(): void {
    this.nextSlot = undefined;
  }

  /**
   * Reserves the worker's next request slot before `until` (the switch back): how long to sleep until it, when it is
   * at most `aheadMs` away; else how long until one may be (`later`), nothing reserved. A slot not used is not given
   * back: no credit builds up.
   */
  take(now: number, until = Number.POSITIVE_INFINITY): { sleepMs: number } | { laterMs: number } {
    const slot = Math.max(now, this.nextSlot ?? now);
    // No slot of its own at or after the switch back: the global spacing starts there.
    if (slot >= until) return { laterMs: Math.ceil(until - now) + 1 };
    if (slot - now > this.limits.aheadMs) return { laterMs: Math.ceil(slot - now - this.limits.aheadMs) };
    this.nextSlot = slot + this.spacingMs;
    return { sleepMs: Math.ceil(slot - now) };
  }
}

/** An ask of the base tag unanswered this long finds it out of reach: the worker goes on its own share. */
const ANSWER_WITHIN_MS = 1_000;
/** While on its own share, one ask this often goes to the base tag, to find out whether it answers again. */
const PROBE_MS = 1_000;
/**
 * How long after the first worker reaches the base tag again they all go back to the global limit (each probes it
 * every PROBE_MS, so each has heard by then): together, so that no worker's own spacing overlaps the global one.
 */
const SWITCH_MS = 2_500;
const LATE = Symbol('late');

/**
 * The base tag's answers to a worker's asks for request slots, and its own share (LocalShare) while they do not
 * come: an ask unanswered within a second, or failed on Redis, puts the worker on its own share (when it knows how
 * many workers are live). The first answer after names the moment every worker goes back (leave-own-share.lua).
 */
export class BaseReach {
  private readonly share: LocalShare;
  private nextProbe = 0;
  /** When the worker goes back to the global limit (Date.now() ms), once the base tag answered again. */
  private backAt: number | undefined;

  constructor(
    limits: ShareLimits,
    /** The live workers as last read (0: not known, and no share of its own is taken). */
    private readonly workers: () => number,
    /** Answers in how many ms every worker goes back to the global limit. */
    private readonly switchBack: (switchMs: number) => Promise<number>,
  ) {
    this.share = new LocalShare(limits);
  }

  /** Whether the worker goes by its own share now (the base tag out of reach, or the switch back not come yet). */
  get onOwnShare(): boolean {
    if (this.backAt !== undefined && Date.now() >= this.backAt) {
      this.share.leave();
      this.backAt = undefined;
    }
    return this.share.active;
  }

  /** `ask`'s answer, or undefined while the worker goes by its own share (while the base tag is away, one ask a second goes). */
  async ask<T>(ask: () => Promise<T>): Promise<T | undefined> {
    if (this.onOwnShare && (this.backAt !== undefined || Date.now() < this.nextProbe)) return undefined;
    this.nextProbe = Date.now() + PROBE_MS;
    const answer = await answeredWithin(ask(), ANSWER_WITHIN_MS);
    if (answer !== LATE) {
      if (this.share.active) {
        const inMs = await answeredWithin(this.switchBack(SWITCH_MS), ANSWER_WITHIN_MS);
        if (inMs !== LATE) this.backAt = Date.now() + inMs;
      }
      return answer;
    }
    const workers = this.workers();
    if (workers > 0) this.share.enter(Date.now(), workers);
    return undefined;
  }

  /** The worker's next own request slot (see LocalShare.take). */
  take(): { sleepMs: number } | { laterMs: number } {
    return this.share.take(Date.now(), this.backAt);
  }
}

/** `p`'s answer, or LATE when it has none within `ms` or failed on Redis (out of reach); other errors are thrown. */
async function answeredWithin<T>(p: Promise<T>, ms: number): Promise<T | typeof LATE> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<typeof LATE>((r) => {
    timer = setTimeout(() => r(LATE), ms);
  });
  p.catch(() => undefined);
  try {
    return await Promise.race([p, late]);
  } catch (err) {
    if (describeRedisError(err)?.code !== 'redis_unavailable') throw err;
    return LATE;
  } finally {
    clearTimeout(timer);
  }
}
