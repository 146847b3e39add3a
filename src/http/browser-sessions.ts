import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';

export const SESSION_COOKIE = 'chatq_session';
/** A signed-in browser stays signed in this long (then the login form again). */
export const SESSION_TTL_S = 12 * 3600;

const digestHex = (sid: string) => createHash('sha256').update(sid).digest('hex');

/** The session id a request's cookie carries (the first chatq_session cookie), if any. */
export function sessionCookie(req: FastifyRequest): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const eq = part.indexOf('=');
    if (part.slice(0, eq).trim() === SESSION_COOKIE) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/**
 * Sessions of the dashboard's login form. The cookie holds a random id (HttpOnly, SameSite=Strict); Redis holds only
 * the id's SHA-256 and the SHA-256 of the token that opened it, never the token, so neither a read of Redis nor of
 * the cookie store gives an API token away. Who a session is comes from its token's configuration at each request:
 * a token removed from the server's configuration ends its sessions; one moved to another project takes them along.
 */
export class BrowserSessions {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  /** Starts a session for the token whose digest is given; Secure when the browser reached the server over HTTPS. */
  async start(reply: FastifyReply, tokenDigestHex: string, secure: boolean): Promise<void> {
    const sid = randomBytes(32).toString('base64url');
    await this.redis.set(this.keys.session(digestHex(sid)), tokenDigestHex, 'EX', SESSION_TTL_S);
    void reply.header(
      'set-cookie',
      `${SESSION_COOKIE}=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_S}${secure ? '; Secure' : ''}`,
    );
  }

  /** The digest of the token that opened the session, if the session exists. */
  async lookup(sid: string | undefined): Promise<string | undefined> {
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return undefined;
    return (await this.redis.get(this.keys.session(digestHex(sid)))) ?? undefined;
  }

  async end(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const sid = sessionCookie(req);
    if (sid && /^[A-Za-z0-9_-]{43}$/.test(sid)) await this.redis.del(this.keys.session(digestHex(sid)));
    void reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
  }
}
