import { startSimulator } from '../simulator/simulator-server.js';
import { simulatorOptionsSchema } from '../simulator/simulator-options.js';
import { untilSignal } from './until-signal.js';
import { EXIT, listening, parsePort, UsageError } from './cli-context.js';

export interface SimulatorFlags {
  port?: string;
  host?: string;
  latencyMs?: string;
  jitterMs?: string;
  rpm?: string;
  tpm?: string;
  apiKey?: string;
  fail5xx?: string;
  fail429?: string;
  failTimeout?: string;
  failDrop?: string;
  failMalformed?: string;
}

const num = (v: string | undefined) => (v === undefined ? undefined : Number(v));

/** `chatq simulator`: the local memory-chat endpoint, until SIGTERM/SIGINT. */
export async function simulatorCommand(flags: SimulatorFlags): Promise<number> {
  const parsed = simulatorOptionsSchema.safeParse({
    latencyMs: num(flags.latencyMs),
    jitterMs: num(flags.jitterMs),
    rpm: num(flags.rpm),
    tpm: num(flags.tpm),
    apiKey: flags.apiKey,
    faults: {
      error5xx: num(flags.fail5xx),
      rateLimit429: num(flags.fail429),
      timeout: num(flags.failTimeout),
      drop: num(flags.failDrop),
      malformed: num(flags.failMalformed),
    },
  });
  if (!parsed.success)
    throw new UsageError(
      `simulator: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`,
    );
  const port = parsePort(flags.port ?? '4010');
  const sim = await listening(port, () => startSimulator(parsed.data, port, flags.host ?? '127.0.0.1'));
  process.stdout.write(
    `simulator listening at ${sim.url} (stats: GET http://${flags.host ?? '127.0.0.1'}:${sim.port}/_sim/stats)\n`,
  );
  await untilSignal();
  await sim.close();
  return EXIT.ok;
}
