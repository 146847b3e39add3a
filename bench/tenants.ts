/**
 * bench/tenants: two projects on one deployment. Alpha's ordinary batch (300 lines: 30 users x 10 turns) alone, then
 * behind beta's heavy lines (1,000 users, each one call of ~6.9k tokens, just under the large-call cutoff of a TPM
 * limit, under that limit), then behind beta's 3,000 plain lines of 300 users (no limit). Alpha's time against its
 * time alone, same run and limits (target: at most 2x behind the plain lines). Prints one JSON line.
 *   npx tsx bench/tenants.ts [--concurrency 50] [--latency-ms 200] [--tpm 80000]
 */
import { waitForBatch } from '../test/helpers/test-env.js';
import { arg, round, sleep, startSimulatorProcess, withWorker } from './bench-kit.js';

const C = arg('concurrency', 50);
const LATENCY = arg('latency-ms', 200);
const TPM = arg('tpm', 80_000);
/** How long alpha's batch is given: past it, how many of its 300 lines were done is reported instead. */
const CAP_S = arg('cap-s', 300);

const line = (i: number, user: string, content: string, extra: Record<string, unknown> = {}) =>
  JSON.stringify({ custom_id: `r${i}`, user, model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });
const alphaLines = Array.from({ length: 300 }, (_, i) =>
  line(i, `alpha-${i % 30}`, `question ${i}`, { max_tokens: 50 }),
);
const words = (n: number, seed: number) =>
  Array.from({ length: n }, (_, i) => `word${(i * 13 + seed) % 5_000}`).join(' ');
const heavyLines = Array.from({ length: 1_000 }, (_, i) =>
  line(i, `beta-${i}`, words(1_900, i), { max_tokens: 1_000 }),
);
const plainLines = Array.from({ length: 3_000 }, (_, i) =>
  line(i, `beta-${i % 300}`, `hello ${i}`, { max_tokens: 50 }),
);

/** Alpha's batch time (s) on a fresh prefix, after beta's lines (if any) are under way; with a TPM limit or none. */
const alphaSeconds = (simUrl: string, beta: string[] | undefined, tpm = 0) =>
  withWorker({ CHATQ_BASE_URL: simUrl, CHATQ_CONCURRENCY: String(C), CHATQ_TPM: String(tpm) }, async (env) => {
    const b = beta ? await env.submit(beta, { project: 'beta' }) : undefined;
    if (b) await sleep(3_000);
    const t0 = performance.now();
    const a = await env.submit(alphaLines, { project: 'alpha' });
    const finished = await waitForBatch(env, a.batchId, CAP_S * 1000).catch(() => undefined);
    const s = (performance.now() - t0) / 1000;
    const alphaDone = finished ? finished.succeeded : (await env.batch(a.batchId)).succeeded;
    return { s: finished ? s : Number.NaN, alphaDone, betaDone: b ? (await env.batch(b.batchId)).succeeded : 0 };
  });

const sim = await startSimulatorProcess(['--latency-ms', String(LATENCY)]);
// Alpha alone, under the TPM limit (which its batch is far from: it binds beta's heavy lines) and without one.
const aloneLimited = await alphaSeconds(sim.url, undefined, TPM);
const heavy = await alphaSeconds(sim.url, heavyLines, TPM);
const alone = await alphaSeconds(sim.url, undefined);
const plain = await alphaSeconds(sim.url, plainLines);
await sim.stop();
console.log(
  JSON.stringify({
    bench: 'tenants',
    concurrency: C,
    upstream_latency_ms: LATENCY,
    tpm: TPM,
    alpha_alone_under_tpm_s: round(aloneLimited.s, 2),
    alpha_behind_heavy_s: round(heavy.s, 2),
    alpha_behind_heavy_ratio: round(heavy.s / aloneLimited.s, 2),
    alpha_done_behind_heavy: `${heavy.alphaDone}/300 (given ${CAP_S} s)`,
    beta_heavy_calls_meanwhile: heavy.betaDone,
    alpha_alone_s: round(alone.s, 2),
    alpha_behind_plain_s: round(plain.s, 2),
    alpha_behind_plain_ratio: round(plain.s / alone.s, 2),
    alpha_done_behind_plain: `${plain.alphaDone}/300 (given ${CAP_S} s)`,
    beta_plain_calls_meanwhile: plain.betaDone,
  }),
);
process.exit(0);
