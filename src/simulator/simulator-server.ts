import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { isUuidV4 } from '../shared/userid.js';
import { learn, newMemory, remember, type UserMemory } from './memory-replies.js';
import { type ChatBody, type ChatMessage, completionBody, composeReply, textOf } from './chat-completion.js';
import { simulatorOptionsSchema, type SimulatorOptions, type SimulatorOptionsInput } from './simulator-options.js';
import { addTokens, emptyStats, recordArrival, type SimulatorStats } from './simulator-stats.js';
import { SlidingWindow } from './sliding-window.js';

export interface Simulator {
  /** Base URL to give an OpenAI client, e.g. http://127.0.0.1:4010/v1 */
  url: string;
  port: number;
  stats(): SimulatorStats;
  configure(patch: SimulatorOptionsInput): void;
  reset(): void;
  close(): Promise<void>;
}

const MAX_BODY = 8 * 1024 * 1024;
/** A user message containing "[fail 400]" (any status) is answered with that status: deterministic failures for tests and demos. */
const FORCED_STATUS = /\[fail (\d{3})\]/;

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': `req_${randomUUID().replace(/-/g, '')}`,
    ...headers,
  });
  res.end(text);
}

function errorBody(message: string, type: string, code: string | null) {
  return { error: { message, type, code, param: null } };
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY) throw new Error('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const tooMany = (wait: number) => ({ 'retry-after-ms': String(wait), 'retry-after': String(Math.ceil(wait / 1000)) });

/** The endpoint's state and its answer to a chat call, step by step: check, limit, inject a fault, reply. */
class SimulatedEndpoint {
  stats = emptyStats();
  private readonly memories = new Map<string, UserMemory>();
  private readonly lastPrompt = new Map<string, number[]>();
  private requestWindow: SlidingWindow;
  private tokenWindow: SlidingWindow;
  /** Answers held open by an injected timeout (closed with the server). */
  readonly held = new Set<ServerResponse>();

  constructor(public opts: SimulatorOptions) {
    this.requestWindow = new SlidingWindow(opts.windowMs);
    this.tokenWindow = new SlidingWindow(opts.windowMs);
  }

  configure(patch: SimulatorOptionsInput): void {
    const merged = { ...this.opts, ...patch, faults: { ...this.opts.faults, ...(patch.faults ?? {}) } };
    const next = simulatorOptionsSchema.parse(merged);
    if (next.windowMs !== this.opts.windowMs) this.newWindows(next.windowMs);
    this.opts = next;
  }

  reset(): void {
    this.stats = emptyStats();
    this.memories.clear();
    this.lastPrompt.clear();
    this.newWindows(this.opts.windowMs);
  }

  private newWindows(windowMs: number): void {
    this.requestWindow = new SlidingWindow(windowMs);
    this.tokenWindow = new SlidingWindow(windowMs);
  }

  answer(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>): void {
    this.stats.byStatus[status] = (this.stats.byStatus[status] ?? 0) + 1;
    sendJson(res, status, body, headers);
  }

  async chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    this.stats.calls += 1;
    if (this.opts.down) {
      req.socket.destroy();
      return;
    }
    const body = await this.readChat(req, res);
    if (!body) return;
    const { model, messages, userid } = body;
    const remembered = isUuidV4(userid);
    if (!remembered) this.stats.nonV4Calls += 1;
    const lastUser = textOf([...messages].reverse().find((m) => m.role === 'user')?.content);
    const from = req.socket.remoteAddress;
    res.on(
      'close',
      recordArrival(this.stats, userid || '(none)', lastUser, this.opts.recordMessages ? messages : undefined, from),
    );
    const forced = FORCED_STATUS.exec(lastUser);
    if (forced) {
      const message = `forced failure: the message asked for HTTP ${forced[1]}`;
      this.answer(res, Number(forced[1]), errorBody(message, 'invalid_request_error', 'forced_failure'));
      return;
    }
    const now = Date.now();
    const memory = remembered ? (this.memories.get(userid) ?? newMemory()) : newMemory();
    const reply = composeReply(body, lastUser, memory);
    if (this.limited(res, now, reply.prompt + reply.completion)) return;
    const fault = this.injectFault(req, res);
    if (fault === 'answered') return;
    this.requestWindow.add(now, 1);
    this.tokenWindow.add(now, reply.prompt + reply.completion);
    this.stats.peakRequestsInWindow = this.requestWindow.peak;
    this.stats.peakTokensInWindow = this.tokenWindow.peak;
    const cached = remembered ? this.cachedTokens(userid, reply.perMessage) : 0;
    const latency =
      Math.max(0, this.opts.latencyMs + (Math.random() * 2 - 1) * this.opts.jitterMs) +
      (reply.judge ? this.opts.judgeLatencyMs : 0);
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    if (res.destroyed) return;
    if (fault === 'malformed') {
      this.stats.injected.malformed += 1;
      this.stats.byStatus[200] = (this.stats.byStatus[200] ?? 0) + 1;
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"chatcmpl-broken","choices":[{"message":');
      return;
    }
    if (remembered) {
      learn(memory, lastUser);
      remember(
        memory,
        messages.filter((m) => m.role === 'user' || m.role === 'assistant').map((m) => textOf(m.content)),
      );
      memory.calls += 1;
      this.memories.set(userid, memory);
    }
    this.stats.answered += 1;
    addTokens(this.stats, model, {
      prompt: reply.prompt,
      completion: reply.completion,
      cached,
      reasoning: reply.reasoningTokens,
    });
    this.answer(res, 200, completionBody(model, now, reply, cached));
  }

  /** The call's body, or undefined when it was answered already (a wrong key, unparsable JSON, no messages). */
  private async readChat(req: IncomingMessage, res: ServerResponse): Promise<ChatBody | undefined> {
    const auth = req.headers.authorization ?? '';
    if (this.opts.apiKey !== undefined && auth !== `Bearer ${this.opts.apiKey}`) {
      this.answer(res, 401, errorBody('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
      return undefined;
    }
    let body: Record<string, unknown>;
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      const message = 'We could not parse the JSON body of your request.';
      this.answer(res, 400, errorBody(message, 'invalid_request_error', null));
      return undefined;
    }
    if (
      body === null ||
      typeof body !== 'object' ||
      typeof body.model !== 'string' ||
      !Array.isArray(body.messages) ||
      body.messages.length === 0
    ) {
      const message = '"model" and a non-empty "messages" array are required.';
      this.answer(res, 400, errorBody(message, 'invalid_request_error', null));
      return undefined;
    }
    return {
      ...body,
      model: body.model,
      messages: body.messages as ChatMessage[],
      userid: typeof body.userid === 'string' ? body.userid : '',
    };
  }

  /** Answers 429 when this call would go past the endpoint's own RPM or TPM (true then). */
  private limited(res: ServerResponse, now: number, tokens: number): boolean {
    const { rpm, tpm } = this.opts;
    if (rpm > 0 && this.requestWindow.total(now) + 1 > rpm) {
      this.stats.limited += 1;
      const wait = this.requestWindow.waitFor(now, 1, rpm);
      const body = errorBody('Rate limit reached for requests per minute.', 'requests', 'rate_limit_exceeded');
      this.answer(res, 429, body, tooMany(wait));
      return true;
    }
    if (tpm > 0 && this.tokenWindow.total(now) > 0 && this.tokenWindow.total(now) + tokens > tpm) {
      this.stats.limited += 1;
      const wait = this.tokenWindow.waitFor(now, tokens, tpm);
      this.answer(
        res,
        429,
        errorBody('Rate limit reached for tokens per minute.', 'tokens', 'rate_limit_exceeded'),
        tooMany(wait),
      );
      return true;
    }
    return false;
  }

  /** One roll of the configured fault rates: 'answered' when a fault took the call, 'malformed' for a broken reply. */
  private injectFault(req: IncomingMessage, res: ServerResponse): 'answered' | 'malformed' | 'none' {
    const f = this.opts.faults;
    const roll = Math.random();
    let edge = 0;
    const hit = (rate: number) => roll < (edge += rate);
    if (hit(f.error5xx)) {
      this.stats.injected.error5xx += 1;
      this.answer(res, 503, errorBody('The server is overloaded, please try again.', 'server_error', null));
    } else if (hit(f.rateLimit429)) {
      this.stats.injected.rateLimit429 += 1;
      this.answer(res, 429, errorBody('Rate limit reached.', 'requests', 'rate_limit_exceeded'), {
        'retry-after-ms': String(f.retryAfterMs),
      });
    } else if (hit(f.timeout)) {
      this.stats.injected.timeout += 1;
      this.held.add(res);
      setTimeout(() => {
        this.held.delete(res);
        res.socket?.destroy();
      }, this.opts.timeoutHoldMs).unref();
    } else if (hit(f.drop)) {
      this.stats.injected.drop += 1;
      req.socket.destroy();
    } else return hit(f.malformed) ? 'malformed' : 'none';
    return 'answered';
  }

  /** Prompt caching: the part of this prompt that repeats the user's previous prompt (whole messages). */
  private cachedTokens(userid: string, perMessage: number[]): number {
    const previous = this.lastPrompt.get(userid);
    this.lastPrompt.set(userid, perMessage);
    if (!previous || previous.length > perMessage.length || previous.length <= 1) return 0;
    return previous.slice(0, -1).reduce((a, b) => a + b, 0);
  }
}

/** The test-only routes: GET /_sim/stats, POST /_sim/reset, POST /_sim/config. */
async function control(
  endpoint: SimulatedEndpoint,
  req: IncomingMessage,
  res: ServerResponse,
  path: string,
): Promise<void> {
  if (req.method === 'GET' && path === '/_sim/stats') return sendJson(res, 200, endpoint.stats);
  if (req.method === 'POST' && path === '/_sim/reset') {
    endpoint.reset();
    return sendJson(res, 200, { ok: true });
  }
  if (req.method === 'POST' && path === '/_sim/config') {
    try {
      endpoint.configure(JSON.parse(await readBody(req)) as SimulatorOptionsInput);
      return sendJson(res, 200, { ok: true });
    } catch (err) {
      return sendJson(res, 400, errorBody((err as Error).message, 'invalid_request_error', null));
    }
  }
  sendJson(res, 404, errorBody(`No route ${req.method} ${path}`, 'invalid_request_error', 'not_found'));
}

/**
 * A local memory-chat endpoint (302.AI's /v1/chat/completions + userid): OpenAI response shape, real token counts,
 * per-user memory, its own RPM/TPM limits, latency and fault injection, and a record of per-user arrival order and
 * overlap (GET /_sim/stats) so tests can prove ordering.
 */
export async function startSimulator(
  input: SimulatorOptionsInput = {},
  port = 0,
  host = '127.0.0.1',
): Promise<Simulator> {
  const endpoint = new SimulatedEndpoint(simulatorOptionsSchema.parse(input));
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler =
      req.method === 'POST' && /^(\/v1)?\/chat\/completions$/.test(path)
        ? endpoint.chat(req, res)
        : control(endpoint, req, res, path);
    handler.catch((err: Error) => {
      if (!res.headersSent) sendJson(res, 500, errorBody(`simulator error: ${err.message}`, 'server_error', null));
    });
  });
  server.keepAliveTimeout = 65_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actualPort = (server.address() as AddressInfo).port;
  return {
    url: `http://${host}:${actualPort}/v1`,
    port: actualPort,
    stats: () => endpoint.stats,
    configure: (patch) => endpoint.configure(patch),
    reset: () => endpoint.reset(),
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of endpoint.held) res.socket?.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
