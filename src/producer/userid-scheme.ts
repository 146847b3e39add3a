import { createHmac, randomBytes } from 'node:crypto';
import { DEFAULT_PROJECT, type RedisKeys } from '../shared/keys.js';
import type { RedisClient } from '../shared/redis/redis.js';
import { keyedUserid, legacyUserid, type UseridDerivation, type UseridSettings } from '../shared/userid.js';

const FINGERPRINT_OF = 'chatq userid secret fingerprint';
const fingerprint = (secret: Buffer) => createHmac('sha256', secret).update(FINGERPRINT_OF).digest('hex').slice(0, 32);
const SOURCES = { env: 'CHATQ_USERID_SECRET', redis: 'a key generated into Redis' } as const;

/**
 * The derivation an import of `project` gives its "user" strings (docs/behaviour.md, "Projects"): keyed with the
 * deployment's secret, except project default's while it is the deployment's only project (it keeps the derivation
 * its end users' memory was made under). Decided when the import begins.
 *
 * The secret is CHATQ_USERID_SECRET, else a key generated into Redis once. A fingerprint of the one first used is kept
 * beside it: a process with another one is refused before it writes anything, since its userids would name other end
 * users than every other machine's.
 */
export async function importUserids(
  redis: RedisClient,
  keys: RedisKeys,
  settings: UseridSettings,
  project: string,
): Promise<UseridDerivation> {
  const key = keys.useridScheme;
  const source: keyof typeof SOURCES = settings.secret ? 'env' : 'redis';
  if (source === 'redis') await redis.hsetnx(key, 'generated', randomBytes(32).toString('hex'));
  const [generated] = await redis.hmget(key, 'generated');
  const secret = settings.secret ? Buffer.from(settings.secret, 'utf8') : Buffer.from(generated!, 'hex');
  const mine = fingerprint(secret);
  const [, , held, heldSource, projects] = (await redis
    .multi()
    .hsetnx(key, 'fingerprint', mine)
    .hsetnx(key, 'source', source)
    .hget(key, 'fingerprint')
    .hget(key, 'source')
    .smembers(keys.projects)
    .exec())!.map(([err, v]) => {
    if (err) throw err;
    return v;
  }) as [number, number, string, string, string[]];
  if (held !== mine) {
    const was = SOURCES[heldSource as keyof typeof SOURCES] ?? heldSource;
    throw new Error(
      source === 'env' && heldSource === 'env'
        ? `CHATQ_USERID_SECRET is not the secret this deployment's userids are derived with: set the same one on every machine (its userids would name other end users)`
        : `this deployment derives userids with ${was}, and this process with ${SOURCES[source]}: ${heldSource === 'env' ? 'set CHATQ_USERID_SECRET here as on the other machines' : 'unset CHATQ_USERID_SECRET here'} (its userids would name other end users)`,
    );
  }
  // Every project that has made a batch is in the set (createBatchRecord).
  const alone = project === DEFAULT_PROJECT && projects.every((p) => p === DEFAULT_PROJECT);
  return alone ? legacyUserid : (user, salt) => keyedUserid(secret, project, user, salt);
}
