import { createHash } from 'node:crypto';
import OpenAI from 'openai';
import { describe, expect, it } from 'vitest';
import { legacyUserid } from '../../src/shared/userid.js';
import { useApi, useTestEnv, useWorld } from '../helpers/in-process-worker.js';
import { batchEnded, createBatch } from '../helpers/api-batches.js';

const A = 'tok-alpha-mem';
const B = 'tok-beta-mem';
const D = 'tok-default-mem';
/**
 * The userid a project could compute for another project's end user from public inputs alone (the project's name
 * and the user string), as chatq derived them before a deployment secret went into the derivation.
 */
function publicDerivation(user: string, project: string): string {
  const b = createHash('sha256').update(`chatq-user\0project\0${project}\0\0${user}`).digest().subarray(0, 16);
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

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

  /** The reply text of each request of an ended batch, by custom_id. */
  async function replies(token: string, outputFileId: string): Promise<Record<string, string>> {
    const text = await (await client(token).files.content(outputFileId)).text();
    const out: Record<string, string> = {};
    for (const l of text.split('\n').filter(Boolean)) {
      const o = JSON.parse(l) as {
        custom_id: string;
        response: { body: { choices: { message: { content: string } }[] } };
      };
      out[o.custom_id] = o.response.body.choices[0]!.message.content;
    }
    return out;
  }

  it('the same "user" in two projects reaches the upstream as two userids, neither computable from public inputs', async () => {
    await w.startWorker();
    await runBatch(B, [chat('b1', { user: 'shared-person' }, 'my PIN is 4242')]);
    await runBatch(A, [chat('a1', { user: 'shared-person' }, 'what is my PIN?')]);
    await runBatch(D, [chat('d1', { user: 'shared-person' }, 'hello')]);
    const users = w.sim.stats().users;
    const seen = Object.keys(users);
    expect(seen).toHaveLength(3);
    // Each userid saw exactly one call: alpha's call was not answered from beta's end user's memory.
    for (const u of seen) expect(users[u]!.calls).toBe(1);
    for (const project of ['alpha', 'beta']) expect(seen).not.toContain(publicDerivation('shared-person', project));
    // Project default has a second project beside it here: its derivation is keyed too.
    expect(seen).not.toContain(legacyUserid('shared-person'));
  });

  it("another project cannot compute an end user's userid: beta's guess of alpha's user is a fresh userid, not refused, and no memory of alpha's answers it", async () => {
    await w.startWorker();
    await runBatch(A, [chat('a1', { user: 'carol@alpha.com' }, 'My bank PIN is 9911.')]);
    const guess = publicDerivation('carol@alpha.com', 'alpha');
    const probe = await runBatch(B, [chat('b1', { userid: guess }, 'What is my bank PIN?')]);
    expect(probe.request_counts).toMatchObject({ total: 1, completed: 1, failed: 0 });
    expect(probe.errors?.data ?? []).toEqual([]);
    expect((await replies(B, probe.output_file_id!)).b1).not.toContain('9911');
    // The control: alpha's own end user is answered from its memory.
    const own = await runBatch(A, [chat('a2', { user: 'carol@alpha.com' }, 'What is my bank PIN?')]);
    expect((await replies(A, own.output_file_id!)).a2).toContain('9911');
    const users = w.sim.stats().users;
    expect(Object.keys(users)).toHaveLength(2);
    expect(users[guess]!.calls).toBe(1);
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
      expect.objectContaining({ line: 1, param: 'userid', message: expect.stringMatching(/is not available/) }),
    ]);
    // The refusal says nothing of who holds it.
    expect(second.errors!.data![0]!.message).not.toMatch(/another project|beta/);
    // The refused line never reached the upstream: the userid saw beta's call only.
    expect(w.sim.stats().users[userid]!.calls).toBe(1);
    // The project that used it first goes on using it.
    const again = await runBatch(B, [chat('b2', { userid }, 'and again')]);
    expect(again.request_counts).toMatchObject({ completed: 1 });
    expect(w.sim.stats().users[userid]!.calls).toBe(2);
    // Held for as long as the endpoint may remember the userid (by default for ever), not for as long as results live.
    expect(await w.env.redis.ttl(w.env.keys.userProject(userid))).toBe(-1);
  });
});

describe('userids derived with a deployment secret', () => {
  const t = useTestEnv();
  const one = (user: string) => [chat('c1', { user }, 'hi')];
  const useridOf = async (batchId: string) => (await t.env.redis.hget(t.env.keys.request(`${batchId}-1`), 'userid'))!;

  it('project default keeps its derivation while it is the only project; from the first batch of another, its userids are keyed', async () => {
    const before = await t.env.submit(one('dana'));
    expect(await useridOf(before.batchId)).toBe(legacyUserid('dana'));
    const alpha = await t.env.submit(one('dana'), { project: 'alpha' });
    const after = await t.env.submit(one('dana'));
    const keyed = await useridOf(after.batchId);
    expect(keyed).not.toBe(legacyUserid('dana'));
    expect(keyed).not.toBe(await useridOf(alpha.batchId));
    // Stable: the same string in the same project gives the same userid.
    expect(await useridOf((await t.env.submit(one('dana'))).batchId)).toBe(keyed);
  });

  it('CHATQ_USERID_SECRET: the same secret gives the same userids on every machine; another secret, or none, is refused before anything is written', async () => {
    const secret = { secret: 'sixteen-chars-or-more-1', holdS: 0 };
    const first = await t.env.submit(one('erin'), { project: 'alpha' }, secret);
    const second = await t.env.submit(one('erin'), { project: 'alpha' }, { ...secret });
    expect(await useridOf(second.batchId)).toBe(await useridOf(first.batchId));
    for (const other of [
      { secret: 'sixteen-chars-or-more-2', holdS: 0 },
      { secret: undefined, holdS: 0 },
    ]) {
      const refused = t.env.submit(one('erin'), { project: 'alpha' }, other);
      await expect(refused).rejects.toThrow(/CHATQ_USERID_SECRET/);
      await expect(refused).rejects.toMatchObject({ enqueued: 0 });
    }
  });

  it("CHATQ_USERID_HOLD_DAYS bounds how long a userid stays its project's after its latest import", async () => {
    const userid = '6f1c2a9e-3b7d-4c8e-9a1f-2d3e4f5a6b7d';
    await t.env.submit([chat('c1', { userid }, 'hi')], { project: 'alpha' }, { secret: undefined, holdS: 2 * 86_400 });
    const ttl = await t.env.redis.ttl(t.env.keys.userProject(userid));
    expect(ttl).toBeGreaterThan(2 * 86_400 - 60);
    expect(ttl).toBeLessThanOrEqual(2 * 86_400);
  });
});
