import { createHash, randomBytes } from 'node:crypto';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis.js';
import { ALL_PROJECTS, projectScope } from '../shared/scope.js';
import type { Principal } from './auth.js';

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
 * the id's SHA-256 and who signed in (project, admin), never the token, so neither a read of Redis nor of the
 * cookie store gives an API token away.
 */
export class BrowserSessions {
  constructor(
    private readonly redis: RedisClient,
    private readonly keys: RedisKeys,
  ) {}

  async start(reply: FastifyReply, who: Principal, secure: boolean): Promise<void> {
    const sid = randomBytes(32).toString('base64url');
    await this.redis.set(this.keys.session(digestHex(sid)), JSON.stringify({ project: who.scope.project ?? null, admin: who.admin }), 'EX', SESSION_TTL_S);
    void reply.header('set-cookie', `${SESSION_COOKIE}=${sid}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${SESSION_TTL_S}${secure ? '; Secure' : ''}`);
  }

  async lookup(sid: string | undefined): Promise<Principal | undefined> {
    if (!sid || !/^[A-Za-z0-9_-]{43}$/.test(sid)) return undefined;
    const raw = await this.redis.get(this.keys.session(digestHex(sid)));
    if (!raw) return undefined;
    const s = JSON.parse(raw) as { project: string | null; admin: boolean };
    return { scope: s.project === null ? ALL_PROJECTS : projectScope(s.project), admin: s.admin };
  }

  async end(req: FastifyRequest, reply: FastifyReply): Promise<void> {
    const sid = sessionCookie(req);
    if (sid && /^[A-Za-z0-9_-]{43}$/.test(sid)) await this.redis.del(this.keys.session(digestHex(sid)));
    void reply.header('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
  }
}
