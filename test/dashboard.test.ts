import { connect } from 'node:net';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import OpenAI from 'openai';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { compareBatches } from '../src/shared/reports/eval-report.js';
import { getRequests } from '../src/shared/batches/read-store.js';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { REDIS_URL, waitFor, waitForBatch } from './helpers/test-env.js';

const ALPHA = 'tok-dash-alpha';
const BETA = 'tok-dash-beta';
const ADMIN = 'tok-dash-admin';
/** Screenshots go here (CHATQ_SCREENSHOTS=docs/screenshots refreshes the README's). */
const SHOTS = process.env.CHATQ_SCREENSHOTS ?? join(tmpdir(), 'chatq-dashboard-shots');

const chat = (id: string, user: string, content: string, expect?: unknown, tags?: string[]) =>
  JSON.stringify({
    custom_id: id,
    user,
    model: 'gpt-4o-mini',
    messages: [{ role: 'user', content }],
    ...(expect ? { expect } : {}),
    ...(tags ? { tags } : {}),
  });

/** The numbers a batch row shows, read from the page. */
async function rowFigures(page: Page, batchId: string) {
  const row = page.locator(`[data-batch="${batchId}"]`).first();
  const field = async (f: string) => (await row.locator(`[data-field="${f}"]`).first().textContent())!.trim();
  return {
    status: await field('status'),
    done: Number(await field('done')),
    total: Number(await field('total')),
    succeeded: Number(await field('succeeded')),
    notSucceeded: Number(await field('notSucceeded')),
    cost: await field('cost'),
  };
}

const usd = (v: number) => `$${v < 0.01 && v > 0 ? v.toFixed(6) : v.toFixed(4)}`;

