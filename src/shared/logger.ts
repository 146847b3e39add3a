import { pino, type Logger } from 'pino';

export type { Logger };

/** pino JSON logs on stderr; anything that could hold a secret is redacted. */
export function createLogger(level: string, name = 'chatq'): Logger {
  return pino(
    {
      name,
      level,
      redact: {
        paths: [
          'apiKey',
          '*.apiKey',
          'authorization',
          '*.authorization',
          'headers.authorization',
          'req.headers.authorization',
          'config.apiKey',
          'token',
          '*.token',
          'secret',
          '*.secret',
        ],
        censor: '[redacted]',
      },
    },
    pino.destination(2),
  );
}
