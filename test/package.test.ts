import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { startSimulator } from '../src/simulator/simulator-server.js';
import { createTestEnv, REDIS_URL } from './helpers/test-env.js';

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, '..');
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

/** A service's code, as a user of the package writes it: strict, nodenext, the documented calls. */
const CONSUMER = `import { BadLineError, BatchNotFoundError, Chatq, type ChatLine, type OutputLine, type ScriptLine } from 'chatq';

const chatq = new Chatq({ redisUrl: process.env.REDIS_URL, prefix: process.env.CHATQ_PREFIX, logLevel: 'warn' });
const worker = await chatq.startWorker({ baseUrl: process.env.SIM_URL, concurrency: 10 });
const chats: ChatLine[] = [
  { custom_id: 'a', user: 'ann', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] },
  { custom_id: 'b', user: 'bob', model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] },
];
const script: ScriptLine = { script_id: 'c', user: 'cyd', model: 'gpt-4o-mini', turns: ['one', 'two'] };
async function* lines() {
  yield* chats;
  yield script;
}
const batch = await chatq.submit(lines(), { name: 'nightly' });
const ended = await chatq.wait(batch.id);
const results: OutputLine[] = [];
for await (const line of chatq.results(batch.id)) results.push(line);
let notFound = '';
try {
  await chatq.status('batch_000000000000000000000000');
} catch (err) {
  if (err instanceof BatchNotFoundError) notFound = err.batchId;
}
let badLine = '';
try {
  await chatq.submit([{ custom_id: 'x', model: 'gpt-4o-mini', messages: [] }], { strict: true });
} catch (err) {
  if (err instanceof BadLineError) badLine = \`\${err.line}:\${err.field}\`;
}
const [usage] = await chatq.report({ by: 'batch', batch: batch.id });
console.log(
  JSON.stringify({
    status: ended.status,
    succeeded: ended.succeeded,
    results: results.map((r) => r.custom_id),
    requests: usage?.requests,
    notFound,
    badLine,
  }),
);
await worker.close();
await chatq.close();
`;

describe('the npm package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-pack-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('packs only what runs; a strict nodenext TypeScript project installs it, compiles against its types and runs it', async () => {
    const packed = JSON.parse(
      (await run('npm', ['pack', '--json', '--pack-destination', dir], { cwd: ROOT, maxBuffer: 64 << 20 })).stdout,
    )[0] as { filename: string; size: number; entryCount: number; files: { path: string }[] };
    const paths = packed.files.map((f) => f.path);
    expect(paths).toContain('dist/index.js');
    expect(paths).toContain('dist/index.d.ts');
    expect(paths.filter((p) => /^(test|bench|src)\/|\.map$|\.test\./.test(p))).toEqual([]);

    const consumer = join(dir, 'consumer');
    const devTypes = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).devDependencies['@types/node'];
    await run('mkdir', ['-p', join(consumer, 'src')]);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({
        name: 'consumer',
        private: true,
        type: 'module',
        dependencies: { chatq: `file:${join(dir, packed.filename)}` },
        devDependencies: { '@types/node': devTypes },
      }),
    );
    writeFileSync(
      join(consumer, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          module: 'nodenext',
          moduleResolution: 'nodenext',
          target: 'es2022',
          outDir: 'out',
          rootDir: 'src',
        },
      }),
    );
    writeFileSync(join(consumer, 'src', 'index.ts'), CONSUMER);
    await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--ignore-scripts'], {
      cwd: consumer,
      timeout: 300_000,
    });
    // No skipLibCheck: the package's declarations, and what they import, compile under --strict.
    await run(process.execPath, [TSC, '-p', 'tsconfig.json'], { cwd: consumer }).catch((err: { stdout: string }) => {
      throw new Error(`the consumer does not compile:\n${err.stdout}`);
    });

    const env = await createTestEnv();
    const sim = await startSimulator({ latencyMs: 5 });
    try {
      const out = await run(process.execPath, ['out/index.js'], {
        cwd: consumer,
        timeout: 60_000,
        env: { ...process.env, REDIS_URL, CHATQ_PREFIX: env.prefix, SIM_URL: sim.url, LOG_LEVEL: 'warn' },
      });
      expect(JSON.parse(out.stdout.trim())).toEqual({
        status: 'completed',
        succeeded: 4,
        results: ['a', 'b', 'c-turn-1', 'c-turn-2'],
        requests: 4,
        notFound: 'batch_000000000000000000000000',
        badLine: '1:messages',
      });
    } finally {
      await sim.close();
      await env.cleanup();
    }
  });
});
