import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { describeRedisError } from '../shared/redis/redis-errors.js';

/** An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}}. */
export class ApiError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
  ) {
    super(message);
  }
}

/** The first problem of an input, as a 400 naming the field (`path`: where in the input; empty: the input itself). */
export function invalidInput(path: readonly PropertyKey[], message: string): ApiError {
  const param = path.map(String).join('.') || null;
  return new ApiError(400, param ? `${param}: ${message}` : message, 'invalid_request', param);
}

/**
 * An error as an ApiError when it is one, or a route's input that failed its schema (zod-edge.ts), worded as
 * parseInput words it; else the error itself.
 */
export function asApiError<E extends Error>(err: E): ApiError | E {
  if (!hasZodFastifySchemaValidationErrors(err)) return err;
  const first = err.validation[0]!;
  return invalidInput(first.instancePath.split('/').filter(Boolean), first.message ?? 'invalid input');
}

/** What a client is told to wait before trying again while Redis is out of reach. */
export const STORE_RETRY_AFTER_S = 5;

const TYPES: Record<number, string> = { 401: 'authentication_error' };

export function errorBody(status: number, message: string, code: string | null = null, param: string | null = null) {
  return {
    error: { message, type: TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param, code },
  };
}

/** Errors the router meets before any route runs (a URL it cannot decode, a path parameter past its length). */
export function frameworkErrors(err: FastifyError, _req: FastifyRequest, reply: FastifyReply): void {
  if (err.code === 'FST_ERR_MAX_PARAM_LENGTH')
    void reply.code(414).send(errorBody(414, 'The URL is too long: no id is that long.', 'uri_too_long'));
  else void reply.code(400).send(errorBody(400, 'The URL is malformed.', 'invalid_url'));
}

/** A request Node's HTTP parser refuses (headers too large, a broken request line): answered in the same shape, then closed. */
export function clientErrorHandler(err: NodeJS.ErrnoException, socket: Duplex): void {
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
  const status = tooLarge ? 431 : 400;
  const body = JSON.stringify(
    errorBody(
      status,
      tooLarge ? 'Request headers too large.' : 'Malformed HTTP request.',
      tooLarge ? 'headers_too_large' : 'invalid_request',
    ),
  );
  socket.end(
    `HTTP/1.1 ${status} ${tooLarge ? 'Request Header Fields Too Large' : 'Bad Request'}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`,
  );
}

/** Every error leaves as OpenAI's shape, with no stack trace; unknown errors are logged and answered 500. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(404, `Unknown route: ${req.method} ${req.url.split('?')[0]}`, 'not_found'));
  });
  app.setErrorHandler((thrown: FastifyError | ApiError, req, reply) => {
    const err = asApiError(thrown);
    if (err instanceof ApiError)
      return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.code, err.param));
    const status = err.statusCode ?? 500;
    if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.code === 'FST_REQ_FILE_TOO_LARGE') {
      return reply.code(413).send(errorBody(413, 'Request body too large.', 'body_too_large'));
    }
    if (status >= 400 && status < 500) return reply.code(status).send(errorBody(status, err.message, err.code ?? null));
    // Redis full or gone is the server's state, not a fault in the request: the client is told to try again.
    const redis = describeRedisError(err);
    if (redis && redis.code !== 'redis_error') {
      return reply
        .code(503)
        .header('retry-after', String(redis.code === 'redis_oom' ? 30 : STORE_RETRY_AFTER_S))
        .send(
          errorBody(
            503,
            redis.code === 'redis_oom'
              ? 'The server has no room to store this right now; try again later.'
              : 'The server cannot reach its store right now; try again shortly.',
            redis.code === 'redis_oom' ? 'server_full' : 'store_unavailable',
          ),
        );
    }
    req.log.error({ err: { message: err.message, code: err.code } }, 'request failed');
    return reply.code(500).send(errorBody(500, 'Internal error; the details are in the server log.', 'internal_error'));
  });
}
