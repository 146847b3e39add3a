import type { ChainableCommander } from 'ioredis';
import { msgpack } from '../msgpack.js';
import { LuaScript, type RedisClient } from './redis.js';

/**
 * A script's contract, defined once and by name: its keys, its arguments (each with its kind) and its reply. The
 * TypeScript side takes keys and arguments as objects and answers the reply as one; the Lua side gets them by name
 * from a prelude made from the same definition ("--- @include contract"):
 * - `K.<name>`: each key (KEYS, in the order the contract names them), written in as `KEYS[i]` when the script is
 *   loaded (keyPlaces: an unknown name is an error then); a table K only where the script looks a key up by a name it
 *   makes at run time (`K[name]`) or has a rest list;
 * - `A.<name>`: each argument, packed as one MessagePack map in ARGV[1] (tables and lists as they are: no JSON to
 *   decode), checked before the script's first line runs: a missing or mistyped one is an error naming it (only the
 *   contract's arguments are packed: no other name reaches the script).
 *   A `bytes` argument (a value the script stores as it is, such as a compressed response) comes after it, raw, as
 *   cmsgpack has no type for bytes;
 * - `reply(t)`: the answer, a table by name, packed as MessagePack (nested tables too);
 * - `wholeText(n)`: a whole number as Redis writes it.
 * Nothing is positional on either side but what this module makes from the one definition.
 */

/** What an argument is: text, a whole number (0 to 1e15), any number, a boolean, a map, a list, or raw bytes. */
type Kind = 'string' | 'whole' | 'number' | 'boolean' | 'table' | 'list' | 'bytes';
type KindOf<T> = [T] extends [string | Buffer]
  ? [T] extends [string]
    ? 'string' | 'bytes'
    : 'bytes'
  : [T] extends [number]
    ? 'whole' | 'number'
    : [T] extends [boolean]
      ? 'boolean'
      : [T] extends [readonly unknown[]]
        ? 'list'
        : [T] extends [object]
          ? 'table'
          : never;
/** Each argument's kind, with "?" when the argument may be left out (undefined), as its TypeScript type says. */
export type ArgKinds<A> = {
  [N in keyof A]-?: undefined extends A[N] ? `${KindOf<Exclude<A[N], undefined>>}?` : KindOf<A[N]>;
};

export interface Contract<K extends string, A, Rest extends string = never> {
  /** The script's file (a .lua beside the code that runs it). */
  file: URL;
  keys: readonly K[];
  /**
   * The name of a list of keys after the named ones, for a script whose keys come from what it reads (the usage fold
   * declares every aggregate its records name): K.<rest> in Lua, `<rest>: string[]` among the keys in TypeScript.
   */
  rest?: Rest;
  args: ArgKinds<A>;
}

const LUA_TYPE: Record<Exclude<Kind, 'whole' | 'bytes'>, string> = {
  string: 'string',
  number: 'number',
  boolean: 'boolean',
  table: 'table',
  list: 'table',
};

/** The contract's K table: each key by name. */
const keysTable = (keys: readonly string[]) =>
  `local K = { ${keys.map((k, i) => `${k} = KEYS[${i + 1}]`).join(', ')} }`;

/**
 * A script's text with each `K.<name>` written as its place in KEYS, and no K table to build on every call; as it is
 * when the script looks keys up by names made at run time (`K[...]`) or has a rest list.
 */
