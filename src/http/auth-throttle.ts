import { createHash } from 'node:crypto';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';

/** Failed tokens one address (or one token prefix) may present per window before its failures are slowed. */
const FREE_FAILURES = 20;
const WINDOW_S = 60;
/** How long a failure past the free ones waits for its answer. */
const HELD_MS = 1_000;
/** Requests of a slowed address checked at once (held answers included); past them, refused unchecked. */
const SLOTS_PER_ADDRESS = 4;
/** Slowed addresses kept before the ended ones are swept. */
const MAX_SLOWED = 10_000;
/** Leading characters of a presented token counted together: guesses spread over addresses still meet there. */
const PREFIX_CHARS = 8;

/** What a request that presents a token may do: be checked (then `done` with the outcome), or nothing (refused unchecked). */
export type Admission = { done(right: boolean, token: string): Promise<void> } | 'refused';

/**
 * Slows down token guessing (Bearer, Basic, the login form) without ever turning a right token away for its
 * failures. Past FREE_FAILURES failures per window from one address or with one token prefix, the address is slowed
 * (in this process, for the window): each wrong token's answer is held HELD_MS, and at most SLOTS_PER_ADDRESS of its
 * requests are checked at once; the others are refused (429) before any token is checked, so they learn nothing.
 * Guessing from one address is held to a few tries a second; a right token is answered at once, from a slowed address
 * as soon as a slot is free (at most HELD_MS once the guessing stops), from any other address always.
 */
export class AuthThrottle {
  /** Slowed addresses: until when (ms), and their requests being checked or held. */
  private readonly slowed = new Map<string, { until: number; busy: number }>();

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  /** Called before a presented token is checked. */
  admit(address: string): Admission {
    // Slowed addresses are the guessers': their number is theirs to choose, so ended ones go when there are many.
    if (this.slowed.size > MAX_SLOWED)
      for (const [a, s] of this.slowed) if (s.until < Date.now() && s.busy === 0) this.slowed.delete(a);
    const s = this.slowed.get(address);
    if (s && s.until < Date.now() && s.busy === 0) this.slowed.delete(address);
    const slot = this.slowed.get(address);
    if (slot && slot.busy >= SLOTS_PER_ADDRESS) return 'refused';
    if (slot) slot.busy += 1;
    return {
      done: async (right, token) => {
        try {
          if (!right) await this.failed(address, token, slot !== undefined);
        } finally {
          if (slot) slot.busy -= 1;
        }
      },
    };
  }

  /** Counts a wrong token; an address past the free failures is slowed, and this answer held. */
  private async failed(address: string, token: string, slowedAlready: boolean): Promise<void> {
    const prefix = createHash('sha256').update(token.slice(0, PREFIX_CHARS)).digest('hex').slice(0, 16);
    const [byAddress, byPrefix] = [this.keys.authFailures(`a:${address}`), this.keys.authFailures(`p:${prefix}`)];
    const replies = await this.redis
      .multi()
      .incr(byAddress)
      .expire(byAddress, WINDOW_S)
      .incr(byPrefix)
      .expire(byPrefix, WINDOW_S)
      .exec();
    const [a, p] = [Number(replies?.[0]?.[1]), Number(replies?.[2]?.[1])];
    if (a <= FREE_FAILURES && p <= FREE_FAILURES) return;
    if (!slowedAlready) {
      const s = this.slowed.get(address);
      if (s) s.until = Date.now() + WINDOW_S * 1000;
      else this.slowed.set(address, { until: Date.now() + WINDOW_S * 1000, busy: 0 });
    }
    await new Promise((r) => setTimeout(r, HELD_MS));
  }
}
