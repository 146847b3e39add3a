import { createServer } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { readBatchRequests } from '../../src/shared/batches/read-store.js';
import { grade } from '../../src/shared/expectations.js';
import { startSimulator } from '../../src/simulator/simulator-server.js';
import { CapacityLimiter, isReservation } from '../../src/worker/capacity/capacity-limiter.js';
import { estimateTokens } from '../../src/shared/token-bounds.js';
import { createTestEnv, spawnWorker, waitFor, waitForBatch, type WorkerProcess } from '../helpers/test-env.js';
import { startWorker } from '../helpers/in-process-worker.js';
import type { WorkerPool } from '../../src/worker/worker-pool.js';

/** Whether `p` is fulfilled within `ms`; a rejection is thrown (it is no answer in time). */
const within = <T>(p: Promise<T>, ms: number) =>
  Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
const line = (u: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    custom_id: u,
    user: u,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content: 'hi' }],
    ...extra,
  });

describe('no line, call or crash stalls the other users', () => {
  const cleanups: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
  });
  const env = async () => {
    const e = await createTestEnv();
    cleanups.push(() => e.cleanup());
    return e;
  };
  const sim = async (o: Parameters<typeof startSimulator>[0] = {}) => {
    const s = await startSimulator(o);
    cleanups.push(() => s.close());
    return s;
  };

  it('an absurd token estimate leaves no half-written limiter state behind', async () => {
    const e = await env();
    const limiter = new CapacityLimiter(
      e.redis,
      e.keys,
      { rpm: 0, tpm: 100_000, modelLimits: {}, defaultMaxTokens: 100, lockMs: 1_000 },
      'p',
    );
    // A body that slipped past the parser (an old record, a hand-made job): the limiter clamps, never writes half a reservation.
    const hostile = await limiter.acquire('m', { messages: [{ role: 'user', content: 'x' }], max_tokens: 1e19 });
    expect(isReservation(hostile)).toBe(true);
    if (isReservation(hostile)) await limiter.settle(hostile, 10, true);
    expect(
      await within(limiter.acquire('m', { messages: [{ role: 'user', content: 'hello' }], max_tokens: 10 }), 2_000),
    ).toBe(true);
    // Every key the limiter wrote has a lifetime (the credentials mark is one key, bounded by its cardinality).
    const written = [
      ...(await e.redis.keys(`${e.prefix}:limit:*`)),
      ...(await e.redis.keys(`${e.prefix}:credentials-probe`)),
    ];
    expect(written.length).toBeGreaterThan(0);
    for (const key of written) expect(await e.redis.pttl(key), key).toBeGreaterThan(0);
  });

  it('long text without spaces is estimated by a proven upper bound (its UTF-8 bytes), not by the quadratic tokenizer', () => {
    const text = 'a'.repeat(100_000);
    expect(estimateTokens({ messages: [{ role: 'user', content: text }], max_tokens: 10 }, 1024)).toBe(
      3 + 4 + 100_000 + 10,
    );
    // Ordinary text still goes through the tokenizer.
    expect(estimateTokens({ messages: [{ role: 'user', content: 'hello there' }], max_tokens: 10 }, 1024)).toBeLessThan(
      3 + 4 + 11 + 10,
    );
    // Images count as a fixed estimate, not as the tokens of their base64 text.
    const image = { type: 'image_url', image_url: { url: `data:image/png;base64,${'A'.repeat(200_000)}` } };
    expect(
      estimateTokens(
        { messages: [{ role: 'user', content: [{ type: 'text', text: 'what is it?' }, image] }], max_tokens: 10 },
        1024,
      ),
    ).toBeLessThan(2_000);
  });

  it('grading a backtracking-prone regex takes linear time', () => {
    const reply = `${'a'.repeat(40)}!`;
    const g = grade({ regex: '(a+)+$' }, reply, 10);
    expect(g.pass).toBe(false);
    expect(grade({ regex: '/^A+!$/i' }, reply, 10).pass).toBe(true);
  });

  it('a SIGKILLed credentials prober frees the probe lease within the lock duration', async () => {
    const e = await env();
    const s = await sim({ latencyMs: 20_000 });
    await e.submit(['a', 'b', 'c'].map((u) => line(u)));
    const vars = { CHATQ_BASE_URL: s.url, CHATQ_LOCK_MS: '2000', CHATQ_TIMEOUT_MS: '3000', CHATQ_RECONCILE_MS: '500' };
    const prober: WorkerProcess = spawnWorker(e.env(vars));
    cleanups.push(async () => prober.child.kill('SIGKILL'));
    await waitFor('the probe call', async () => s.stats().calls >= 1, 20_000);
    // The lease stands (-2 would be a missing key) and lasts the lock duration at most.
    const lease = await e.redis.pttl(e.keys.credentialsProbe);
    expect(lease).toBeGreaterThan(0);
    expect(lease).toBeLessThanOrEqual(2_000);
    prober.child.kill('SIGKILL');
    await prober.exited;
    s.configure({ latencyMs: 0 });
    const pool = await startWorker(e.config(vars), s.url);
    cleanups.push(() => pool.close());
    await waitFor('the others to go on', async () => s.stats().answered >= 3, 20_000);
  });

  it('an upstream outage fails nobody however long it lasts; once the upstream is back, a successful call ends the outage pause for everyone', async () => {
    const e = await env();
    const s = await sim();
    const pool: WorkerPool = await startWorker(
      e.config({ CHATQ_BACKOFF_MS: '1000', CHATQ_CONCURRENCY: '10', CHATQ_MAX_ATTEMPTS: '2' }),
      s.url,
    );
    cleanups.push(() => pool.close());
    // Credentials proven first, so that the outage meets calls from every slot.
    await waitForBatch(e, (await e.submit([line('warm-up')])).batchId, 20_000);
    s.configure({ down: true });
    s.reset();
    const submitted = await e.submit(Array.from({ length: 10 }, (_, i) => line(`u${i}`)));
    // Let the outage last a few backoff rounds, then bring the upstream back right after a round failed.
    await waitFor('a long outage', async () => s.stats().calls >= 40, 60_000, 20);
    const round = s.stats().calls;
    await waitFor('the next failed round', async () => s.stats().calls >= round + 5, 60_000, 5);
    const backoffLeft = await waitFor('the backoff on record', () =>
      e.redis.pttl(e.keys.outageUntil).then((ms) => ms > 0 && ms),
    );
    s.configure({ down: false });
    const up = Date.now();
    const batch = await waitForBatch(e, submitted.batchId, 60_000);
    // Nobody waited out the backoff on record when the upstream came back: the first success ended it for all.
    expect(Date.now() - up, `backoff on record ${backoffLeft} ms`).toBeLessThan(backoffLeft);
    // Far more connection failures than CHATQ_MAX_ATTEMPTS, and none of them failed a request: an outage is no try.
    expect(batch).toMatchObject({ succeeded: 10, failed: 0 });
    let refused = 0;
    for await (const r of readBatchRequests(e.redis, e.keys, submitted.batchId))
      refused += r.attemptLog.filter((a) => a.code === 'connection_error').length;
    expect(refused).toBeGreaterThan(2);
  });

  it('an upstream answer over 32 MiB is not read whole: the request fails as malformed, not as an outage', async () => {
    const e = await env();
    const chunk = Buffer.alloc(1024 * 1024, 'a');
    const big = createServer((req, res) => {
      req.resume();
      // A well-formed chat completion, 40 MiB long: read whole, it would pass as a reply.
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(
        '{"id":"x","object":"chat.completion","model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"',
      );
      let sent = 0;
      const more = () => {
        while (sent < 40 && res.write(chunk)) sent += 1;
        if (sent < 40)
          res.once('drain', () => {
            sent += 1;
            more();
          });
        else res.end('"}}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}');
      };
      more();
    });
    await new Promise<void>((r) => big.listen(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise((r) => big.close(r)));
    const submitted = await e.submit([line('huge')]);
    const pool = await startWorker(
      e.config({ CHATQ_MAX_ATTEMPTS: '2', CHATQ_BACKOFF_MS: '50' }),
      `http://127.0.0.1:${(big.address() as { port: number }).port}/v1`,
    );
    cleanups.push(() => pool.close());
    const batch = await waitForBatch(e, submitted.batchId, 60_000);
    expect(batch).toMatchObject({ failed: 1, errors: { malformed_response: 1 } });
  });
});
