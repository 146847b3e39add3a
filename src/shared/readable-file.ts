import { accessSync, constants, statSync } from 'node:fs';

/**
 * Why a path cannot be read as an input file, or null; `listed` when a directory listing named it (so it exists, as a
 * link at least).
 */
export function unreadable(path: string, listed = false): string | null {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    return listed ? 'broken link' : 'not found';
  }
  if (!stat.isFile()) return 'not a file';
  try {
    accessSync(path, constants.R_OK);
  } catch {
    return 'cannot read it (permission denied)';
  }
  return null;
}
