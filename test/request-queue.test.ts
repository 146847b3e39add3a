import type { Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createTestEnv, type TestEnv } from './helpers/test-env.js';

describe('request queues', () => {
  let env: TestEnv | undefined;
  afterEach(async () => {
    await env?.cleanup();
    env = undefined;
  });

  it('lane heads added in one turn of the event loop reach Redis in one write per delay', async () => {
    env = await createTestEnv();
    // The queue's scripts (one for each kind of add) are loaded by a first add of each: the count below is then the
    // batching's alone, not a script load's extra round trip (Redis's script cache is the whole server's: which
    // scripts another test loaded first is not this test's to depend on).
    await env.queues.add(['warm-1']);
    await env.queues.add(['warm-2'], 60_000);
    const socket = (env.redis as unknown as { stream: Socket }).stream;
    const write = socket.write;
    let writes = 0;
    socket.write = function (this: Socket, ...args: Parameters<Socket['write']>) {
      writes += 1;
      return write.apply(this, args);
    } as Socket['write'];
    try {
      await Promise.all([
        env.queues.add(['now-1']),
        env.queues.add(['now-2']),
        env.queues.add(['gap-1', 'gap-2'], 60_000),
        env.queues.add(['now-3']),
      ]);
    } finally {
      socket.write = write;
    }
    expect(writes).toBe(2);
    const states = await Promise.all(
      ['now-1', 'now-2', 'now-3', 'gap-1', 'gap-2'].map((id) => env!.queue.getJobState(id)),
    );
    expect(states).toEqual(['waiting', 'waiting', 'waiting', 'delayed', 'delayed']);
  });
});
