/** Where a user, a batch part or a request id goes among the shards, and each shard's hash tag: pure functions. */

/** The largest CHATQ_SHARDS: shards are hash tags, and each has its own BullMQ queue and worker connection. */
export const MAX_SHARDS = 64;

/** Stable across processes and versions: FNV-1a (32 bit) of the userid's UTF-8 bytes, modulo the shard count. */
export function shardOfUser(userid: string, count: number): number {
  if (count <= 1) return 0;
  let h = 0x811c9dc5;
  for (const byte of Buffer.from(userid, 'utf8')) h = Math.imul(h ^ byte, 0x01000193) >>> 0;
  return h % count;
}

/** A sharded batch keeps one part per shard, a batch of its own under the shard's tag: `<batch>_s<i>`. */
export const batchPartId = (batchId: string, shard: number, count: number) => `${batchId}_s${shard}of${count}`;
/**
 * The shard a part or a part's request (`<batch>_s<i>of<n>-<seq>`) is in, and the shard count it was made with (an id
 * stays readable after CHATQ_SHARDS changes); undefined for anything else.
 */
export function shardOfId(id: string): { index: number; count: number } | undefined {
  const m = /_s(\d{1,2})of(\d{1,2})(?:-\d+)?$/.exec(id);
  return m && Number(m[1]) < Number(m[2]) ? { index: Number(m[1]), count: Number(m[2]) } : undefined;
}
/** The batch a part belongs to. */
export const parentOfPart = (partId: string) => partId.replace(/_s\d{1,2}of\d{1,2}$/, '');

/** The Redis Cluster slot of a hash tag's content (CRC16/XMODEM modulo 16384, as Redis computes it). */
export function clusterSlot(tag: string): number {
  let crc = 0;
  for (const byte of Buffer.from(tag, 'utf8')) {
    crc ^= byte << 8;
    for (let bit = 0; bit < 8; bit += 1) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff;
  }
  return crc % 16384;
}

const SLOTS = 16384;
/**
 * Shard `i`'s tag: `{chatq}` -> `{chatq:s3}` or `{chatq:s3.<k>}`, with the least k that puts its slot in the middle
 * of the i-th of `count` equal slot ranges. A cluster made with `redis-cli --cluster create` gives its masters equal
 * ranges, so N shards over M masters (N a multiple of M) sit N/M on each; a ":" no CHATQ_PREFIX may hold keeps any
 * deployment's own tag apart.
 */
export function shardPrefix(prefix: string, i: number, count: number): string {
  const name = prefix.slice(1, -1);
  const lo = Math.ceil((i * SLOTS) / count);
  const width = Math.ceil(((i + 1) * SLOTS) / count) - lo;
  for (let k = 0; ; k += 1) {
    const tag = `${name}:s${i}${k ? `.${k}` : ''}`;
    const at = clusterSlot(tag) - lo;
    if (at >= width / 4 && at < width - width / 4) return `{${tag}}`;
  }
}
