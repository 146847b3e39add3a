/** The largest upstream response read: past it the call fails (a chat completion is far smaller). */
export const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;

/** An upstream answer larger than chatq reads. */
export class ResponseTooLargeError extends Error {}

/** A response body, whole, up to `max` bytes (past it the body is dropped and the read fails). */
export async function readBounded(
  body: AsyncIterable<Uint8Array> & { destroy(): unknown },
  max = MAX_RESPONSE_BYTES,
): Promise<Buffer> {
  const chunks: Uint8Array[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw new ResponseTooLargeError(`the upstream answer is larger than ${max} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, size);
}

/** undici's response headers as WHATWG Headers (what the openai SDK's errors and Responses carry). */
export function headersOf(raw: Record<string, string | string[] | undefined>): Headers {
  const headers = new Headers();
  for (const [k, v] of Object.entries(raw)) if (v !== undefined) headers.set(k, Array.isArray(v) ? v.join(', ') : v);
  return headers;
}
