import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const DIR = fileURLToPath(new URL('../deploy/prometheus', import.meta.url));
const promtool = (...args: string[]) => spawnSync('promtool', args, { cwd: DIR, encoding: 'utf8' });

describe('the shipped Prometheus rules (deploy/prometheus)', () => {
  it("are valid, and their unit tests pass (promtool, from Debian's prometheus)", () => {
    const check = promtool('check', 'rules', 'chatq-rules.yml');
    expect(check.status, check.stdout + check.stderr).toBe(0);
    expect(check.stdout).toMatch(/SUCCESS: \d+ rules found/);
    const test = promtool('test', 'rules', 'chatq-rules.test.yml');
    expect(test.status, test.stdout + test.stderr).toBe(0);
    expect(test.stdout).toMatch(/SUCCESS/);
  });
});
