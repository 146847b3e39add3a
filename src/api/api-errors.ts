import type { FastifyError, FastifyInstance } from 'fastify';

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

const TYPES: Record<number, string> = { 400: 'invalid_request_error', 401: 'authentication_error', 404: 'invalid_request_error', 409: 'invalid_request_error', 413: 'invalid_request_error' };

export function errorBody(status: number, message: string, code: string | null = null, param: string | null = null) {
  return { error: { message, type: TYPES[status] ?? (status >= 500 ? 'server_error' : 'invalid_request_error'), param, code } };
}

/** Every error leaves as OpenAI's shape, with no stack trace; unknown errors are logged and answered 500. */
export function installErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send(errorBody(404, `Unknown route: ${req.method} ${req.url.split('?')[0]}`, 'not_found'));
  });
  app.setErrorHandler((err: FastifyError | ApiError, req, reply) => {
    if (err instanceof ApiError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.code, err.param));
    const status = err.statusCode ?? 500;
    if (status === 413 || err.code === 'FST_ERR_CTP_BODY_TOO_LARGE' || err.code === 'FST_REQ_FILE_TOO_LARGE') {
      return reply.code(413).send(errorBody(413, 'Request body too large.', 'body_too_large'));
    }
    if (status >= 400 && status < 500) return reply.code(status).send(errorBody(status, err.message, err.code ?? null));
    req.log.error({ err: { message: err.message, code: err.code } }, 'request failed');
    return reply.code(500).send(errorBody(500, 'Internal error; the details are in the server log.', 'internal_error'));
  });
}
