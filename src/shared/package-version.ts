import { readFileSync } from 'node:fs';

/** chatq's version, as its package.json says (src/shared and dist/shared are both two folders below it). */
export const PACKAGE_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;
