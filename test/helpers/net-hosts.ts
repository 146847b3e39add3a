import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { CLI } from './test-env.js';

const run = promisify(execFile);

/**
 * Network hosts for fault tests: each host is a network namespace with one veth into a bridge that the test process
 * (the root namespace) also sits on, at the subnet's .1. Faults are iptables rules inside a host's namespace, so they
 * touch only the addresses of this lab. A lab that cannot be made throws: a network test never skips.
 */
export interface NetHost {
  name: string;
  ns: string;
  ip: string;
  /** Starts `command` inside this host. */
  spawn(command: string, args: string[], env?: Record<string, string>): ChildProcess;
  /** Nothing passes between this host and `peer` (an address): DROP stalls, REJECT refuses. Optionally one TCP port of the peer only. */
  cut(peer: string, opts?: { how?: 'drop' | 'reject'; port?: number }): Promise<void>;
  /** Drops each packet to or from `peer` (optionally one of its TCP ports) with the given probability. */
  loss(peer: string, probability: number, opts?: { port?: number }): Promise<void>;
  /** Removes every fault of this host. */
  heal(): Promise<void>;
  /** Packets this host's fault rules have dropped so far (so that a test knows its fault happened). */
  dropped(): Promise<number>;
}

export interface NetLab {
  /** The test process's own address on the lab's bridge. */
  gateway: string;
  host(name: string): Promise<NetHost>;
  close(): Promise<void>;
}

const ip = (...args: string[]) => run('ip', args);

/** A lab number whose subnet, bridge and host namespaces are all unused (a lab left by a killed run keeps its own). */
async function freeSubnet(): Promise<number> {
  const { stdout } = await ip('-o', 'addr');
  const { stdout: namespaces } = await ip('netns', 'list');
  for (let tries = 0; tries < 200; tries++) {
    const n = 1 + Math.floor(Math.random() * 250);
    if (!stdout.includes(`10.213.${n}.`) && !namespaces.includes(`cq${n}-`)) return n;
  }
  throw new Error('no free 10.213.x.0/24 subnet for a network lab');
}

export async function netLab(): Promise<NetLab> {
  const n = await freeSubnet();
  const bridge = `cq${n}br`;
  /** Every namespace made, from the moment it exists: a host whose setup fails half way is removed too. */
  const namespaces: string[] = [];
  await ip('link', 'add', bridge, 'type', 'bridge');
  await ip('addr', 'add', `10.213.${n}.1/24`, 'dev', bridge);
  await ip('link', 'set', bridge, 'up');
  const lab: NetLab = {
    gateway: `10.213.${n}.1`,
    async host(name) {
      const index = namespaces.length + 1;
      const ns = `cq${n}-${name}`;
      const hostIp = `10.213.${n}.${10 + index}`;
      const veth = `cq${n}v${index}`;
      await ip('netns', 'add', ns);
      namespaces.push(ns);
      await ip('link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns);
      await ip('link', 'set', veth, 'master', bridge, 'up');
      await ip('-n', ns, 'addr', 'add', `${hostIp}/24`, 'dev', 'eth0');
      await ip('-n', ns, 'link', 'set', 'eth0', 'up');
      await ip('-n', ns, 'link', 'set', 'lo', 'up');
      const iptables = (...args: string[]) => run('ip', ['netns', 'exec', ns, 'iptables', '-w', ...args]);
      const both = async (peer: string, port: number | undefined, target: string[]) => {
        const toPort = port === undefined ? [] : ['-p', 'tcp', '--dport', String(port)];
        const fromPort = port === undefined ? [] : ['-p', 'tcp', '--sport', String(port)];
        await iptables('-A', 'OUTPUT', '-d', peer, ...toPort, ...target);
        await iptables('-A', 'INPUT', '-s', peer, ...fromPort, ...target);
      };
      const host: NetHost = {
        name,
        ns,
        ip: hostIp,
        spawn: (command, args, env = {}) =>
          spawn('ip', ['netns', 'exec', ns, command, ...args], {
            env: { ...process.env, ...env },
            stdio: ['ignore', 'pipe', 'pipe'],
          }),
        cut: (peer, opts = {}) =>
          both(
            peer,
            opts.port,
            opts.how === 'reject'
              ? ['-j', 'REJECT', ...(opts.port === undefined ? [] : ['--reject-with', 'tcp-reset'])]
              : ['-j', 'DROP'],
          ),
        loss: (peer, probability, opts = {}) =>
          both(peer, opts.port, [
            '-m',
            'statistic',
            '--mode',
            'random',
            '--probability',
            String(probability),
            '-j',
            'DROP',
          ]),
        heal: async () => {
          await iptables('-F', 'INPUT');
          await iptables('-F', 'OUTPUT');
        },
        dropped: async () => {
          const { stdout } = await iptables('-L', '-v', '-x', '-n');
          return stdout
            .split('\n')
            .filter((l) => /\sDROP\s/.test(l))
            .reduce((sum, l) => sum + Number(l.trim().split(/\s+/)[0]), 0);
        },
      };
      return host;
    },
    async close() {
      for (const ns of namespaces) await ip('netns', 'del', ns).catch(() => undefined);
      await ip('link', 'del', bridge).catch(() => undefined);
    },
  };
  return lab;
}

/** A process in a lab host, with its stderr kept for the test's failure messages. */
export interface HostProcess {
  child: ChildProcess;
  exited: Promise<number | null>;
  output(): string;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

function watched(child: ChildProcess): HostProcess {
  let out = '';
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    child,
    exited,
    output: () => out,
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** `chatq ARGS` run inside a lab host. */
export const chatqOn = (host: NetHost, args: string[], env: Record<string, string>): HostProcess =>
  watched(host.spawn(process.execPath, [CLI, ...args], env));

/** A throwaway Redis inside a lab host, on its address, without persistence. */
export async function redisOn(host: NetHost, extra: string[] = []): Promise<{ url: string; process: HostProcess }> {
  // A file name of its own: a dump.rdb in the working directory would otherwise be loaded at start.
  const file = ['--dir', tmpdir(), '--dbfilename', `chatq-net-${host.ns}-${randomUUID().slice(0, 8)}.rdb`];
  const proc = watched(
    host.spawn('redis-server', [
      '--bind',
      host.ip,
      '--port',
      '6379',
      '--save',
      '',
      '--appendonly',
      'no',
      '--protected-mode',
      'no',
      ...file,
      ...extra,
    ]),
  );
  const url = `redis://${host.ip}:6379`;
  const until = Date.now() + 10_000;
  for (;;) {
    const { stdout } = await run('redis-cli', ['-u', url, 'PING']).catch(() => ({ stdout: '' }));
    if (stdout.includes('PONG')) return { url, process: proc };
    if (Date.now() > until) throw new Error(`redis-server did not start on ${host.name}: ${proc.output()}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
