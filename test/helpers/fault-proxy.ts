import { createHash } from 'node:crypto';
import { createServer, type Server, type Socket, connect } from 'node:net';

/**
 * A Redis proxy that fails chosen commands on the wire: between chatq and a real Redis, it reads each command (RESP)
 * and, for one that a rule matches, answers an error itself (the command never reaches Redis), drops the connection
 * before the command reaches Redis or after Redis ran it (its reply lost), holds the reply back for a while (a
 * Redis that does not answer), or answers it itself as if Redis had run it (a write acknowledged, then lost). Everything else passes through unchanged, in order.
 */

export type Fault = 'error' | 'drop-before' | 'drop-after' | 'hold' | 'answer';

export interface FaultRule {
  /** The command's name (upper case), e.g. EVALSHA, SET. */
  command: string;
  /** For EVALSHA and EVAL: the script's SHA-1 (LuaScript.sha); for other commands: the first argument. */
  arg?: string;
  /** Any of the command's arguments (a key the command names). */
  anyArg?: string;
  /** Text one of the command's arguments holds (an id inside packed arguments). */
  argIncludes?: string;
  fault: Fault;
  /** How many matching commands it fails (default 1). */
  times?: number;
  /** Matching commands it lets through first (default 0). */
  skip?: number;
  /** How long "hold" holds the reply (default 10 s). */
  holdMs?: number;
  /** The error "error" answers (default: an ERR that says the proxy injected it). */
  message?: string;
  /** What "answer" replies, as a bulk string, in Redis's stead (the command never reaches it: a write acknowledged, then lost). */
  answer?: string;
  /** Runs before the matching command goes on to Redis (the connection's later commands wait for it). */
  before?: () => Promise<void>;
  /** With "hold": runs once Redis has answered, while the reply is held (let go when both it and holdMs are done). */
  whileHeld?: () => Promise<void>;
}

export interface FaultProxy {
  url: string;
  port: number;
  add(rule: FaultRule): void;
  /** Faults injected so far. */
  fired(): number;
  close(): Promise<void>;
}

/** The length of one complete RESP value at `at`, or -1 when the buffer does not hold all of it yet. */
function respLength(buf: Buffer, at: number): number {
  if (at >= buf.length) return -1;
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return -1;
  const type = String.fromCharCode(buf[at]!);
  const head = eol + 2 - at;
  if (type === '+' || type === '-' || type === ':') return head;
  const n = Number(buf.toString('latin1', at + 1, eol));
  if (type === '$') return n < 0 ? head : eol + 2 + n + 2 <= buf.length ? head + n + 2 : -1;
  if (type === '*') {
    let len = head;
    for (let i = 0; i < n; i++) {
      const item = respLength(buf, at + len);
      if (item < 0) return -1;
      len += item;
    }
    return len;
  }
  throw new Error(`fault proxy: unexpected RESP type ${type}`);
}

/** A command's words (an array of bulk strings). */
function words(buf: Buffer, at: number): string[] {
  const out: string[] = [];
  let eol = buf.indexOf('\r\n', at);
  const n = Number(buf.toString('latin1', at + 1, eol));
  let pos = eol + 2;
  for (let i = 0; i < n; i++) {
    eol = buf.indexOf('\r\n', pos);
    const len = Number(buf.toString('latin1', pos + 1, eol));
    out.push(buf.toString('utf8', eol + 2, eol + 2 + len));
    pos = eol + 2 + len + 2;
  }
  return out;
}

type Pending =
  | { kind: 'forwarded'; fault?: 'drop-after' | 'hold'; holdMs?: number; whileHeld?: () => Promise<void> }
  | { kind: 'made-up'; reply: string };

export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const rules: (FaultRule & { seen: number; left: number })[] = [];
  let fired = 0;
  const sockets = new Set<Socket>();

  const faultFor = (cmd: string[]): FaultRule | undefined => {
    const name = cmd[0]?.toUpperCase() ?? '';
    const arg =
      name === 'EVAL'
        ? createHash('sha1')
            .update(cmd[1] ?? '')
            .digest('hex')
        : cmd[1];
    for (const r of rules) {
      const command = r.command.toUpperCase();
      const sameCommand = command === name || (command === 'EVALSHA' && name === 'EVAL');
      if (!sameCommand || (r.arg !== undefined && r.arg !== arg) || r.left <= 0) continue;
      if (r.anyArg !== undefined && !cmd.includes(r.anyArg)) continue;
      if (r.argIncludes !== undefined && !cmd.some((w) => w.includes(r.argIncludes!))) continue;
      r.seen += 1;
      if (r.seen <= (r.skip ?? 0)) continue;
      r.left -= 1;
      fired += 1;
      return r;
    }
    return undefined;
  };

  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const end = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', end);
    upstream.on('error', end);
    client.on('close', end);
    upstream.on('close', end);
    const pending: Pending[] = [];
    let fromClient = Buffer.alloc(0);
    let fromServer = Buffer.alloc(0);
    let holding = false;

    // Replies go back in command order: errors it made up, replies from Redis, and any held back.
    const deliver = () => {
      while (!holding && pending.length) {
        const head = pending[0]!;
        if (head.kind === 'made-up') {
          pending.shift();
          client.write(head.reply);
          continue;
        }
        const len = respLength(fromServer, 0);
        if (len < 0) return;
        const reply = fromServer.subarray(0, len);
        if (head.fault === 'drop-after') return end();
        if (head.fault === 'hold') {
          holding = true;
          delete head.fault;
          const held = new Promise((r) => setTimeout(r, head.holdMs ?? 10_000));
          void Promise.all([held, head.whileHeld?.()]).then(() => {
            holding = false;
            deliver();
          }, end);
          return;
        }
        pending.shift();
        fromServer = fromServer.subarray(len);
        client.write(reply);
      }
    };

    // Commands go on in order; one whose rule has `before` holds the ones after it until that is done.
    let gated = false;
    const pump = () => {
      while (!gated) {
        const len = respLength(fromClient, 0);
        if (len < 0) return;
        const raw = fromClient.subarray(0, len);
        fromClient = fromClient.subarray(len);
        const rule = faultFor(words(raw, 0));
        if (rule?.fault === 'drop-before') return end();
        if (rule?.fault === 'error' || rule?.fault === 'answer') {
          const answer = Buffer.from(rule.answer ?? '');
          const reply =
            rule.fault === 'error'
              ? `-${rule.message ?? 'ERR chatq fault proxy: injected failure'}\r\n`
              : `$${answer.length}\r\n${answer.toString()}\r\n`;
          pending.push({ kind: 'made-up', reply });
          deliver();
          continue;
        }
        const forward = () => {
          pending.push({
            kind: 'forwarded',
            ...(rule
              ? { fault: rule.fault as 'drop-after' | 'hold', holdMs: rule.holdMs ?? 10_000, whileHeld: rule.whileHeld }
              : {}),
          });
          upstream.write(raw);
        };
        if (!rule?.before) {
          forward();
          continue;
        }
        gated = true;
        void rule.before().then(() => {
          gated = false;
          forward();
          pump();
        }, end);
      }
    };
    client.on('data', (chunk: Buffer) => {
      fromClient = Buffer.concat([fromClient, chunk]);
      pump();
    });
    upstream.on('data', (chunk: Buffer) => {
      fromServer = Buffer.concat([fromServer, chunk]);
      deliver();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as { port: number }).port;
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    add: (rule) => rules.push({ ...rule, seen: 0, left: rule.times ?? 1 }),
    fired: () => fired,
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
