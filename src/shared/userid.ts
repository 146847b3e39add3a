import { createHash, createHmac, randomBytes } from 'node:crypto';
import { validate as isUuid, version as uuidVersion } from 'uuid';

/** True for a UUID v4: the only userid form the memory endpoint honours (anything else is silently ignored upstream). */
export function isUuidV4(value: string): boolean {
  return isUuid(value) && uuidVersion(value) === 4;
}

/** 16 bytes of a digest as a UUID v4 (its version and variant bits set). */
function asUuidV4(digest: Buffer): string {
  const bytes = digest.subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * A user string's userid in a deployment with one project (default) and no secret of its own: SHA-256 of the string
 * (and a salt) as a UUID v4. Anyone who knows the string can compute it, which is why only project default of a
 * deployment without other projects derives this way (userid-scheme.ts).
 */
export function legacyUserid(user: string, salt = ''): string {
  return asUuidV4(createHash('sha256').update(`chatq-user\0${salt}\0${user}`).digest());
}

/**
 * A user string's userid keyed with the deployment's secret: HMAC-SHA256 over the project, the salt and the string,
 * as a UUID v4. The same string, project, salt and secret give the same userid on every machine; without the secret
 * nobody can compute it, so no project can name (or claim first) a userid of another project's end users.
 */
export function keyedUserid(secret: Buffer, project: string, user: string, salt = ''): string {
  return asUuidV4(createHmac('sha256', secret).update(`chatq-user\0project\0${project}\0${salt}\0${user}`).digest());
}

/** How a deployment derives and holds userids (CHATQ_USERID_SECRET, CHATQ_USERID_HOLD_DAYS). */
export interface UseridSettings {
  /** The secret userids are keyed with; undefined: a key generated into Redis once, shared by every process. */
  secret: string | undefined;
  /** How long (s) a userid stays its project's after its latest import; 0: for ever. */
  holdS: number;
}

/** How a batch's input derives userids from "user" strings (and a salt: a fresh set of users). */
export type UseridDerivation = (user: string, salt: string) => string;

/**
 * Keyed with a secret of this process alone: what parsing uses when no userid it derives is ever sent (an estimate,
 * a --strict check), so that they count users right and name no real one.
 */
export const throwawayUserids: UseridDerivation = (() => {
  const secret = randomBytes(32);
  return (user, salt) => keyedUserid(secret, 'throwaway', user, salt);
})();
