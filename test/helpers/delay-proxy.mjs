// A TCP proxy that holds every chunk DELAY_MS in each direction (a slow link: the kernel here has no netem), in a
// process of its own so that its timers do not share an event loop with what it measures.
//   node delay-proxy.mjs LISTEN_HOST TARGET_HOST TARGET_PORT DELAY_MS   (prints the port it listens on)
import { connect, createServer } from 'node:net';

const [listenHost, targetHost, targetPort, delayMs] = process.argv.slice(2);
const ms = Number(delayMs);

function delayed(from, to) {
  // Equal delays fire in the order they were set: the stream's bytes keep their order.
  const pass = (chunk) =>
    ms > 0 ? setTimeout(() => to.writable && to.write(chunk), ms) : to.writable && to.write(chunk);
  from.on('data', pass);
  from.on('end', () => setTimeout(() => to.end(), ms));
}

const server = createServer((client) => {
  const upstream = connect(Number(targetPort), targetHost);
  for (const s of [client, upstream]) {
    s.setNoDelay(true);
    s.on('error', () => {
      client.destroy();
      upstream.destroy();
    });
  }
  delayed(client, upstream);
  delayed(upstream, client);
});
server.listen(0, listenHost, () => process.stdout.write(`${server.address().port}\n`));
