import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { LocomoReport } from '../src/shared/reports/benchmark-report.js';
import { benchmarkTable } from '../src/shared/reports/benchmark-table.js';
import { publishedLocomoSample } from './helpers/benchmark-files.js';
import { useApi, useWorld } from './helpers/in-process-worker.js';
import { waitForBatch } from './helpers/test-env.js';

const TOKEN = 'tok-dash-bench';

describe('a memory benchmark run on the dashboard (Debian chromium)', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: TOKEN });
  let browser: Browser;
  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox'],
    });
  });
  afterAll(async () => {
    await browser?.close();
  });

  it("shows its paper's table, each question with its reference, reply and verdicts, and two runs side by side", async () => {
    const file = [JSON.stringify([publishedLocomoSample()])];
    const one = await w.env.submit(file, { source: 'locomo.json', defaultModel: 'gpt-4o-mini' });
    const two = await w.env.submit(file, {
      source: 'locomo.json',
      defaultModel: 'gpt-4o-mini',
      benchmark: { grader: 'chatq' },
    });
    await w.startWorker();
    await Promise.all([waitForBatch(w.env, one.batchId), waitForBatch(w.env, two.batchId)]);
    const reportOf = async (id: string) =>
      (await (
        await fetch(`${a.api.url}/v1/batches/${id}/benchmark`, { headers: { authorization: `Bearer ${TOKEN}` } })
      ).json()) as LocomoReport;
    const ctx = await browser.newContext({ httpCredentials: { username: 'dashboard', password: TOKEN } });
    const page = await ctx.newPage();
    const cells = (selector: string) =>
      page
        .locator(`${selector} tbody tr`)
        .evaluateAll((rows) => rows.map((r) => [...r.querySelectorAll('td')].map((td) => td.textContent!.trim())));
    try {
      await page.goto(`${a.api.url}/batches/${one.batchId}`);
      // The table on the page is the report's, figure for figure.
      expect(await cells(`[data-benchmark="${one.batchId}"]`)).toEqual(
        benchmarkTable(await reportOf(one.batchId)).rows,
      );
      expect(await page.locator('h2:has-text("LoCoMo")').count()).toBe(1);
      const questions = await cells('h2#questions + table');
      expect(questions.map((q) => q[0])).toEqual(['conv-7/qa-1', 'conv-7/qa-2', 'conv-7/qa-3', 'conv-7/qa-4']);
      // Each question: its reference, the reply as LoCoMo's scorer reads it, and each grader's verdict.
      expect(questions[1]).toEqual([
        'conv-7/qa-2',
        'single-hop',
        'What did Melanie run?',
        'a charity race',
        expect.any(String),
        expect.stringMatching(/^(correct|wrong) \(gpt-4o-mini\) · F1 \d\.\d{3} · B1 \d\.\d{3}$/),
      ]);
      expect(questions[2]![5]).toMatch(/^F1 [01]\.\d{3}$/);
      await page.goto(`${a.api.url}/compare?a=${one.batchId}&b=${two.batchId}`);
      const side = await cells('[data-benchmark="compare"]');
      expect(side.map((r) => r[0])).toEqual(benchmarkTable(await reportOf(one.batchId)).rows.map((r) => r[0]));
      expect(side.at(-1)!.length).toBe(1 + 4 * 3);
    } finally {
      await ctx.close();
    }
  });
});
