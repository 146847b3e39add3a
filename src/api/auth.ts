import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { errorBody } from './api-errors.js';

const digest = (s: string) => createHash('sha256').update(s).digest();

/** The token a request carries: `Authorization: Bearer T`, or Basic auth with T as password (for the browser UI). */
function presentedToken(req: FastifyRequest): string | undefined {
  const header = req.headers.authorization ?? '';
  if (header.startsWith('Bearer ')) return header.slice(7).trim();
  if (header.startsWith('Basic ')) {
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    return decoded.slice(decoded.indexOf(':') + 1);
  }
  return undefined;
}

/**
 * Bearer-token auth on every route but /healthz. Tokens are compared as SHA-256 digests with timingSafeEqual,
 * against every configured token (no early exit), so timing says nothing about which bytes matched.
 */
export function installAuth(app: FastifyInstance, tokens: string[], open: string[] = ['/healthz']): void {
  const known = tokens.map(digest);
  app.addHook('onRequest', async (req, reply) => {
    const path = req.url.split('?')[0]!;
    if (open.includes(path)) return;
    const token = presentedToken(req);
    let ok = false;
    if (token !== undefined) {
      const d = digest(token);
      for (const k of known) ok = timingSafeEqual(d, k) || ok;
    }
    if (ok) return;
    if (path.startsWith('/admin/')) void reply.header('www-authenticate', 'Basic realm="chatq"');
    return reply.code(401).send(errorBody(401, token === undefined ? 'Missing bearer token (Authorization: Bearer <token>).' : 'Invalid bearer token.', 'invalid_api_key'));
  });
}
