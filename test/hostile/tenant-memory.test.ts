import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { deriveUserid } from '../../src/shared/userid.js';
import { useApi, useWorld } from '../helpers/in-process-worker.js';
import { batchEnded, createBatch } from '../helpers/api-batches.js';

const A = 'tok-alpha-mem';
const B = 'tok-beta-mem';
const D = 'tok-default-mem';
const chat = (id: string, who: Record<string, string>, content: string) =>
  JSON.stringify({ custom_id: id, ...who, model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });

describe("tenants: projects never share an end user's memory", () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${A},beta:${B},${D}` });
  const client = (token: string) => new OpenAI({ baseURL: `${a.api.url}/v1`, apiKey: token, maxRetries: 0 });

  /** Uploads `lines` with `token`, makes a batch of them and waits until it has ended. */
  async function runBatch(token: string, lines: string[]) {
    const c = client(token);
    return batchEnded(c, (await createBatch(c, lines)).id);
  }

  it('the same "user" in two projects reaches the upstream as two userids; project default keeps its derivation', async () => {
    await w.startWorker();
    await runBatch(B, [chat('b1', { user: 'shared-person' }, 'my PIN is 4242')]);
    await runBatch(A, [chat('a1', { user: 'shared-person' }, 'what is my PIN?')]);
    await runBatch(D, [chat('d1', { user: 'shared-person' }, 'hello')]);
    const users = w.sim.stats().users;
    const seen = Object.keys(users);
    expect(seen).toHaveLength(3);
    // Each userid saw exactly one call: alpha's call was not answered from beta's end user's memory.
    for (const u of seen) expect(users[u]!.calls).toBe(1);
    expect(seen).toContain(deriveUserid('shared-person'));
    expect(seen).toContain(deriveUserid('shared-person', '', 'alpha'));
    expect(seen).toContain(deriveUserid('shared-person', '', 'beta'));
  });

  it("an explicit userid another project has used is refused as a bad line that says so; the project's other lines run", async () => {
    await w.startWorker();
    const userid = '6f1c2a9e-3b7d-4c8e-9a1f-2d3e4f5a6b7c';
    const first = await runBatch(B, [chat('b1', { userid }, 'my PIN is 4242')]);
    expect(first.request_counts).toMatchObject({ completed: 1, failed: 0 });
    const second = await runBatch(A, [
      chat('a1', { userid }, 'what is my PIN?'),
      chat('a2', { user: 'someone-else' }, 'hello'),
    ]);
    expect(second.request_counts).toMatchObject({ total: 1, completed: 1 });
    expect(second.errors?.data).toEqual([
      expect.objectContaining({
        line: 1,
        param: 'userid',
        message: expect.stringMatching(/userid .* is used by another project/),
      }),
    ]);
    // The refused line never reached the upstream: the userid saw beta's call only.
    expect(w.sim.stats().users[userid]!.calls).toBe(1);
    // The project that used it first goes on using it.
    const again = await runBatch(B, [chat('b2', { userid }, 'and again')]);
    expect(again.request_counts).toMatchObject({ completed: 1 });
    expect(w.sim.stats().users[userid]!.calls).toBe(2);
  });
});
