import { randomUUID } from 'node:crypto';

/**
 * The shapes of chatq's ids. Anything else is unknown (a 404) before it can reach a Redis key, so that no id can name
 * a key of another type (`file-…:lines`) or be longer than a key should be.
 */
const hex24 = () => randomUUID().replace(/-/g, '').slice(0, 24);

export const newFileId = () => `file-${hex24()}`;
export const newBatchId = () => `batch_${hex24()}`;

export const isFileId = (id: string) => /^file-[0-9a-f]{24}$/.test(id);
export const isBatchId = (id: string) => /^batch_[0-9a-f]{24}$/.test(id);
export const isRequestId = (id: string) => /^batch_[0-9a-f]{24}(?:_s\d{1,2}of\d{1,2})?-\d{1,12}$/.test(id);
