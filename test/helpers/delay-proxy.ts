import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** A TCP proxy that holds every chunk `oneWayMs` in each direction: a slow link (the kernel here has no netem). */
export interface DelayProxy {
  host: string;
  port: number;
  close(): Promise<void>;
}

const SCRIPT = fileURLToPath(new URL('./delay-proxy.mjs', import.meta.url));

/** Starts the proxy in a process of its own (delay-proxy.mjs), listening on `listenHost`. */
export async function delayProxy(
  listenHost: string,
  target: { host: string; port: number },
  oneWayMs: number,
): Promise<DelayProxy> {
  const child = spawn(process.execPath, [SCRIPT, listenHost, target.host, String(target.port), String(oneWayMs)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
    child.once('exit', (code) => reject(new Error(`the delay proxy exited (${code})`)));
  });
  return {
    host: listenHost,
    port,
    async close() {
      child.kill('SIGKILL');
      await exited;
    },
  };
}
