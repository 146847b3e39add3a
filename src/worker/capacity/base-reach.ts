import { describeRedisError } from '../../shared/redis/redis-errors.js';
import type { OwnEntry } from './acquire-call.js';
import { LocalShare, type ShareLimits, type ShareSlot, type TokensSeen } from './local-share.js';

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
 * many workers are live). Then one probe a second asks the base tag when every worker goes back (leave-own-share.lua,
 * which takes the worker's own calls' tokens into the global log); the first answer names that moment.
 */
export class BaseReach {
  private readonly share: LocalShare;
  private nextProbe = 0;
  /** When the worker goes back to the global limit (Date.now() ms), once the base tag answered again. */
  private backAt: number | undefined;
  private seen: TokensSeen | undefined;

  constructor(
    limits: ShareLimits,
    /** The live workers as last read (0: not known, and no share of its own is taken). */
    private readonly workers: () => number,
    /** Hands the worker's own calls back and answers in how many ms every worker goes back to the global limit. */
    private readonly switchBack: (switchMs: number, entries: OwnEntry[], windowMs: number) => Promise<number>,
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

  /**
   * `ask`'s answer, or undefined while the worker goes by its own share (while the base tag is away, one probe a
   * second goes to it).
   */
  async ask<T extends { globalTokens: number }>(ask: () => Promise<T>): Promise<T | undefined> {
    if (this.onOwnShare) {
      if (this.backAt === undefined && Date.now() >= this.nextProbe) await this.probe();
      return undefined;
    }
    const answer = await answeredWithin(ask(), ANSWER_WITHIN_MS);
    if (answer !== LATE) {
      this.seen = { at: Date.now(), total: answer.globalTokens };
      return answer;
    }
    const workers = this.workers();
    if (workers > 0) this.share.enter(Date.now(), workers, this.seen);
    return undefined;
  }

  /**
   * Asks the base tag when every worker goes back, handing its own calls' tokens to the global log; those it made
   * meanwhile go after (a second ask at most: none is made once they are handed back). Unanswered: they stay its own.
   */
  private async probe(): Promise<void> {
    this.nextProbe = Date.now() + PROBE_MS;
    for (let first = true; first || this.share.toHandBack(Date.now()).length > 0; first = false) {
      const entries = this.share.toHandBack(Date.now());
      const inMs = await answeredWithin(this.switchBack(SWITCH_MS, entries, this.share.windowMs), ANSWER_WITHIN_MS);
      if (inMs === LATE) return;
      this.share.handedBackAll(entries);
      if (first) this.backAt = Date.now() + inMs;
    }
  }

  /** The worker's next own request slot, for a call of `tokens` logged as `member` (see LocalShare.take). */
  take(tokens = 0, member = ''): ShareSlot {
    return this.share.take(Date.now(), this.backAt, tokens, member);
  }

  /** A call on the worker's own share used `tokens`: true when its entry was still its own. */
  settle(member: string, tokens: number): boolean {
    return this.share.settle(member, tokens);
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
