import type { AcquireReply } from './acquire-call.js';

/** Calls reserved together: the log entry (member) is set to their real tokens once the last has settled. */
export interface ReservedGroup {
  member: string;
  unsettled: number;
  realTokens: number;
}

/** What acquire-capacity.lua answered one call: reserved (state 1, its slot `waitMs` away) or not, and for a group. */
export interface GroupAnswer {
  state: number;
  waitMs: number;
  outage: number;
  /** The global token log's total after the ask. */
  globalTokens: number;
  group?: ReservedGroup;
}

/** Runs acquire-capacity.lua for `calls` calls of `tokens` in all: its answer and the member it logged them under. */
export type ReserveGroup = (tokens: number, calls: number) => Promise<{ member: string; reply: AcquireReply }>;

/** A call waiting to be reserved with the others that ask meanwhile. */
interface GroupWaiter {
  estimate: number;
  done: (answer: GroupAnswer) => void;
  fail: (err: unknown) => void;
}

/**
 * Calls of one process reserved in one step at the most; their request slots span at most GROUP_SPAN_MS (a call may
 * start that much after its slot: within the 1% headroom of a minute's window, so no sliding minute holds more).
 */
const MAX_GROUP = 100;
const GROUP_SPAN_MS = 500;

/**
 * The calls of a process that ask for capacity while a reservation is in flight wait, and go together in the next
 * one: one script for many calls, each with its own request slot (spaced as the rpm limit says), their tokens as one
 * log entry of at most a sixth of the tpm limit (what an empty window admits).
 */
export class GroupedReservations {
  private waiting: GroupWaiter[] = [];
  private reserving = false;

  constructor(
    private readonly limits: { rpm: number; tpm: number; headroom: number },
    private readonly reserveGroup: ReserveGroup,
  ) {}

  reserve(estimate: number): Promise<GroupAnswer> {
    return new Promise((done, fail) => {
      this.waiting.push({ estimate, done, fail });
      this.next();
    });
  }

  private next(): void {
    if (this.reserving || this.waiting.length === 0) return;
    const { rpm, tpm, headroom } = this.limits;
    const spacing = rpm > 0 ? (60_000 * (1 + headroom)) / rpm : 0;
    const most = Math.min(
      MAX_GROUP,
      spacing > 0 ? Math.floor(GROUP_SPAN_MS / spacing) + 1 : MAX_GROUP,
      this.waiting.length,
    );
    let tokens = 0;
    let size = 0;
    while (size < most && (size === 0 || tpm === 0 || tokens + this.waiting[size]!.estimate <= tpm / 6)) {
      tokens += this.waiting[size]!.estimate;
      size += 1;
    }
    const group = this.waiting.splice(0, size);
    this.reserving = true;
    this.reserveGroup(tokens, group.length)
      .then(
        ({ member, reply: { state, wait_ms: waitMs, outage, spacing_ms: slotMs, global_tokens: globalTokens } }) => {
          const reserved: ReservedGroup | undefined =
            state === 1 ? { member, unsettled: group.length, realTokens: 0 } : undefined;
          for (const [i, w] of group.entries())
            w.done({
              state,
              waitMs: reserved ? waitMs + Math.ceil(i * slotMs) : waitMs,
              outage,
              globalTokens,
              ...(reserved ? { group: reserved } : {}),
            });
        },
        (err: unknown) => {
          for (const w of group) w.fail(err);
        },
      )
      .finally(() => {
        this.reserving = false;
        this.next();
      });
  }
}
