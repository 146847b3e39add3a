/** One page of an OpenAI list (cursor pagination): its items, the first and last ids, whether more follow. */
export const listPage = <T extends { id: string }>(data: T[], hasMore: boolean) => ({
  object: 'list' as const,
  data,
  first_id: data[0]?.id ?? null,
  last_id: data.at(-1)?.id ?? null,
  has_more: hasMore,
});
