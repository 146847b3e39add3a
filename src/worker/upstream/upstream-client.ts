import { APIConnectionError, APIConnectionTimeoutError, APIError } from 'openai';
import { headersOf, ResponseTooLargeError } from './http-transport.js';
import { type Answer, UpstreamConnections } from './upstream-connections.js';
import { classifyErrorBody, MalformedResponseError, type ClassifiedError } from './classify-error.js';

export interface UpstreamReply {
  completion: Record<string, unknown>;
  requestId: string | null;
  status: number;
}

/** An error body that came back with HTTP 2xx, classified like any other upstream error. */
export class UpstreamBodyError extends Error {
  constructor(readonly classified: ClassifiedError) {
    super(classified.message);
  }
}

export interface UpstreamOptions {
  baseURL: string;
  apiKey: string | undefined;
  timeoutMs: number;
  /** Calls in flight at once (bounds the connections). */
  concurrency: number;
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * The memory-chat endpoint (`POST <base>/chat/completions`), called with undici on keep-alive connections
 * (upstream-connections.ts): the body goes through untouched, plus `userid`. Failures are the openai SDK's own error
 * classes, built as the SDK builds them (APIError.generate for an HTTP error, APIConnectionError,
 * APIConnectionTimeoutError), so they are classified alike; the SDK itself is not in the call's path (its request and
 * response machinery was a third of the worker's CPU per call and of what a call in flight holds). chatq owns retrying.
 */
export class UpstreamClient {
  /** Its keep-alive connections (what they opened shows in tests). */
  readonly connections: UpstreamConnections;
  private readonly url: string;
  private readonly headers: Record<string, string>;

  constructor(private readonly opts: UpstreamOptions) {
    this.url = `${opts.baseURL.replace(/\/+$/, '')}/chat/completions`;
    this.connections = new UpstreamConnections(new URL(this.url).origin, Math.max(8, opts.concurrency));
    // A local simulator needs no key; the header goes all the same, as the SDK sends it.
    this.headers = {
      'content-type': 'application/json',
      accept: 'application/json',
      'user-agent': 'chatq',
      authorization: `Bearer ${opts.apiKey ?? 'no-key'}`,
    };
  }

  /**
   * One call, aborted after `timeoutMs` (the call timeout unless the lease leaves less); `userid` undefined: a call that
   * must not touch any user's memory (a grading), sent without one.
   */
  async chat(
    body: Record<string, unknown>,
    userid: string | undefined,
    timeoutMs = this.opts.timeoutMs,
  ): Promise<UpstreamReply> {
    // Its own timer, not AbortSignal.timeout (whose weak references cost some 10 µs a call, and the GC more).
    const abort = new AbortController();
    const { signal } = abort;
    const timer = setTimeout(() => abort.abort(), timeoutMs);
    let answer: Answer;
    try {
      answer = await this.connections.call(this.url, {
        method: 'POST',
        headers: this.headers,
        body: JSON.stringify(userid === undefined ? { ...body, stream: false } : { ...body, userid, stream: false }),
        signal,
      });
    } catch (err) {
      if (err instanceof ResponseTooLargeError) throw err;
      if (signal.aborted) throw new APIConnectionTimeoutError();
      throw new APIConnectionError({ cause: err instanceof Error ? err : new Error(String(err)) });
    } finally {
      clearTimeout(timer);
    }
    const { status, headers: raw, bytes } = answer;
    const text = bytes.toString('utf8');
    if (status >= 400) {
      const json = safeJson(text) as object | undefined;
      throw APIError.generate(status, json, json ? undefined : text, headersOf(raw));
    }
    const requestId = typeof raw['x-request-id'] === 'string' ? raw['x-request-id'] : null;
    // Not JSON by its type: no completion (as the SDK, which hands such a body back as text).
    const completion = /json/i.test(String(raw['content-type'] ?? '')) ? (JSON.parse(text) as unknown) : text;
    if (completion && typeof completion === 'object' && 'error' in completion && completion.error) {
      throw new UpstreamBodyError(classifyErrorBody(completion.error, status));
    }
    if (!completion || typeof completion !== 'object' || !Array.isArray((completion as { choices?: unknown }).choices))
      throw new MalformedResponseError('no "choices" in the response');
    return { completion: completion as Record<string, unknown>, requestId, status };
  }
}
