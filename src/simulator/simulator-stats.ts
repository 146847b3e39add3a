/** What the simulator saw, per user and in total: enough for a test to prove order, no overlap and token totals. */
export interface UserCalls {
  calls: number;
  inFlight: number;
  overlaps: number;
  /** Last user message of each call, in arrival order. */
  arrivals: string[];
  /** When each call arrived (ms), in the same order. */
  arrivedAt: number[];
  /** The messages of each call, when recordMessages is on. */
  messages?: unknown[][];
  lastSeq: number;
  /** When the user's latest call ended (ms), and the shortest time between one call's end and the next's arrival. */
  lastEndAt: number | null;
  minGapMs: number | null;
}

export interface SimulatorStats {
  calls: number;
  answered: number;
  byStatus: Record<string, number>;
  injected: { error5xx: number; rateLimit429: number; timeout: number; drop: number; malformed: number };
  /** 429s sent because the endpoint's own RPM/TPM limit was reached. */
  limited: number;
  nonV4Calls: number;
  overlaps: number;
  /** Calls whose "[seq N]" marker was lower than an earlier call's of the same user. */
  outOfOrder: number;
  tokens: TokenCounts;
  /** The same, per model. */
  tokensByModel: Record<string, TokenCounts>;
  /** When each call arrived (ms), by the client's address: which host sent what, and when. */
  arrivalsFrom: Record<string, number[]>;
  peakRequestsInWindow: number;
  peakTokensInWindow: number;
  users: Record<string, UserCalls>;
}

export interface TokenCounts {
  prompt: number;
  completion: number;
  total: number;
  cached: number;
  reasoning: number;
}

const zeroTokens = (): TokenCounts => ({ prompt: 0, completion: 0, total: 0, cached: 0, reasoning: 0 });

export function addTokens(stats: SimulatorStats, model: string, t: Omit<TokenCounts, 'total'>): void {
  for (const into of [stats.tokens, (stats.tokensByModel[model] ??= zeroTokens())]) {
    into.prompt += t.prompt;
    into.completion += t.completion;
    into.total += t.prompt + t.completion;
    into.cached += t.cached;
    into.reasoning += t.reasoning;
  }
}

export function emptyStats(): SimulatorStats {
  return {
    calls: 0,
    answered: 0,
    byStatus: {},
    injected: { error5xx: 0, rateLimit429: 0, timeout: 0, drop: 0, malformed: 0 },
    limited: 0,
    nonV4Calls: 0,
    overlaps: 0,
    outOfOrder: 0,
    tokens: zeroTokens(),
    tokensByModel: {},
    arrivalsFrom: {},
    peakRequestsInWindow: 0,
    peakTokensInWindow: 0,
    users: {},
  };
}

const SEQ_MARK = /\[seq (\d+)\]/;

/** Records a call's arrival for its user; returns a function to call when the call ends (answered or not). */
export function recordArrival(
  stats: SimulatorStats,
  userid: string,
  lastUser: string,
  messages: unknown[] | undefined,
  from = '',
): () => void {
  (stats.arrivalsFrom[from] ??= []).push(Date.now());
  const u = (stats.users[userid] ??= {
    calls: 0,
    inFlight: 0,
    overlaps: 0,
    arrivals: [],
    arrivedAt: [],
    lastSeq: -1,
    lastEndAt: null,
    minGapMs: null,
  });
  u.calls += 1;
  if (u.lastEndAt !== null) u.minGapMs = Math.min(u.minGapMs ?? Infinity, Date.now() - u.lastEndAt);
  u.arrivals.push(lastUser);
  u.arrivedAt.push(Date.now());
  if (messages) (u.messages ??= []).push(messages);
  if (u.inFlight > 0) {
    u.overlaps += 1;
    stats.overlaps += 1;
  }
  const seq = SEQ_MARK.exec(lastUser);
  if (seq) {
    const n = Number(seq[1]);
    if (n < u.lastSeq) stats.outOfOrder += 1;
    u.lastSeq = Math.max(u.lastSeq, n);
  }
  u.inFlight += 1;
  let ended = false;
  return () => {
    if (ended) return;
    ended = true;
    u.inFlight -= 1;
    u.lastEndAt = Date.now();
  };
}
