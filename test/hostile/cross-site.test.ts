import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { useApi, useWorld } from '../helpers/in-process-worker.js';

const ALPHA = 'tok-csrf-alpha';
const ENCTYPES = ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data'];

/** Another site (evil.test, mapped to this machine): its page posts a form to `target` as soon as it loads. */
function attackerSite(): Promise<{ server: Server; url: (target: string, enctype: string) => string }> {
  const server = createServer((req, res) => {
    const q = new URL(req.url!, 'http://evil.test').searchParams;
    const target = q.get('target')!.replace(/"/g, '');
    res.setHeader('content-type', 'text/html');
    res.end(
      `<form id="f" method="POST" action="${target}" enctype="${q.get('enctype')}"><input name="reason" value="x"></form><script>document.getElementById('f').submit()</script>`,
    );
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as AddressInfo).port;
      resolve({
        server,
        url: (target, enctype) =>
          `http://evil.test:${port}/?target=${encodeURIComponent(target)}&enctype=${encodeURIComponent(enctype)}`,
      });
    }),
  );
}

describe('cross-site posts in a real browser (Debian chromium)', () => {
  const w = useWorld();
  const a = useApi(w, { CHATQ_API_TOKENS: `alpha:${ALPHA}` });
  let browser: Browser;
  let attacker: Awaited<ReturnType<typeof attackerSite>>;
  const contexts: BrowserContext[] = [];

  beforeAll(async () => {
    browser = await chromium.launch({
      executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
      args: ['--no-sandbox', '--host-resolver-rules=MAP evil.test 127.0.0.1'],
    });
    attacker = await attackerSite();
  });
  // Before the API closes (hooks run last-registered first): a page's event stream that reconnects while the server
  // closes would hold its close.
  afterEach(async () => {
    await Promise.all(contexts.splice(0).map((c) => c.close()));
  });
  afterAll(async () => {
    await browser?.close();
    attacker?.server.close();
  });

  it("a form on another site cannot cancel a batch, whatever its encoding, path spelling or the victim's sign-in", async () => {
    const submitted = await w.env.submit(
      [JSON.stringify({ user: 'victim', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] })],
      { project: 'alpha' },
    );
    const id = submitted.batchId;
    // One victim signed in with Basic auth, one with the login form's cookie; both have the dashboard open.
    const basic = await browser.newContext({ httpCredentials: { username: 'victim', password: ALPHA } });
    const cookie = await browser.newContext();
    contexts.push(basic, cookie);
    const signIn = await cookie.newPage();
    await signIn.goto(`${a.api.url}/login`);
    await signIn.fill('input[name=token]', ALPHA);
    await signIn.click('button[type=submit]');
    await signIn.waitForURL(`${a.api.url}/`);
    const answers: number[] = [];
    for (const ctx of [basic, cookie]) {
      const page = await ctx.newPage();
      await page.goto(`${a.api.url}/batches/${id}`);
      for (const path of [
        `/batches/${id}/cancel`,
        `/%761/batches/${id}/cancel`,
        `/v1/batches/${id}/cancel`,
        `/b%61tches/${id}/cancel`,
      ]) {
        for (const enctype of ENCTYPES) {
          const posted = page.waitForResponse((r) => r.request().method() === 'POST' && r.url().startsWith(a.api.url));
          await page.goto(attacker.url(`${a.api.url}${path}`, enctype));
          answers.push((await posted).status());
        }
      }
    }
    expect(answers).toHaveLength(24);
    for (const status of answers) expect([401, 403, 404]).toContain(status);
    expect((await w.env.batch(id)).status).toBe('in_progress');
    // The same button on the dashboard itself still cancels.
    const page = await basic.newPage();
    await page.goto(`${a.api.url}/batches/${id}`);
    await page.click('form[action$="/cancel"] button');
    await page.waitForURL(`${a.api.url}/batches/${id}`);
    expect((await w.env.batch(id)).status).toMatch(/^cancel/);
  });
});
