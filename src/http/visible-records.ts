import { isBatchId } from '../shared/ids.js';
import { getBatch } from '../shared/batches/read-store.js';
import type { BatchRecord } from '../shared/request-record.js';
import { sees, type Scope } from '../shared/scope.js';
import type { ApiDeps } from './api-deps.js';
import type { ApiError } from './api-errors.js';

/**
 * A batch the scope may see, or the error `missing` makes: another project's batch is answered exactly like one
 * that does not exist (404, never 403), so existence does not leak.
 */
export async function loadVisibleBatch(
  deps: Pick<ApiDeps, 'redis' | 'keys'>,
  scope: Scope,
  id: string,
  missing: () => ApiError,
): Promise<BatchRecord> {
  const batch = isBatchId(id) ? await getBatch(deps.redis, deps.keys, id) : null;
  if (!batch || !sees(scope, batch.project)) throw missing();
  return batch;
}
