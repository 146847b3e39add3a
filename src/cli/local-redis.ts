import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { redisAnswers } from '../shared/redis/redis-probe.js';

export interface LocalRedis {
  url: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export const hasRedisServer = () => spawnSync('redis-server', ['--version'], { stdio: 'ignore' }).status === 0;

/**
 * Starts a private redis-server on a free port (AOF on with fsync `appendfsync`, or 'off'), in a temporary directory
 * unless `dir` is given. Used by `chatq run` when nothing answers at REDIS_URL, and by tests that restart Redis.
 */
export async function startLocalRedis(
  opts: { port?: number; dir?: string; appendfsync?: 'always' | 'everysec' | 'off' } = {},
): Promise<LocalRedis & { port: number; dir: string; process: ChildProcess }> {
  const port = opts.port ?? (await freePort());
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'chatq-redis-'));
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--save',
      '',
      '--dir',
      dir,
      '--maxmemory-policy',
      'noeviction',
      ...(opts.appendfsync === 'off'
        ? ['--appendonly', 'no']
        : ['--appendonly', 'yes', '--appendfsync', opts.appendfsync ?? 'everysec']),
    ],
    { stdio: 'ignore' },
  );
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 100 && !(await redisAnswers(url, 200)); i++) await new Promise((r) => setTimeout(r, 50));
  if (!(await redisAnswers(url, 500))) {
    child.kill('SIGKILL');
    throw new Error(`redis-server did not start on port ${port}`);
  }
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    url,
    port,
    dir,
    process: child,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      if (!opts.dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}
