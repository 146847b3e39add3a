import { readyOf, type RedisClient } from './redis.js';

/**
 * Connections taken in turns, one per turn of the event loop: the commands a process sends in one turn go out together
 * (ioredis's auto-pipelining: one write, one read for Redis) on one connection, and the next turn's on the next one.
 * A lost packet holds up the commands of its connection until TCP sends it again (200 ms at least): the share of
 * commands that waits is one connection's, not all of them. A connection picked per request instead spread each turn's
 * commands over all the connections, a write and a read each (bench/throughput: the worker's CPU per request went from
 * 1.13x the transport-matched loop's to 0.92x when turns took over).
 */
export class ConnectionTurns {
  private turn = 0;
  private turning = false;

  constructor(private readonly connections: RedisClient[]) {}

  /** This turn's connection (else the first that is connected: see readyOf). */
  get current(): RedisClient {
    if (this.connections.length > 1 && !this.turning) {
      this.turning = true;
      setImmediate(() => {
        this.turn = (this.turn + 1) % this.connections.length;
        this.turning = false;
      });
    }
    return readyOf(this.connections, this.turn);
  }
}
