import { Packr } from 'msgpackr';

/**
 * MessagePack as chatq's scripts and records use it (msgpackr, BullMQ's own): maps as plain objects, no record
 * extension (Redis Lua's cmsgpack reads and writes plain MessagePack), and every integer as a number (cmsgpack writes
 * whole numbers past 32 bits as 64-bit integers; chatq's are all below 2^53).
 */
export const msgpack = new Packr({ useRecords: false, encodeUndefinedAsNil: false, int64AsType: 'number' });
