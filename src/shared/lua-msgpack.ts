/**
 * Reads MessagePack as Redis's Lua `cmsgpack.pack` writes it: nil, booleans, numbers, arrays and strings. A Lua
 * string is bytes, so strings come back as Buffers (the reader decodes text it expects). Maps are not read. Linear in
 * the input; a value that runs past its end, or a type it does not know, is an error.
 */
export type LuaPacked = null | boolean | number | Buffer | LuaPacked[];

/** Numbers by type byte: their size in bytes and how they read (big-endian). */
const NUMBERS = new Map<number, [number, (b: Buffer, at: number) => number]>([
  [0xca, [4, (b, at) => b.readFloatBE(at)]],
  [0xcb, [8, (b, at) => b.readDoubleBE(at)]],
  [0xcc, [1, (b, at) => b.readUInt8(at)]],
  [0xcd, [2, (b, at) => b.readUInt16BE(at)]],
  [0xce, [4, (b, at) => b.readUInt32BE(at)]],
  [0xcf, [8, (b, at) => Number(b.readBigUInt64BE(at))]],
  [0xd0, [1, (b, at) => b.readInt8(at)]],
  [0xd1, [2, (b, at) => b.readInt16BE(at)]],
  [0xd2, [4, (b, at) => b.readInt32BE(at)]],
  [0xd3, [8, (b, at) => Number(b.readBigInt64BE(at))]],
]);
/** Strings (and bin, which cmsgpack does not write) and arrays by type byte: the size of their length field. */
const STRINGS = new Map([
  [0xc4, 1],
  [0xc5, 2],
  [0xc6, 4],
  [0xd9, 1],
  [0xda, 2],
  [0xdb, 4],
]);
const ARRAYS = new Map([
  [0xdc, 2],
  [0xdd, 4],
]);
const CONSTANTS = new Map<number, null | boolean>([
  [0xc0, null],
  [0xc2, false],
  [0xc3, true],
]);

export function unpackLua(data: Buffer): LuaPacked {
  let at = 0;
  const need = (n: number) => {
    if (at + n > data.length) throw new Error(`msgpack: truncated at byte ${at}`);
    const from = at;
    at += n;
    return from;
  };
  const length = (size: number) => data.readUIntBE(need(size), size);
  const bytes = (n: number) => {
    const from = need(n);
    return data.subarray(from, from + n);
  };
  const array = (n: number): LuaPacked[] => {
    // Each element is at least a byte: a length beyond what is left is bad input, not a reason to allocate.
    if (n > data.length - at) throw new Error(`msgpack: an array of ${n} at byte ${at} is longer than its input`);
    return Array.from({ length: n }, () => value());
  };
  const value = (): LuaPacked => {
    const t = data[need(1)]!;
    if (t <= 0x7f) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t >= 0xa0 && t <= 0xbf) return bytes(t & 0x1f);
    if (t >= 0x90 && t <= 0x9f) return array(t & 0x0f);
    if (CONSTANTS.has(t)) return CONSTANTS.get(t)!;
    if (STRINGS.has(t)) return bytes(length(STRINGS.get(t)!));
    if (ARRAYS.has(t)) return array(length(ARRAYS.get(t)!));
    const number = NUMBERS.get(t);
    if (!number) throw new Error(`msgpack: type 0x${t.toString(16)} at byte ${at - 1} is not one chatq writes`);
    return number[1](data, need(number[0]));
  };
  const result = value();
  if (at !== data.length) throw new Error(`msgpack: ${data.length - at} bytes after the value`);
  return result;
}
