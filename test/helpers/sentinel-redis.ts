import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/cli/local-redis.js';
import { waitFor } from './test-env.js';

/** A master, its replica and one sentinel watching them (Debian's redis-server and redis-sentinel), on free ports. */
export interface SentinelSet {
  /** REDIS_URL for chatq: redis+sentinel://127.0.0.1:PORT/NAME */
  url: string;
  sentinelPort: number;
  master: ChildProcess;
  /**
   * Gives the current master a replica again (after the old one was killed): a new server on a fresh port. Not the old
   * master restarted on its port: another test's server may have taken that port meanwhile.
   */
  addReplica(): Promise<void>;
  masterPort: number;
  replicaPort: number;
  /** The port of the server the sentinel names master now. */
  currentMaster(): Promise<number>;
  stop(): Promise<void>;
}

const NAME = 'chatq-test-master';

function server(dir: string, port: number, extra: string[]): ChildProcess {
  return spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...extra],
    { stdio: 'ignore' },
  );
}

export async function startSentinelSet(): Promise<SentinelSet> {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-sentinel-'));
  const [masterPort, replicaPort, sentinelPort] = [await freePort(), await freePort(), await freePort()];
  const masterArgs = ['--dbfilename', 'm.rdb'];
  const master = server(dir, masterPort, masterArgs);
  const replica = server(dir, replicaPort, ['--dbfilename', 'r.rdb', '--replicaof', '127.0.0.1', String(masterPort)]);
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(
    conf,
    [
      `port ${sentinelPort}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${NAME} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${NAME} 1000`,
      `sentinel failover-timeout ${NAME} 5000`,
      '',
    ].join('\n'),
  );
  const sentinel = spawn('redis-sentinel', [conf], { stdio: 'ignore' });
  const children = [master, replica, sentinel];
  const ask = new Redis({ port: sentinelPort, lazyConnect: true, maxRetriesPerRequest: 1, retryStrategy: () => 100 });
  ask.on('error', () => undefined);
  const currentMaster = async () =>
    Number(((await ask.call('SENTINEL', 'get-master-addr-by-name', NAME)) as string[])[1]);
  const replicaUp = new Redis({ port: replicaPort, lazyConnect: true, retryStrategy: () => 100 });
  replicaUp.on('error', () => undefined);
  await waitFor(
    'the replica in sync',
    async () => /master_link_status:up/.test(await replicaUp.info('replication')),
    20_000,
  );
  await waitFor(
    'the sentinel to know the replica',
    async () => ((await ask.call('SENTINEL', 'replicas', NAME)) as unknown[]).length > 0,
    20_000,
  );
  replicaUp.disconnect();
  return {
    url: `redis+sentinel://127.0.0.1:${sentinelPort}/${NAME}`,
    sentinelPort,
    master,
    masterPort,
    replicaPort,
    currentMaster,
    async addReplica() {
      const port = await freePort();
      const added = server(dir, port, [
        '--dbfilename',
        `r${port}.rdb`,
        '--replicaof',
        '127.0.0.1',
        String(await currentMaster()),
      ]);
      children.push(added);
      const replica = new Redis({ port, lazyConnect: true, retryStrategy: () => 100 });
      replica.on('error', () => undefined);
      const exited = new Promise<never>((_, reject) =>
        added.once('exit', (code) => reject(new Error(`the new replica's redis-server exited (${code})`))),
      );
      try {
        await Promise.race([
          exited,
          waitFor(
            'the new replica in sync with the new master',
            async () => /role:slave[\s\S]*master_link_status:up/.test(await replica.info('replication')),
            30_000,
            200,
          ),
        ]);
      } finally {
        replica.disconnect();
      }
    },
    async stop() {
      ask.disconnect();
      await Promise.all(
        children.map(
          (c) =>
            new Promise<void>((resolve) => {
              if (c.exitCode !== null || c.signalCode !== null) return resolve();
              c.once('exit', () => resolve());
              c.kill('SIGKILL');
            }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
