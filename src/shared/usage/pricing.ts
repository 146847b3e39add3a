import { readFileSync } from 'node:fs';
import { z } from 'zod';

/** USD per 1M tokens. */
export interface ModelPrice {
  input: number;
  cachedInput: number;
  output: number;
  /** The most tokens one reply of this model may take (LiteLLM's max_output_tokens), when known. */
  maxOutput?: number;
}

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  cached_tokens: number;
  reasoning_tokens: number;
}

export type PriceTable = Map<string, ModelPrice>;

const outputLimit = z.number().int().min(1).optional();
const chatqEntry = z.object({
  input: z.number().min(0),
  cached_input: z.number().min(0).optional(),
  output: z.number().min(0),
  max_output: outputLimit,
});
const litellmEntry = z.object({
  input_cost_per_token: z.number().min(0),
  output_cost_per_token: z.number().min(0),
  cache_read_input_token_cost: z.number().min(0).optional(),
  max_output_tokens: outputLimit.catch(undefined),
});
const withLimit = (maxOutput: number | undefined) => (maxOutput === undefined ? {} : { maxOutput });

/** A price file that cannot be read or is not a price table. */
export class PriceFileError extends Error {}

/** Reads chatq's prices.json shape or LiteLLM's model_prices_and_context_window.json; entries of neither shape are ignored. */
export function parsePriceFile(json: unknown, source: string): PriceTable {
  if (typeof json !== 'object' || json === null)
    throw new PriceFileError(`${source}: expected a JSON object of model -> prices`);
  const table: PriceTable = new Map();
  for (const [model, entry] of Object.entries(json)) {
    const own = chatqEntry.safeParse(entry);
    if (own.success) {
      table.set(model, {
        input: own.data.input,
        cachedInput: own.data.cached_input ?? own.data.input,
        output: own.data.output,
        ...withLimit(own.data.max_output),
      });
      continue;
    }
    const lite = litellmEntry.safeParse(entry);
    if (lite.success) {
      const perMillion = (v: number) => Math.round(v * 1e6 * 1e6) / 1e6;
      table.set(model, {
        input: perMillion(lite.data.input_cost_per_token),
        cachedInput: perMillion(lite.data.cache_read_input_token_cost ?? lite.data.input_cost_per_token),
        output: perMillion(lite.data.output_cost_per_token),
        ...withLimit(lite.data.max_output_tokens),
      });
    }
  }
  return table;
}

/** The shipped prices, overlaid by `overrideFile` when given (its entries win). */
export function loadPrices(overrideFile?: string): PriceTable {
  const shipped = parsePriceFile(
    JSON.parse(readFileSync(new URL('./prices.json', import.meta.url), 'utf8')),
    'prices.json',
  );
  if (!overrideFile) return shipped;
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(overrideFile, 'utf8'));
  } catch (err) {
    throw new PriceFileError(`CHATQ_PRICES: cannot read ${overrideFile}: ${(err as Error).message}`);
  }
  for (const [model, price] of parsePriceFile(json, overrideFile)) shipped.set(model, price);
  return shipped;
}

/** 302.AI add-on suffixes that do not change the base model's token price. */
const ADDON_SUFFIXES = ['-web-search', '-ocr'];

export function findPrice(table: PriceTable, model: string): ModelPrice | undefined {
  const exact = table.get(model);
  if (exact) return exact;
  const base = ADDON_SUFFIXES.reduce((m, s) => (m.endsWith(s) ? m.slice(0, -s.length) : m), model);
  return table.get(base);
}

/**
 * Cost in integer nano-USD, or undefined when the model has no price (counted as unpriced, never as free).
 * Cached tokens are part of prompt_tokens and billed at the cached rate; reasoning tokens are part of
 * completion_tokens and billed as output: neither is counted twice.
 */
export function costNano(price: ModelPrice | undefined, usage: Usage): number | undefined {
  if (!price) return undefined;
  const cached = Math.min(usage.cached_tokens, usage.prompt_tokens);
  // 1 USD per 1M tokens = 1,000 nano-USD per token.
  return Math.round(
    (usage.prompt_tokens - cached) * price.input * 1000 +
      cached * price.cachedInput * 1000 +
      usage.completion_tokens * price.output * 1000,
  );
}

export function formatUsd(nano: number): string {
  const usd = nano / 1e9;
  return `$${usd < 0.01 && usd > 0 ? usd.toFixed(6) : usd.toFixed(4)}`;
}
