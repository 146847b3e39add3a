import { getFile, type StoredFile } from '../shared/files/file-store.js';
import { isBatchId, isFileId } from '../shared/ids.js';
import { getBatch } from '../shared/batches/read-store.js';
import type { BatchRecord } from '../shared/batch-record.js';
import { sees, type Scope } from '../shared/scope.js';
import type { ApiDeps } from './api-deps.js';
import type { ApiError } from './api-errors.js';

type Deps = Pick<ApiDeps, 'redis' | 'keys'>;

/**
 * A record the scope may see, or the error `missing` makes: another project's record is answered exactly like one
 * that does not exist (404, never 403), so existence does not leak. An id of the wrong shape is not looked up.
 */
function visible<T extends { project: string }>(
  load: (deps: Deps, id: string) => Promise<T | null>,
  isId: (id: string) => boolean,
) {
  return async (deps: Deps, scope: Scope, id: string, missing: () => ApiError): Promise<T> => {
    const found = isId(id) ? await load(deps, id) : null;
    if (!found || !sees(scope, found.project)) throw missing();
    return found;
  };
}

/** A batch the scope may see. */
export const loadVisibleBatch = visible<BatchRecord>((d, id) => getBatch(d.redis, d.keys, id), isBatchId);

/** An uploaded file the scope may see. */
export const loadVisibleFile = visible<StoredFile>((d, id) => getFile(d.redis, d.keys, id), isFileId);
