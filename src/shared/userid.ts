import { createHash } from 'node:crypto';
import { validate as isUuid, version as uuidVersion } from 'uuid';
import { DEFAULT_PROJECT } from './keys.js';

/** True for a UUID v4: the only userid form the memory endpoint honours (anything else is silently ignored upstream). */
export function isUuidV4(value: string): boolean {
  return isUuid(value) && uuidVersion(value) === 4;
}

/**
 * A stable UUID v4 for any user string (email, CRM id): SHA-256 of the string fills the 122 random bits
 * of a v4 UUID, so the same input gives the same userid on every machine. `salt` gives a fresh set of users.
 * The project is part of it, so two projects never reach the upstream with the same derived userid (the endpoint's
 * memory is per userid); the default project keeps the derivation of before projects existed.
 */
export function deriveUserid(user: string, salt = '', project = DEFAULT_PROJECT): string {
  const scope = project === DEFAULT_PROJECT ? '' : `project\0${project}\0`;
  const bytes = createHash('sha256').update(`chatq-user\0${scope}${salt}\0${user}`).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
