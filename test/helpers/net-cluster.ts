import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { redisOn, type HostProcess, type NetHost } from './net-hosts.js';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A Redis Cluster whose nodes each run on a lab host of their own (port 6379, bus 16379). */
export interface NetCluster {
  masters: NetHost[];
  /** Seed URLs, for REDIS_URL with CHATQ_REDIS_CLUSTER=1. */
  url: string;
  /** The master host serving `key`'s slot. */
  ownerOf(key: string): Promise<NetHost>;
  /** Adds a replica of `master` on `host`, and waits until it has synced. */
  addReplica(host: NetHost, master: NetHost): Promise<void>;
  /** Whether `host` is a master in the view of `asked` (another node). */
  isMaster(host: NetHost, asked: NetHost): Promise<boolean>;
  /** Each node's role and its named clients (chatq's connections): what each is doing, for a failure report. */
  clients(): Promise<Record<string, string[]>>;
  stop(): Promise<void>;
}

async function untilTrue(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(200))
    if (await check().catch(() => false)) return;
  throw new Error(`timed out waiting for ${what}`);
}

const node = (host: NetHost) =>
  new Redis({ host: host.ip, port: 6379, lazyConnect: false, maxRetriesPerRequest: 1, retryStrategy: () => 200 });

/** A cluster of masters on `hosts` (no replicas yet), `nodeTimeoutMs` its cluster-node-timeout. */
export async function netCluster(hosts: NetHost[], nodeTimeoutMs: number): Promise<NetCluster> {
  const dir = mkdtempSync(join(tmpdir(), 'chatq-netcluster-'));
  const processes: HostProcess[] = [];
  const nodes: NetHost[] = [];
  const start = async (host: NetHost) => {
    nodes.push(host);
    const started = await redisOn(host, [
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      join(dir, `nodes-${host.ip}.conf`),
      '--cluster-node-timeout',
      String(nodeTimeoutMs),
      '--cluster-replica-validity-factor',
      '0',
      '--repl-diskless-sync-delay',
      '0',
      '--maxmemory-policy',
      'noeviction',
    ]);
    processes.push(started.process);
  };
  for (const host of hosts) await start(host);
  const { stdout, stderr } = await run('redis-cli', [
    '--cluster',
    'create',
    ...hosts.map((h) => `${h.ip}:6379`),
    '--cluster-yes',
  ]).catch((err: { stdout: string; stderr: string }) => err);
  if (!/All 16384 slots covered/.test(stdout)) throw new Error(`redis-cli --cluster create failed: ${stdout}${stderr}`);
  const clusterOk = async (host: NetHost) => {
    const n = node(host);
    try {
      return /cluster_state:ok/.test(String(await n.call('CLUSTER', 'INFO')));
    } finally {
      n.disconnect();
    }
  };
  for (const host of hosts) await untilTrue(`the cluster on ${host.name}`, () => clusterOk(host), 20_000);
  const ask = async <T>(host: NetHost, f: (n: Redis) => Promise<T>): Promise<T> => {
    const n = node(host);
    try {
      return await f(n);
    } finally {
      n.disconnect();
    }
  };
  const idOf = (host: NetHost) => ask(host, async (n) => String(await n.call('CLUSTER', 'MYID')));
  return {
    masters: hosts,
    url: hosts.map((h) => `redis://${h.ip}:6379`).join(','),
    async ownerOf(key) {
      const [slot, slots] = await ask(
        hosts[0]!,
        async (n) =>
          [
            Number(await n.call('CLUSTER', 'KEYSLOT', key)),
            (await n.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][],
          ] as const,
      );
      const ip = slots.find(([from, to]) => slot >= from && slot <= to)![2][0];
      return hosts.find((h) => h.ip === ip)!;
    },
    async addReplica(host, master) {
      await start(host);
      const masterId = await idOf(master);
      await run('redis-cli', [
        '--cluster',
        'add-node',
        `${host.ip}:6379`,
        `${master.ip}:6379`,
        '--cluster-slave',
        '--cluster-master-id',
        masterId,
      ]);
      await untilTrue(
        `the replica on ${host.name}`,
        () =>
          ask(
            host,
            async (n) =>
              /master_link_status:up/.test(await n.info('replication')) &&
              /cluster_state:ok/.test(String(await n.call('CLUSTER', 'INFO'))),
          ),
        30_000,
      );
    },
    async isMaster(host, asked) {
      const nodes = await ask(asked, async (n) => String(await n.call('CLUSTER', 'NODES')));
      return nodes
        .split('\n')
        .some((line) => line.includes(`${host.ip}:6379`) && /\bmaster\b/.test(line) && !/\bfail\b/.test(line));
    },
    async clients() {
      const report: Record<string, string[]> = {};
      for (const host of nodes)
        report[`${host.name} ${host.ip}`] = await ask(host, async (n) => [
          /role:(\w+)/.exec(await n.info('replication'))?.[1] ?? '?',
          ...String(await n.call('CLIENT', 'LIST'))
            .split('\n')
            .filter((line) => /name=chatq/.test(line))
            .map((line) =>
              line.replace(
                /^.*?addr=(\S+).*?name=(\S+).*?age=(\d+) idle=(\d+) flags=(\S+).*?cmd=(\S+).*$/,
                '$1 $2 age=$3 idle=$4 flags=$5 cmd=$6',
              ),
            ),
        ]).catch((err: Error) => [`unreachable: ${err.message}`]);
      return report;
    },
    async stop() {
      await Promise.all(processes.map((p) => p.stop('SIGKILL')));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
