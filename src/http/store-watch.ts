import type { RedisClient } from '../shared/redis/redis.js';

/** How often Redis is pinged, and how long a ping may take before Redis counts as out of reach. */
const PING_EVERY_MS = 500;
const PING_WITHIN_MS = 750;

/**
 * Whether this process can reach Redis now, from one ping at a time: a ping unanswered after 750 ms (a partition
 * holds commands without failing them) or failed (a refused connection) marks Redis out of reach until one answers.
 */
export class StoreWatch {
  private reachable = true;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly redis: RedisClient) {}

  get up(): boolean {
    return this.reachable;
  }

  start(): this {
    // A connection that closes (Redis stopped, the socket reset) is out of reach at once, not at the next ping: a
    // request right after would wait for a command that cannot be answered. The pings say when it is back.
    this.redis.on('close', this.lost);
    void this.loop();
    return this;
  }

  private readonly lost = () => {
    this.reachable = false;
  };

  private async loop(): Promise<void> {
    while (!this.closed) {
      const slow = setTimeout(() => (this.reachable = false), PING_WITHIN_MS);
      this.reachable = await this.redis.ping().then(
        (pong) => pong === 'PONG',
        () => false,
      );
      clearTimeout(slow);
      await new Promise<void>((resolve) => (this.timer = setTimeout(resolve, PING_EVERY_MS)));
    }
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.timer);
    this.redis.off('close', this.lost);
  }
}
