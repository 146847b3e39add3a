/**
 * A local OTLP/HTTP receiver in a process of its own (as a collector would be), for the traced runs of the benches:
 * prints its URL, and on SIGTERM what it received ({"spans", "traces"}), one JSON line each on stdout.
 */
import { startOtlpReceiver } from '../test/helpers/otlp-receiver.js';

const receiver = await startOtlpReceiver();
process.stdout.write(`${receiver.url}\n`);
process.once('SIGTERM', () => {
  const traces = new Set(receiver.spans.map((s) => s.traceId)).size;
  process.stdout.write(`${JSON.stringify({ spans: receiver.spans.length, traces })}\n`, () => process.exit(0));
});
