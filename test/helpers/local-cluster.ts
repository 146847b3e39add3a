import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, realpathSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from '../../src/cli/local-redis.js';
import type { RedisKeys } from '../../src/shared/keys.js';

export interface LocalCluster {
  /** Comma-separated seed URLs, for REDIS_URL with CHATQ_REDIS_CLUSTER=1. */
  url: string;
  ports: number[];
  /** The node serving `key`'s slot as master. */
  masterOf(key: string): Promise<number>;
  /**
   * Moves `key`'s slot, with its keys, to the master on `toPort` as a resharding does (IMPORTING / MIGRATING, MIGRATE
   * 20 keys at a time, without REPLACE, then SETSLOT NODE everywhere), slowly enough that clients meet ASK and
   * TRYAGAIN meanwhile. Returns how many keys moved.
   */
  moveSlot(key: string, toPort: number): Promise<number>;
  /** The shards (of `keys`' deployment) whose keys are on the master on `port`. */
  shardsOn(port: number, keys: RedisKeys): Promise<Set<number>>;
  kill(port: number): void;
  /** Starts the node on `port` again (after `kill`), with its node file: it rejoins, as a replica of its successor. */
  restart(port: number): void;
  /** Stops (SIGSTOP) or resumes (SIGCONT) the node on `port`: to its peers, a node that stopped answering. */
  pause(port: number): void;
  resume(port: number): void;
  /** Resolves when the node on `port` answers a PING again (after a resume or a restart), with the time it did. */
  answering(port: number): Promise<number>;
  stop(): Promise<void>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A Redis Cluster of `masters` masters (each with `replicas` replicas) on free ports, in a temporary directory. With
 * `fullCoverage: false` (cluster-require-full-coverage no) a master's failure leaves the others serving their slots
 * meanwhile; by default (Redis's) every node refuses commands (CLUSTERDOWN) until the failed master's slots are served.
 */
export async function startLocalCluster(
  masters = 3,
  replicas = 0,
  opts: { fullCoverage?: boolean } = {},
): Promise<LocalCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-cluster-'));
  const children = new Map<number, ChildProcess>();
  const argsOf = (port: number) => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    `nodes-${port}.conf`,
    '--cluster-node-timeout',
    '1000',
    '--cluster-replica-validity-factor',
    '0',
    '--repl-diskless-sync-delay',
    '0',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'no',
    '--maxmemory-policy',
    'noeviction',
    ...(opts.fullCoverage === false ? ['--cluster-require-full-coverage', 'no'] : []),
  ];
  /**
   * Starts a node on a free port and waits until it answers. A port found free can be taken before the node binds it
   * (other tests start clusters and clients meanwhile): a node that exits or does not answer is started again on
   * another port.
   */
  const startNode = async (): Promise<number> => {
    for (let attempt = 1; ; attempt++) {
      const port = await freePort();
      const child = spawn('redis-server', argsOf(port), { stdio: 'ignore' });
      children.set(port, child);
      for (let i = 0; i < 50 && child.exitCode === null && child.signalCode === null; i++) {
        const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        probe.on('error', () => undefined);
        try {
          await probe.connect();
          // Ours, not a node of another test that took the port first (ours then failed to bind it, and exits).
          const [, nodeDir] = (await probe.config('GET', 'dir')) as [string, string];
          if (nodeDir === realpathSync(dir) && child.exitCode === null) return port;
          break;
        } catch {
          await sleep(100);
        } finally {
          probe.disconnect();
        }
      }
      child.kill('SIGKILL');
      children.delete(port);
      if (attempt >= 5) throw new Error(`redis-server did not start on a free port (5 tries, the last ${port})`);
    }
  };
  const ports: number[] = [];
  for (let i = 0; i < masters * (1 + replicas); i++) ports.push(await startNode());
  const create = spawnSync(
    'redis-cli',
    [
      '--cluster',
      'create',
      ...ports.map((p) => `127.0.0.1:${p}`),
      '--cluster-replicas',
      String(replicas),
      '--cluster-yes',
    ],
    { encoding: 'utf8' },
  );
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  // Up when every node sees all slots served and every replica has synced (a failover needs a replica with the data).
  for (const port of ports) {
    const node = new Redis({ port });
    const ready = async () =>
      /cluster_state:ok/.test(String(await node.call('CLUSTER', 'INFO'))) &&
      !/role:slave[\s\S]*master_link_status:down/.test(await node.info('replication'));
    for (let i = 0; i < 200 && !(await ready()); i++) await sleep(100);
    node.disconnect();
  }
  const masterOf = async (key: string): Promise<number> => {
    // Asks the first node that answers (a node just killed may not have exited yet, a stopped one never answers).
    for (const port of ports.filter(
      (p) => children.get(p)!.exitCode === null && children.get(p)!.signalCode === null,
    )) {
      // A stopped node (SIGSTOP) accepts the connection and never answers: it is given up after a second.
      const node = new Redis({
        port,
        lazyConnect: true,
        maxRetriesPerRequest: 0,
        retryStrategy: () => null,
        commandTimeout: 1_000,
      });
      node.on('error', () => undefined);
      try {
        await node.connect();
        const slot = Number(await node.call('CLUSTER', 'KEYSLOT', key));
        const slots = (await node.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][];
        return slots.find(([from, to]) => slot >= from && slot <= to)![2][1];
      } catch {
      } finally {
        node.disconnect();
      }
    }
    throw new Error('no node of the cluster answers');
  };
  return {
    url: ports.map((p) => `redis://127.0.0.1:${p}`).join(','),
    ports,
    masterOf,
    async moveSlot(key, toPort) {
      const fromPort = await masterOf(key);
      const [src, dst] = [new Redis({ port: fromPort }), new Redis({ port: toPort })];
      try {
        const slot = Number(await src.call('CLUSTER', 'KEYSLOT', key));
        const [srcId, dstId] = [String(await src.call('CLUSTER', 'MYID')), String(await dst.call('CLUSTER', 'MYID'))];
        await dst.call('CLUSTER', 'SETSLOT', slot, 'IMPORTING', srcId);
        await src.call('CLUSTER', 'SETSLOT', slot, 'MIGRATING', dstId);
        let moved = 0;
        for (;;) {
          const keys = (await src.call('CLUSTER', 'GETKEYSINSLOT', slot, 20)) as string[];
          if (keys.length === 0) break;
          await src.call('MIGRATE', '127.0.0.1', toPort, '', 0, 5000, 'KEYS', ...keys);
          moved += keys.length;
          await sleep(5);
        }
        for (const port of [toPort, fromPort, ...ports.filter((p) => p !== fromPort && p !== toPort)]) {
          const node = port === toPort ? dst : port === fromPort ? src : new Redis({ port });
          await node.call('CLUSTER', 'SETSLOT', slot, 'NODE', dstId);
          if (node !== src && node !== dst) node.disconnect();
        }
        return moved;
      } finally {
        src.disconnect();
        dst.disconnect();
      }
    },
    async shardsOn(port, keys) {
      const on = new Set<number>();
      for (let i = 0; i < keys.shardCount; i++) if ((await masterOf(keys.shard(i).lanes)) === port) on.add(i);
      return on;
    },
    pause(port) {
      children.get(port)!.kill('SIGSTOP');
    },
    resume(port) {
      children.get(port)!.kill('SIGCONT');
    },
    async answering(port) {
      for (;;) {
        const node = new Redis({ port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        node.on('error', () => undefined);
        try {
          await node.connect();
          await node.ping();
          return Date.now();
        } catch {
          await sleep(20);
        } finally {
          node.disconnect();
        }
      }
    },
    kill(port) {
      children.get(port)!.kill('SIGKILL');
    },
    restart(port) {
      children.set(port, spawn('redis-server', argsOf(port), { stdio: 'ignore' }));
    },
    async stop() {
      await Promise.all(
        [...children.values()].map((c) =>
          c.exitCode !== null || c.signalCode !== null
            ? undefined
            : new Promise((r) => {
                c.once('exit', r);
                c.kill('SIGTERM');
              }),
        ),
      );
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
