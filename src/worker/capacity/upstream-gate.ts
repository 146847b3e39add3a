import type { RedisKeys } from '../../shared/keys.js';
import type { RedisClient } from '../../shared/redis/redis.js';
import { settledWithin } from '../../shared/time-bound.js';

/** How stale the cached gate may be before it is read again. */
const GATE_MS = 200;
/** A read unanswered this long is given up (a new one may go to another node: the slot's master may have changed). */
const READ_WITHIN_MS = 1_000;
/**
 * How stale the gate may be while reads of it fail or go unanswered: calls go by the last answer meanwhile, so that
 * the master holding the base tag, stopped or failing over, holds up no shard on another master. Past it, calls wait
 * for a read. A pause reaches every worker within GATE_MS while Redis answers, and within this while it does not.
 */
export const GATE_MOST_STALE_MS = 30_000;

/**
 * What every call of a worker process checks before it goes, read from Redis at most every GATE_MS and shared by the
 * process's calls: whether anything holds calls back (a queue pause, a 429's pause, an outage's backoff) and whether
 * the credentials are proven (until they are, one call at a time goes, as the probe: acquire-capacity.lua). Changes
 * made by this process (`close`) apply at once.
 */
export class UpstreamGate {
  private state = { readAt: 0, open: false, proven: false, outage: false };
  private reading: Promise<boolean> | undefined;
  /** The turn of the one call of this process that asks for capacity while the credentials are unproven. */
  private asking: Promise<void> | undefined;

  constructor(
    private readonly connection: () => RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  /** Whether an outage was on record at the last read (a success ends it). */
  get outage(): boolean {
    return this.state.outage;
  }

  /** Whether the credentials were proven at the last read. */
  get proven(): boolean {
    return this.state.proven;
  }

  /**
   * Open when the credentials are proven and nothing holds calls back. Past GATE_MS a read goes out; until
   * GATE_MOST_STALE_MS the calls meanwhile go by the last answer rather than wait for it: one lost packet on a slow
   * link, or the base tag's master failing over, would otherwise hold every call of the process.
   */
  async isOpen(): Promise<boolean> {
    const age = Date.now() - this.state.readAt;
    if (age <= GATE_MS) return this.state.open;
    const read = this.read();
    if (age > GATE_MOST_STALE_MS) return read;
    read.catch(() => undefined);
    return this.state.open;
  }

  /** One read at a time, given up after READ_WITHIN_MS; one that fails is forgotten (the next call reads again). */
  private read(): Promise<boolean> {
    if (this.reading) return this.reading;
    const k = this.keys;
    const reply = this.connection()
      .multi()
      .exists(k.pauseReason)
      .exists(k.credentialsProven)
      .pttl(k.rateLimitPause)
      .pttl(k.outageUntil)
      .exists(k.outage)
      .exec()
      .then((replies) => {
        const [paused, proven, pauseLeft, outageLeft, outage] = replies!.map(([, v]) => v as number);
        this.state = {
          readAt: Date.now(),
          open: paused === 0 && proven === 1 && pauseLeft! <= 0 && outageLeft! <= 0,
          proven: proven === 1,
          outage: outage === 1,
        };
        return this.state.open;
      });
    const read = settledWithin(reply, READ_WITHIN_MS, 'the upstream gate read').finally(() => {
      if (this.reading === read) this.reading = undefined;
    });
    this.reading = read;
    return read;
  }

  /** Something changed here (a pause, a probe's outcome, an outage's end): the next call reads the gate again. */
  close(): void {
    this.state = { readAt: 0, open: false, proven: false, outage: false };
  }

  /**
   * While the credentials are unproven, one call of the process at a time asks acquire-capacity.lua (it may be given
   * the probe, or find that the prober's lease lapsed) and waits out its answer; the others wait for that turn to end,
   * then look again. Without this, 2,000 calls waiting for one probe ask Redis 40,000 times a second.
   * Returns the turn's end (call it when the asker is done) when the caller's turn is now, else waits for the
   * turn under way and returns undefined.
   */
  async turnWhileUnproven(): Promise<(() => void) | undefined> {
    if (this.asking) {
      await this.asking;
      return undefined;
    }
    let end: () => void = () => undefined;
    const turn = new Promise<void>((resolve) => (end = resolve));
    this.asking = turn;
    return () => {
      if (this.asking === turn) this.asking = undefined;
      end();
    };
  }
}