describe('dashboard in a real browser (Debian chromium)', () => {
  const w = useWorld({ latencyMs: 150 });
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${ALPHA},beta:${BETA}`, CHATQ_ADMIN_TOKENS: ADMIN });
  let browser: Browser;
  const contexts: BrowserContext[] = [];
  const signedIn = async (token: string | null) => {
    const ctx = await browser.newContext({
      viewport: { width: 1280, height: 900 },
      ...(token ? { httpCredentials: { username: 'dashboard', password: token } } : {}),
    });
    contexts.push(ctx);
    const page = await ctx.newPage();
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    return { page, errors };
  };
  const shot = (page: Page, name: string) => page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
  });
  // Before the API closes (hooks run last-registered first): a page's event stream that reconnects while the server
  // closes would hold its close.
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await browser?.close();
  });

  it('shows batches, a batch, costs, evaluations and a user as the API reports them; live progress; cancel from the page; projects apart', async () => {
    await w.startWorker();
    const api = (token: string) => new OpenAI({ apiKey: token, baseURL: `${a.api.url}/v1`, maxRetries: 0 });
    const alpha = api(ALPHA);
    // Two runs of a scheduled evaluation (the second regresses on q2), a batch of another project, and a slow one.
    const run1 = await w.env.submit(
      [
        chat('q1', 'eval-u1', 'hello', { contains: 'Noted' }, ['greeting']),
        chat('q2', 'eval-u2', 'hi', { contains: 'Noted' }, ['greeting', 'short']),
        chat('q3', 'eval-u3', '[fail 400] no', { contains: 'Noted' }),
      ],
      {
        project: 'alpha',
        name: 'nightly@2026-11-26T00:00:00.000Z',
        metadata: { schedule: 'nightly', fired_at: '2026-11-26T00:00:00.000Z' },
      },
    );
    const run2 = await w.env.submit(
      [
        chat('q1', 'eval-u4', 'hello', { contains: 'Noted' }, ['greeting']),
        chat('q2', 'eval-u5', 'hi', { contains: 'zebra' }, ['greeting', 'short']),
        chat('q3', 'eval-u6', 'hey', { contains: 'Noted' }),
      ],
      {
        project: 'alpha',
        name: 'nightly@2026-11-27T00:00:00.000Z',
        metadata: { schedule: 'nightly', fired_at: '2026-11-27T00:00:00.000Z' },
      },
    );
    const other = await w.env.submit([chat('b1', 'beta-user', 'secret of beta')], {
      project: 'beta',
      name: 'beta-only',
    });
    await Promise.all([run1, run2, other].map((b) => waitForBatch(w.env, b.batchId)));
    const slow = await w.env.submit(
      Array.from({ length: 100 }, (_, i) => chat(`s${i}`, 'slow-user', `turn ${i}`)),
      { project: 'alpha', name: 'slow import' },
    );
    const schedule = await fetch(`${a.api.url}/v1/schedules`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ALPHA}`, 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'nightly',
        cron: '0 3 1 1 *',
        input_file_id: (
          await alpha.files.create({ file: new File([chat('q1', 'x', 'hello')], 'suite.jsonl'), purpose: 'batch' })
        ).id,
      }),
    });
    expect(schedule.status).toBe(200);

    const { page, errors } = await signedIn(ALPHA);

    // Batches: every row's numbers are the API's; beta's batch is not there.
    await page.goto(`${a.api.url}/`);
    const listed = (await alpha.batches.list({ limit: 100 })).data;
    expect(await page.locator('tbody tr[data-batch]').count()).toBe(listed.length);
    expect(await page.content()).not.toContain('beta-only');
    for (const b of listed.filter((x) => x.status === 'completed')) {
      const f = await rowFigures(page, b.id);
      expect(f).toMatchObject({
        status: b.status,
        total: b.request_counts!.total,
        succeeded: b.request_counts!.completed,
        notSucceeded: b.request_counts!.failed,
      });
      expect(f.cost).toBe(usd((b as unknown as { chatq: { cost_usd: number } }).chatq.cost_usd));
    }
    await shot(page, 'batches');

    // With JavaScript off the same rows and numbers are there (the pages are rendered on the server).
    const noScript = await browser.newContext({
      javaScriptEnabled: false,
      httpCredentials: { username: 'dashboard', password: ALPHA },
    });
    contexts.push(noScript);
    const plain = await noScript.newPage();
    await plain.goto(`${a.api.url}/`);
    expect(await plain.locator('tbody tr[data-batch]').count()).toBe(listed.length);
    expect(await rowFigures(plain, run1.batchId)).toEqual(await rowFigures(page, run1.batchId));

    // Live: the slow batch's row moves on without a reload.
    const before = await rowFigures(page, slow.batchId);
    await waitFor(
      'the row to move on by itself',
      async () => (await rowFigures(page, slow.batchId)).done > before.done,
      20_000,
    );

    // One batch: counts, failures by reason, requests, downloads.
    await page.goto(`${a.api.url}/batches/${run1.batchId}`);
    const r1 = await alpha.batches.retrieve(run1.batchId);
    expect(await rowFigures(page, run1.batchId)).toMatchObject({
      status: 'completed',
      succeeded: r1.request_counts!.completed,
      notSucceeded: r1.request_counts!.failed,
    });
    expect(await page.locator('h2:has-text("Failures by reason") + table').textContent()).toContain('forced_failure');
    expect(await page.locator('h2:has-text("Requests") + table tbody tr').count()).toBe(3);
    const download = await page.request.get(`${a.api.url}/batches/${run1.batchId}/output.jsonl`);
    expect(await download.text()).toBe(await (await alpha.files.content(r1.output_file_id!)).text());
    await shot(page, 'batch');

    // The user's memory timeline: their requests in order, as GET /v1/users/:id/requests has them.
    const [first] = await getRequests(w.env.redis, w.env.keys, [`${slow.batchId}-1`]);
    const userid = first!.userid;
    await page.goto(`${a.api.url}/users/${userid}?project=alpha`);
    const apiTurns = (await (
      await fetch(`${a.api.url}/v1/users/${userid}/requests?limit=100`, {
        headers: { authorization: `Bearer ${ALPHA}` },
      })
    ).json()) as { data: { custom_id: string }[] };
    const shownIds = await page.locator('tbody tr td:nth-child(4)').allTextContents();
    expect(shownIds).toEqual(
      apiTurns.data
        .map((r) => r.custom_id)
        .reverse()
        .slice(0, 50),
    );

    // Cancel from the page: the batch ends cancelled, as the API says.
    await page.goto(`${a.api.url}/batches/${slow.batchId}`);
    await page.click('button:has-text("Cancel batch")');
    await page.waitForURL(`${a.api.url}/batches/${slow.batchId}`);
    const cancelled = await waitFor(
      'the cancel',
      async () => {
        const b = await alpha.batches.retrieve(slow.batchId);
        return b.status === 'cancelled' ? b : undefined;
      },
      20_000,
    );
    // The page learns it by itself (and reloads once for its final tables): no reload from here.
    const shown = await waitFor(
      'the page to show the cancel',
      async () => {
        const f = await rowFigures(page, slow.batchId);
        return f.status === 'cancelled' ? f : undefined;
      },
      20_000,
    );
    expect(shown).toMatchObject({
      succeeded: cancelled.request_counts!.completed,
      notSucceeded: cancelled.request_counts!.failed,
    });

    // Costs: the same totals as /v1/usage.
    await page.goto(`${a.api.url}/costs`);
    const byDay = (await (
      await fetch(`${a.api.url}/v1/usage?group_by=day`, { headers: { authorization: `Bearer ${ALPHA}` } })
    ).json()) as { data: { cost_usd: number }[] };
    expect(await page.locator('[data-field="total-cost"]').textContent()).toBe(
      usd(byDay.data.reduce((s, d) => s + d.cost_usd, 0)),
    );
    expect(await page.locator('svg.chart').count()).toBe(2);
    await shot(page, 'costs');

    // Evaluations: the schedule, its runs with their pass rates, and a comparison of the two.
    await page.goto(`${a.api.url}/evals`);
    await page.click('a:has-text("nightly")');
    // The click navigates: the schedule's page is there once its runs table is (counting does not wait for it).
    await page.locator('h2:has-text("Runs") + table').waitFor();
    expect(await page.locator('h2:has-text("Runs") + table tbody tr').count()).toBe(2);
    const rates = await page.locator('h2:has-text("Runs") + table tbody tr td:nth-child(5)').allTextContents();
    const passRate = async (id: string) => {
      const evals = (
        (await alpha.batches.retrieve(id)) as unknown as { chatq: { evals: { passed: number; failed: number } } }
      ).chatq.evals;
      return `${((evals.passed / (evals.passed + evals.failed)) * 100).toFixed(1)}%`;
    };
    expect(rates).toEqual([await passRate(run2.batchId), await passRate(run1.batchId)]);
    // Pass rate by tag, run over run (oldest first): the regression is in "short".
    const byTag = page.locator('h2:has-text("Pass rate by tag") + table');
    expect(await byTag.locator('thead th').allTextContents()).toEqual(['tag', '11-26 00:00', '11-27 00:00']);
    expect(await byTag.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.textContent))).toEqual([
      'greeting100.0% (2/2)50.0% (1/2)',
      'short100.0% (1/1)0.0% (0/1)',
    ]);
    await shot(page, 'evaluation');
    await page.click('button:has-text("Compare")');
    const expected = await compareBatches(w.env.redis, w.env.keys, run1.batchId, run2.batchId);
    expect(await page.locator('strong.grade-fail').textContent()).toBe(`${expected.regressed} regressed`);
    expect(await page.locator('strong.grade-pass').textContent()).toBe(`${expected.fixed} fixed`);
    expect(errors).toEqual([]);

    // Another project's batch is not found from alpha's pages.
    expect((await page.goto(`${a.api.url}/batches/${other.batchId}`))!.status()).toBe(404);
    expect((await page.goto(`${a.api.url}/admin/queues`))!.status()).toBe(404);
  });

  it('signs in with the login form; the operator board reads as it should; no cross-site posts', async () => {
    const { page } = await signedIn(null);
    // A browser without credentials gets the Basic prompt with the login form as its body; headless Chromium
    // cancels prompts, so this browser opens the form itself.
    const challenge = await fetch(`${a.api.url}/costs`, { headers: { accept: 'text/html' } });
    expect(challenge.status).toBe(401);
    expect(challenge.headers.get('www-authenticate')).toBe('Basic realm="chatq"');
    expect(await challenge.text()).toContain('name="token"');
    await page.goto(`${a.api.url}/login?next=/costs`);
    await page.fill('input[name="token"]', 'not-a-token');
    await page.click('button:has-text("Sign in")');
    expect(await page.locator('.error').textContent()).toContain('not one this server knows');
    await page.fill('input[name="token"]', ADMIN);
    await page.click('button:has-text("Sign in")');
    await page.waitForURL(`${a.api.url}/costs`);
    expect(await page.locator('h1').textContent()).toBe('Costs');

    // bull-board signed in by cookie, and opened as the report had it, with Basic auth in the URL (its page could
    // not fetch its translations then): its labels, not its i18n keys.
    const { page: byUrl } = await signedIn(null);
    const withCredentials = new URL(a.api.url);
    withCredentials.username = 'ops';
    withCredentials.password = ADMIN;
    for (const [p, url] of [
      [page, `${a.api.url}/admin/queues`],
      [byUrl, `${withCredentials.href}admin/queues`],
    ] as const) {
      await p.goto(url);
      await p.waitForSelector('text=0 Jobs', { timeout: 15_000 });
      const text = await p.locator('body').textContent();
      expect(text).not.toMatch(/QUEUE\.STATUS|MENU\.QUEUES|DASHBOARD\.JOBS_COUNT/);
      expect(text).toMatch(/QUEUES/i);
    }
    await shot(byUrl, 'admin-queues');

    // A form posted from another site is refused, signed in or not.
    const forged = await fetch(`${a.api.url}/login`, {
      method: 'POST',
      headers: { origin: 'https://evil.example', 'content-type': 'application/x-www-form-urlencoded' },
      body: `token=${ADMIN}`,
    });
    expect(forged.status).toBe(403);
    expect(forged.headers.get('set-cookie')).toBeNull();
    // Wrong tokens are refused; the right one still signs in after them (guessing is slowed: guessing.test.ts).
    const tryToken = (token: string) =>
      fetch(`${a.api.url}/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${token}`,
        redirect: 'manual',
      });
    const guesses = [];
    for (let i = 0; i < 10; i++) guesses.push((await tryToken(`guess-${i}`)).status);
    expect(guesses).toEqual(Array(10).fill(401));
    expect((await tryToken(ADMIN)).status).toBe(303);
    await page.goto(`${a.api.url}/`);
    await page.click('button:has-text("Sign out")');
    await page.waitForURL(`${a.api.url}/login`);
    expect((await page.request.get(`${a.api.url}/`, { headers: { accept: 'application/json' } })).status()).toBe(401);
  });
});