function keyPlaces(lua: string, script: string, keys: readonly string[], rest: string | undefined): string {
  if (rest || /\bK\[/.test(lua)) return lua;
  return lua.replace(`${keysTable(keys)}\n`, '').replace(/\bK\.(\w+)/g, (_, name: string) => {
    const place = keys.indexOf(name);
    if (place < 0) throw new Error(`${script}: K.${name} is no key of its contract`);
    return `KEYS[${place + 1}]`;
  });
}

/** The Lua prelude of a contract: K, A (checked) and reply. */
function contractPrelude(
  script: string,
  keys: readonly string[],
  rest: string | undefined,
  args: Record<string, string>,
): string {
  const fail = (what: string) => `error('chatq ${script}: ${what}')`;
  const entries = Object.entries(args).map(([name, spec]) => {
    const optional = spec.endsWith('?');
    return { name, kind: (optional ? spec.slice(0, -1) : spec) as Kind, optional };
  });
  const packed = entries.filter((e) => e.kind !== 'bytes');
  const raw = entries.filter((e) => e.kind === 'bytes');
  const check = ({ name, kind, optional }: (typeof entries)[number]) => {
    const v = `A.${name}`;
    const bad =
      kind === 'whole'
        ? `type(${v}) ~= 'number' or ${v} < 0 or ${v} > 1e15 or ${v} % 1 ~= 0`
        : `type(${v}) ~= '${LUA_TYPE[kind as keyof typeof LUA_TYPE]}'`;
    const what = kind === 'whole' ? 'a whole number from 0 to 1e15' : `a ${kind}`;
    const message = fail(`argument "${name}" must be ${what}`);
    return optional
      ? `if ${v} ~= nil and (${bad}) then ${message} end`
      : `if ${v} == nil then ${fail(`missing argument "${name}"`)} elseif ${bad} then ${message} end`;
  };
  return [
    keysTable(keys),
    ...(rest ? [`K.${rest} = {} for i = ${keys.length + 1}, #KEYS do K.${rest}[#K.${rest} + 1] = KEYS[i] end`] : []),
    `local A = cmsgpack.unpack(ARGV[1] or '')`,
    `if type(A) ~= 'table' then ${fail('ARGV[1] must be a MessagePack map of named arguments')} end`,
    ...packed.map(check),
    ...raw.map(({ name, optional }, i) =>
      optional
        ? `if ARGV[${i + 2}] ~= nil and ARGV[${i + 2}] ~= '' then A.${name} = ARGV[${i + 2}] end`
        : `A.${name} = ARGV[${i + 2}] or ${fail(`missing argument "${name}"`)}`,
    ),
    'local function reply(t) return cmsgpack.pack(t) end',
    '-- A whole number as Redis writes it (digits, never an exponent), for a field, a counter or a score.',
    "local function wholeText(v) return string.format('%d', v) end",
  ].join('\n');
}

/** A script's keys by name (its rest list, when it has one, as a list). */
type Keys<K extends string, Rest extends string> = Record<K, string> & Record<Rest, string[]>;

/** One script and its contract: run with keys and arguments by name, answered by name. */
export class ContractScript<K extends string, A, R, Rest extends string = never> {
  readonly lua: LuaScript;
  private readonly keyNames: readonly K[];
  private readonly rest: Rest | undefined;
  private readonly packedNames: string[];
  private readonly rawNames: string[];

  constructor(contract: Contract<K, A, Rest>) {
    const script = contract.file.pathname.replace(/^.*\//, '').replace(/\.lua$/, '');
    const args = contract.args as Record<string, string>;
    this.lua = new LuaScript(
      contract.file,
      { contract: () => contractPrelude(script, contract.keys, contract.rest, args) },
      (lua, file) => keyPlaces(lua, file, contract.keys, contract.rest),
    );
    this.rest = contract.rest;
    this.keyNames = contract.keys;
    this.packedNames = Object.keys(args).filter((n) => !args[n]!.startsWith('bytes'));
    this.rawNames = Object.keys(args).filter((n) => args[n]!.startsWith('bytes'));
  }

  /** KEYS and ARGV as Redis takes them. */
  argv(keys: Keys<K, Rest>, args: A): { keys: string[]; argv: (string | Buffer)[] } {
    const named = args as Record<string, unknown>;
    const packed: Record<string, unknown> = {};
    for (const name of this.packedNames) if (named[name] !== undefined) packed[name] = named[name];
    const rest = this.rest ? keys[this.rest] : [];
    return {
      keys: [...this.keyNames.map((k) => keys[k]), ...rest],
      argv: [msgpack.pack(packed), ...this.rawNames.map((n) => (named[n] as string | Buffer | undefined) ?? '')],
    };
  }

  /** The reply, by name. */
  read(reply: unknown): R {
    return msgpack.unpack(reply as Buffer) as R;
  }

  async run(redis: RedisClient, keys: Keys<K, Rest>, args: A): Promise<R> {
    const { keys: k, argv } = this.argv(keys, args);
    return this.read(await this.lua.runBuffer(redis, k, argv));
  }

  /**
   * Runs it, then WAITs (same round trip, same node) until `replicas.count` replicas hold its writes or
   * `replicas.timeoutMs` passed (LuaScript.runReplicated).
   */
  async runReplicated(
    redis: RedisClient,
    keys: Keys<K, Rest>,
    args: A,
    replicas: { count: number; timeoutMs: number },
  ): Promise<{ reply: R; replicated: boolean }> {
    const { keys: k, argv } = this.argv(keys, args);
    const { reply, replicated } = await this.lua.runReplicated(redis, k, argv, replicas, true);
    return { reply: this.read(reply), replicated };
  }

  /** Queues it on a pipeline (whose client has run `lua.prepare`); its reply there is read with `read`. */
  queue(pipeline: ChainableCommander, keys: Keys<K, Rest>, args: A): void {
    const { keys: k, argv } = this.argv(keys, args);
    this.lua.queue(pipeline, k, argv, true);
  }
}

/** `defineScript<Args, Reply>()({ file, keys, args })`: the arguments' and reply's types given, the key names found. */
export const defineScript =
  <A, R>() =>
  <const K extends string, const Rest extends string = never>(contract: Contract<K, A, Rest>) =>
    new ContractScript<K, A, R, Rest>(contract);
