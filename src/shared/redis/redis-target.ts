/** REDIS_URL read: one Redis, a cluster's seed nodes, or Sentinel's sentinels; and how to print it without secrets. */

import { printableUrl } from '../printable-url.js';

/** Where Redis is: one URL, (cluster) comma-separated seed node URLs, or (Sentinel) redis+sentinel:// sentinels. */
export interface RedisTarget {
  redisUrl: string;
  redisCluster: boolean;
  /** The CA file a rediss:// server's certificate is checked against. */
  redisCa?: string | undefined;
}

/** A REDIS_URL fit to print: without user names and passwords. */
export function printableRedisUrl(url: string): string {
  try {
    return seedUrls(url).map(printableUrl).join(',');
  } catch {
    return '(unparsable REDIS_URL)';
  }
}

/** The seed nodes of a REDIS_URL: "redis://h1:7000,redis://h2:7001" (or "redis://h1:7000,h2:7001"). */
export function seedUrls(redisUrl: string): URL[] {
  const parts = redisUrl
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
  const scheme = /^[a-z+]+:\/\//.exec(parts[0] ?? '')?.[0] ?? 'redis://';
  return parts.map((s) => new URL(s.includes('://') ? s : `${scheme}${s}`));
}

const SENTINEL = /^rediss?\+sentinel:$/;

/** A redis+sentinel:// (or rediss+sentinel://) URL: its seeds are sentinels. */
export const isSentinel = (seeds: URL[]) => SENTINEL.test(seeds[0]!.protocol);

/** The master the sentinels are asked for: the path of redis+sentinel://s1:26379,s2:26379/NAME. */
export const sentinelMaster = (seeds: URL[]) =>
  seeds.map((u) => decodeURIComponent(u.pathname.slice(1))).find(Boolean) ?? 'mymaster';
