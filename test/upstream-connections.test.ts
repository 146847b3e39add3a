import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSimulator, type Simulator } from '../src/simulator/simulator-server.js';
import { UpstreamClient } from '../src/worker/upstream/upstream-client.js';

const body = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] };

describe('upstream connections', () => {
  let sim: Simulator;
  beforeAll(async () => {
    sim = await startSimulator({ latencyMs: 20, jitterMs: 0 });
  });
  afterAll(() => sim.close());

  const clientOf = (concurrency: number) => {
    const client = new UpstreamClient({ baseURL: sim.url, apiKey: undefined, timeoutMs: 5_000, concurrency });
    return { client, connections: client.connections };
  };

  it('calls one after another on one kept-alive connection', async () => {
    const { client, connections } = clientOf(16);
    for (let i = 0; i < 10; i++) expect((await client.chat(body, `u${i}`)).status).toBe(200);
    expect(connections.opened).toBe(1);
  });

  it('opens one connection per call at once, up to its bound, and past it queues the calls on them', async () => {
    const { client, connections } = clientOf(8);
    const first = await Promise.all(Array.from({ length: 8 }, (_, i) => client.chat(body, `a${i}`)));
    expect(first.map((r) => r.status)).toEqual(Array(8).fill(200));
    expect(connections.opened).toBe(8);
    const more = await Promise.all(Array.from({ length: 20 }, (_, i) => client.chat(body, `b${i}`)));
    expect(more.map((r) => r.status)).toEqual(Array(20).fill(200));
    expect(connections.opened).toBe(8);
  });

  it('takes back a connection whose call timed out, and the next call on it is answered', async () => {
    const { client, connections } = clientOf(8);
    sim.configure({ latencyMs: 1_000 });
    await expect(client.chat(body, 'slow', 100)).rejects.toThrow(/timed out/i);
    sim.configure({ latencyMs: 20 });
    expect((await client.chat(body, 'next')).status).toBe(200);
    expect(connections.opened).toBe(1);
  });
});
