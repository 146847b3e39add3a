#!/usr/bin/env bash
# What `npm test` needs from the machine, installed when missing (Debian packages, as root) and started when down:
# a Redis on 127.0.0.1:6379 (or REDIS_URL), redis-server and redis-sentinel for the private servers some tests start,
# chromium for the dashboard's browser tests, iproute2 and iptables for the network-fault tests, prometheus (promtool)
# for the alert rules' tests.
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
