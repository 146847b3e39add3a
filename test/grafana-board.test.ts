import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { startApiService } from '../src/cli/api-service.js';
import { createTestEnv, testLogger } from './helpers/test-env.js';

interface Board {
  panels: { title: string; targets: { expr: string }[] }[];
}

const board = JSON.parse(readFileSync(new URL('../deploy/grafana/chatq.json', import.meta.url), 'utf8')) as Board;
/** Every query of the board, with its variables as Grafana fills them when "All" is chosen. */
const queries = board.panels.flatMap((p) =>
  p.targets.map((t) => ({ panel: p.title, expr: t.expr.replace(/\$project/g, '.*') })),
);

describe('the Grafana board (deploy/grafana/chatq.json)', () => {
  it('every query is valid PromQL (promtool) and reads only series that /metrics exposes', async () => {
    expect(queries.length).toBeGreaterThanOrEqual(10);
    // PromQL: each query as a recording rule, checked by promtool.
    const dir = mkdtempSync(join(tmpdir(), 'chatq-board-'));
    try {
      const rules = queries.map((q, i) => `      - record: board:query_${i}\n        expr: ${JSON.stringify(q.expr)}`);
      writeFileSync(join(dir, 'board.yml'), `groups:\n  - name: board\n    rules:\n${rules.join('\n')}\n`);
      const check = spawnSync('promtool', ['check', 'rules', 'board.yml'], { cwd: dir, encoding: 'utf8' });
      expect(check.status, check.stdout + check.stderr).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }

    // Series: what a running chatq's /metrics declares (scraped as an admin, as Prometheus should).
    const env = await createTestEnv();
    const api = await startApiService(env.config({ CHATQ_ADMIN_TOKENS: 'board-admin' }), testLogger(), 0);
    try {
      const text = await (
        await fetch(`${api.url}/metrics`, { headers: { authorization: 'Bearer board-admin' } })
      ).text();
      const declared = new Map([...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
      const exposed = (name: string) => {
        const histogram = /^(.+)_(bucket|sum|count)$/.exec(name);
        return declared.has(name) || (histogram !== null && declared.get(histogram[1]!) === 'histogram');
      };
      const unknown = queries.flatMap((q) =>
        [...q.expr.matchAll(/\bchatq_[a-z0-9_]+/g)]
          .map((m) => m[0])
          .filter((n) => !exposed(n))
          .map((n) => `${q.panel}: ${n}`),
      );
      expect(unknown).toEqual([]);
    } finally {
      await api.close();
      await env.cleanup();
    }
  });
});