describe('live updates', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: ALPHA });

  it('cost Redis one read per watched batch per second, however many pages watch it', async () => {
    const { batchId } = await w.env.submit([chat('x1', 'live-user', 'hello')]);
    const key = w.env.keys.batch(batchId);
    // MONITOR on a plain socket: ioredis's monitor mode can take a monitored line for a reply when it comes in the same
    // packet as MONITOR's OK ("Command queue state error", seen in full runs on Node 24).
    const { hostname, port } = new URL(REDIS_URL);
    const monitor = connect(Number(port || 6379), hostname);
    monitor.write('MONITOR\r\n');
    // Each read of the batch's hash at the time Redis ran it (MONITOR's own timestamp, in ms): the test process may
    // take the monitored lines in late and in bunches, Redis's clock does not. And where the marker below ran.
    const reads: number[] = [];
    let marker = `chatq-monitor-on-${batchId}`;
    let marked = -1;
    const read = new RegExp(`"hgetall" "${key.replace(/[^\w]/g, '\\$&')}"`, 'i');
    let pending = '';
    monitor.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\r\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (marked < 0 && line.includes(marker)) marked = reads.length;
        if (read.test(line)) reads.push(Number(line.slice(0, line.indexOf(' '))) * 1000);
      }
    });
    await waitFor('MONITOR on', async () => {
      await w.env.redis.echo(marker);
      return marked >= 0;
    });
    marker = `chatq-live-marker-${batchId}`;
    marked = -1;
    const pages = Array.from({ length: 40 }, () => new AbortController());
    const streams = await Promise.all(
      pages.map((c) =>
        fetch(`${a.api.url}/ui/events?batches=${batchId}`, {
          headers: { authorization: `Bearer ${ALPHA}` },
          signal: c.signal,
        }),
      ),
    );
    expect(streams.every((s) => s.status === 200 && s.headers.get('content-type') === 'text/event-stream')).toBe(true);
    // Every page gets the batch's figures once...
    const firstEvent = async (s: Response) => {
      const reader = s.body!.getReader();
      let text = '';
      while (!text.includes('event: batch')) text += new TextDecoder().decode((await reader.read()).value);
      return JSON.parse(/data: (.*)\n/.exec(text)![1]!) as { id: string; total: number };
    };
    expect((await Promise.all(streams.map(firstEvent))).every((e) => e.id === batchId && e.total === 1)).toBe(true);
    // ...while the server reads the batch once a tick (a second) for all 40 of them, not once per page. Reads less
    // than 200 ms apart (by Redis's clock) are one tick's. Every page's opening read was sent before the marker, but a
    // page may get its first figures from a tick begun before it opened, so the first group after the marker may
    // still hold opening reads (or a tick begun before it); the next two (complete once a third has begun) are ticks
    // of the timer: one read each, where a read per page would be 40. A slow machine only spaces the ticks more.
    await w.env.redis.echo(marker);
    await waitFor('the marker', async () => marked >= 0);
    const ticks = () =>
      reads.slice(marked).reduce<number[][]>((groups, t) => {
        const last = groups.at(-1);
        if (last && t - last.at(-1)! < 200) last.push(t);
        else groups.push([t]);
        return groups;
      }, []);
    await waitFor('four ticks', async () => ticks().length >= 4);
    expect(
      ticks()
        .slice(1, 3)
        .map((g) => g.length),
    ).toEqual([1, 1]);
    for (const c of pages) c.abort();
    monitor.destroy();
  });
});
