import { Client, request } from 'undici';
import { readBounded } from './http-transport.js';

const CONNECTION_OPTIONS = { keepAliveTimeout: 30_000, keepAliveMaxTimeout: 600_000 } as const;

/** What a call answered: its status, headers and body (read whole, bounded: readBounded). */
export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  bytes: Buffer;
}

type CallOptions = Omit<Parameters<typeof request>[1] & object, 'dispatcher'>;

/**
 * The upstream's keep-alive connections, one call on each at a time, `most` at the most: a call takes the connection
 * freed last, or opens one. Taking and giving back are O(1): undici's Pool looks for a free connection from the start
 * of its list on every call (at 2,000 in flight, up to 2,000 checks a call, 2-3 % of the worker's CPU). Past `most`
 * calls at once (none: the worker's call slots bound them), a call waits in turn on a busy connection.
 */
export class UpstreamConnections {
  private readonly idle: Client[] = [];
  private readonly all: Client[] = [];
  /** Calls on each connection now. */
  private readonly calls = new Map<Client, number>();
  private turn = 0;

  constructor(
    private readonly origin: string,
    private readonly most: number,
  ) {}

  /** Connections opened so far. */
  get opened(): number {
    return this.all.length;
  }

  /** One call to `url` (on this origin) on a connection of its own while it lasts. */
  async call(url: string, options: CallOptions): Promise<Answer> {
    const connection = this.take();
    try {
      const res = await request(url, { ...options, dispatcher: connection });
      return { status: res.statusCode, headers: res.headers, bytes: await readBounded(res.body) };
    } finally {
      this.give(connection);
    }
  }

  private take(): Client {
    const client = this.idle.pop() ?? this.open() ?? this.all[this.turn++ % this.all.length]!;
    this.calls.set(client, (this.calls.get(client) ?? 0) + 1);
    return client;
  }

  /** Its call has ended (answered, failed or aborted: undici opens the connection again for the next call). */
  private give(client: Client): void {
    const calls = this.calls.get(client)! - 1;
    this.calls.set(client, calls);
    if (calls === 0) this.idle.push(client);
  }

  private open(): Client | undefined {
    if (this.all.length >= this.most) return undefined;
    const client = new Client(this.origin, CONNECTION_OPTIONS);
    this.all.push(client);
    return client;
  }
}
