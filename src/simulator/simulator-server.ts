import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { countTokens, decode, encode } from 'gpt-tokenizer';
import { textTokens } from '../shared/token-estimate.js';
import { isUuidV4 } from '../shared/userid.js';
import { learn, newMemory, replyTo, type UserMemory } from './memory-replies.js';
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

interface ChatMessage {
  role?: unknown;
  content?: unknown;
}

const MAX_BODY = 8 * 1024 * 1024;
/** A user message containing "[fail 400]" (any status) is answered with that status: deterministic failures for tests and demos. */
const FORCED_STATUS = /\[fail (\d{3})\]/;

function textOf(content: unknown): string {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) {
    return content
      .map((p) => (p && typeof p === 'object' && 'text' in p && typeof p.text === 'string' ? p.text : ''))
      .join(' ');
  }
  return '';
}

function promptTokens(messages: ChatMessage[]): number[] {
  return messages.map((m) => textTokens(textOf(m.content)) + 4);
}

const isReasoningModel = (model: string) => /^o\d|reason|think/i.test(model);

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
  let opts: SimulatorOptions = simulatorOptionsSchema.parse(input);
  let stats = emptyStats();
  const memories = new Map<string, UserMemory>();
  const lastPrompt = new Map<string, number[]>();
  let requestWindow = new SlidingWindow(opts.windowMs);
  let tokenWindow = new SlidingWindow(opts.windowMs);
  const held = new Set<ServerResponse>();

  const count = (status: number) => {
    stats.byStatus[status] = (stats.byStatus[status] ?? 0) + 1;
  };

  function answer(res: ServerResponse, status: number, body: unknown, headers?: Record<string, string>) {
    count(status);
    sendJson(res, status, body, headers);
  }

  async function chat(req: IncomingMessage, res: ServerResponse): Promise<void> {
    stats.calls += 1;
    if (opts.down) {
      req.socket.destroy();
      return;
    }
    const auth = req.headers.authorization ?? '';
    if (opts.apiKey !== undefined && auth !== `Bearer ${opts.apiKey}`) {
      answer(res, 401, errorBody('Incorrect API key provided.', 'invalid_request_error', 'invalid_api_key'));
      return;
    }
    let body: {
      model?: unknown;
      messages?: unknown;
      userid?: unknown;
      max_tokens?: unknown;
      max_completion_tokens?: unknown;
    };
    try {
      body = JSON.parse(await readBody(req)) as typeof body;
    } catch {
      answer(res, 400, errorBody('We could not parse the JSON body of your request.', 'invalid_request_error', null));
      return;
    }
    if (typeof body.model !== 'string' || !Array.isArray(body.messages) || body.messages.length === 0) {
      answer(
        res,
        400,
        errorBody('"model" and a non-empty "messages" array are required.', 'invalid_request_error', null),
      );
      return;
    }
    const model = body.model;
    const messages = body.messages as ChatMessage[];
    const userid = typeof body.userid === 'string' ? body.userid : '';
    const remembered = isUuidV4(userid);
    if (!remembered) stats.nonV4Calls += 1;
    const lastUser = textOf([...messages].reverse().find((m) => m.role === 'user')?.content);
    const ended = recordArrival(
      stats,
      userid || '(none)',
      lastUser,
      opts.recordMessages ? messages : undefined,
      req.socket.remoteAddress,
    );
    res.on('close', ended);

    const forced = FORCED_STATUS.exec(lastUser);
    if (forced) {
      answer(
        res,
        Number(forced[1]),
        errorBody(`forced failure: the message asked for HTTP ${forced[1]}`, 'invalid_request_error', 'forced_failure'),
      );
      return;
    }

    const now = Date.now();
    const perMessage = promptTokens(messages);
    const prompt = perMessage.reduce((a, b) => a + b, 3);
    const memory = remembered ? (memories.get(userid) ?? newMemory()) : newMemory();
    const reasoning = isReasoningModel(model)
      ? `The user wrote ${lastUser.length} characters; answer from memory.`
      : undefined;
    const reasoningTokens = reasoning ? countTokens(reasoning) : 0;
    // Like a real endpoint, the reply stops at max_tokens (finish_reason "length").
    const maxTokens = Number(body.max_completion_tokens ?? body.max_tokens ?? Infinity);
    let replyTokens = encode(replyTo(lastUser, memory, memory.calls + 1));
    const truncated = replyTokens.length + reasoningTokens > maxTokens;
    if (truncated) replyTokens = replyTokens.slice(0, Math.max(0, maxTokens - reasoningTokens));
    const replyText = decode(replyTokens);
    const completion = replyTokens.length + reasoningTokens;

    if (opts.rpm > 0 && requestWindow.total(now) + 1 > opts.rpm) {
      stats.limited += 1;
      const wait = requestWindow.waitFor(now, 1, opts.rpm);
      answer(res, 429, errorBody('Rate limit reached for requests per minute.', 'requests', 'rate_limit_exceeded'), {
        'retry-after-ms': String(wait),
        'retry-after': String(Math.ceil(wait / 1000)),
      });
      return;
    }
    if (opts.tpm > 0 && tokenWindow.total(now) > 0 && tokenWindow.total(now) + prompt + completion > opts.tpm) {
      stats.limited += 1;
      const wait = tokenWindow.waitFor(now, prompt + completion, opts.tpm);
      answer(res, 429, errorBody('Rate limit reached for tokens per minute.', 'tokens', 'rate_limit_exceeded'), {
        'retry-after-ms': String(wait),
        'retry-after': String(Math.ceil(wait / 1000)),
      });
      return;
    }

    const f = opts.faults;
    const roll = Math.random();
    let edge = 0;
    const hit = (rate: number) => roll < (edge += rate);
    if (hit(f.error5xx)) {
      stats.injected.error5xx += 1;
      answer(res, 503, errorBody('The server is overloaded, please try again.', 'server_error', null));
      return;
    }
    if (hit(f.rateLimit429)) {
      stats.injected.rateLimit429 += 1;
      answer(res, 429, errorBody('Rate limit reached.', 'requests', 'rate_limit_exceeded'), {
        'retry-after-ms': String(f.retryAfterMs),
      });
      return;
    }
    if (hit(f.timeout)) {
      stats.injected.timeout += 1;
      held.add(res);
      setTimeout(() => {
        held.delete(res);
        res.socket?.destroy();
      }, opts.timeoutHoldMs).unref();
      return;
    }
    if (hit(f.drop)) {
      stats.injected.drop += 1;
      req.socket.destroy();
      return;
    }
    const malformed = hit(f.malformed);

    requestWindow.add(now, 1);
    tokenWindow.add(now, prompt + completion);
    stats.peakRequestsInWindow = requestWindow.peak;
    stats.peakTokensInWindow = tokenWindow.peak;

    // Prompt caching: the part of this prompt that repeats the user's previous prompt (whole messages).
    let cached = 0;
    const previous = remembered ? lastPrompt.get(userid) : undefined;
    if (previous && previous.length <= perMessage.length && previous.length > 1) {
      cached = previous.slice(0, -1).reduce((a, b) => a + b, 0);
    }
    if (remembered) lastPrompt.set(userid, perMessage);

    const latency = Math.max(0, opts.latencyMs + (Math.random() * 2 - 1) * opts.jitterMs);
    if (latency > 0) await new Promise((r) => setTimeout(r, latency));
    if (res.destroyed) return;

    if (malformed) {
      stats.injected.malformed += 1;
      count(200);
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{"id":"chatcmpl-broken","choices":[{"message":');
      return;
    }
    if (remembered) {
      learn(memory, lastUser);
      memory.calls += 1;
      memories.set(userid, memory);
    }
    stats.answered += 1;
    addTokens(stats, model, { prompt, completion, cached, reasoning: reasoningTokens });
    answer(res, 200, {
      id: `chatcmpl-${randomUUID().replace(/-/g, '').slice(0, 24)}`,
      object: 'chat.completion',
      created: Math.floor(now / 1000),
      model,
      choices: [
        {
          index: 0,
          message: { role: 'assistant', content: replyText, ...(reasoning ? { reasoning_content: reasoning } : {}) },
          finish_reason: truncated ? 'length' : 'stop',
        },
      ],
      usage: {
        prompt_tokens: prompt,
        completion_tokens: completion,
        total_tokens: prompt + completion,
        prompt_tokens_details: { cached_tokens: cached },
        completion_tokens_details: { reasoning_tokens: reasoningTokens },
      },
    });
  }

  async function control(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    if (req.method === 'GET' && path === '/_sim/stats') return sendJson(res, 200, stats);
    if (req.method === 'POST' && path === '/_sim/reset') {
      simulator.reset();
      return sendJson(res, 200, { ok: true });
    }
    if (req.method === 'POST' && path === '/_sim/config') {
      try {
        simulator.configure(JSON.parse(await readBody(req)) as SimulatorOptionsInput);
        return sendJson(res, 200, { ok: true });
      } catch (err) {
        return sendJson(res, 400, errorBody((err as Error).message, 'invalid_request_error', null));
      }
    }
    sendJson(res, 404, errorBody(`No route ${req.method} ${path}`, 'invalid_request_error', 'not_found'));
  }

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const handler =
      req.method === 'POST' && /^(\/v1)?\/chat\/completions$/.test(path) ? chat(req, res) : control(req, res, path);
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

  const simulator: Simulator = {
    url: `http://${host}:${actualPort}/v1`,
    port: actualPort,
    stats: () => stats,
    configure(patch) {
      const merged = { ...opts, ...patch, faults: { ...opts.faults, ...(patch.faults ?? {}) } };
      const next = simulatorOptionsSchema.parse(merged);
      if (next.windowMs !== opts.windowMs) {
        requestWindow = new SlidingWindow(next.windowMs);
        tokenWindow = new SlidingWindow(next.windowMs);
      }
      opts = next;
    },
    reset() {
      stats = emptyStats();
      memories.clear();
      lastPrompt.clear();
      requestWindow = new SlidingWindow(opts.windowMs);
      tokenWindow = new SlidingWindow(opts.windowMs);
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const res of held) res.socket?.destroy();
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
  return simulator;
}
