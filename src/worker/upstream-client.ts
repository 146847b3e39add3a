import OpenAI from 'openai';
import { createUpstreamFetch } from './http-transport.js';
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
  /** Calls in flight at once (sizes the connection pool). */
  concurrency: number;
}

/**
 * The memory-chat endpoint through the official openai SDK. The SDK's retries are off: chatq owns retrying.
 * The body goes through untouched, plus `userid`.
 */
export class UpstreamClient {
  private readonly client: OpenAI;

  constructor(private readonly opts: UpstreamOptions) {
    // The SDK refuses an empty key; a local simulator does not need one.
    this.client = new OpenAI({
      baseURL: opts.baseURL,
      apiKey: opts.apiKey ?? 'no-key',
      maxRetries: 0,
      timeout: opts.timeoutMs,
      fetch: createUpstreamFetch(opts.concurrency),
    });
  }

  /** One call, aborted after `timeoutMs` (the call timeout unless the lease leaves less). */
  async chat(body: Record<string, unknown>, userid: string, timeoutMs = this.opts.timeoutMs): Promise<UpstreamReply> {
    const params = { ...body, userid, stream: false } as unknown as OpenAI.Chat.ChatCompletionCreateParamsNonStreaming;
    const { data, response, request_id } = await this.client.chat.completions
      .create(params, { timeout: timeoutMs })
      .withResponse();
    const completion = data as unknown as Record<string, unknown>;
    if (completion && typeof completion === 'object' && 'error' in completion && completion.error) {
      throw new UpstreamBodyError(classifyErrorBody(completion.error, response.status));
    }
    if (!completion || typeof completion !== 'object' || !Array.isArray(completion.choices)) {
      throw new MalformedResponseError('no "choices" in the response');
    }
    return { completion, requestId: request_id, status: response.status };
  }
}
