#!/usr/bin/env bash
# Makes sure PostgreSQL and RabbitMQ (with its management plugin) are installed
# and running on this machine. Installs Debian packages when missing, starts
# services when down. Idempotent: does nothing when all is well.
set -euo pipefail

log() { printf '[services] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v pg_ctlcluster >/dev/null 2>&1 || missing+=(postgresql postgresql-contrib)
command -v rabbitmq-server >/dev/null 2>&1 || missing+=(rabbitmq-server)
command -v curl >/dev/null 2>&1 || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL ---------------------------------------------------------------
pg_up() { pg_isready -h 127.0.0.1 -p 5432 -q; }
if ! pg_up; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  log "starting PostgreSQL $version"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 60); do pg_up && break; sleep 0.5; done
  pg_up || { log "PostgreSQL did not start"; exit 1; }
fi
# The hub and the tests connect as postgres over TCP without a password (as on
# the development and CI machines). A fresh Debian install asks for one:
# allow local TCP connections on loopback, once.
if ! psql -h 127.0.0.1 -U postgres -d postgres -Atqc 'select 1' >/dev/null 2>&1; then
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  hba=/etc/postgresql/$version/main/pg_hba.conf
  log "allowing trusted loopback connections in $hba (development machine)"
  as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  sleep 1
fi

# RabbitMQ -----------------------------------------------------------------
rabbit_up() { as_root rabbitmqctl -q status >/dev/null 2>&1; }
# Many queues need many file handles; a shell's default 1024 makes the
# broker collapse under load.
start_rabbit_with_many_files() {
  if id rabbitmq >/dev/null 2>&1 && [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then
    # Debian's wrapper switches to the rabbitmq user through su, whose PAM
    # limits reset the soft limit to 1024: raise it as that user instead.
    as_root su rabbitmq -s /bin/sh -c 'ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"; cd /var/lib/rabbitmq && exec /usr/lib/rabbitmq/bin/rabbitmq-server -detached' \
      >/dev/null 2>&1
  else
    (ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true; as_root rabbitmq-server -detached)
  fi
  as_root rabbitmqctl -q await_startup --timeout 120 >/dev/null 2>&1 || true
  for _ in $(seq 1 120); do rabbit_up && break; sleep 1; done
  rabbit_up || { log "RabbitMQ did not start"; exit 1; }
}
if ! rabbit_up; then
  log "starting RabbitMQ"
  start_rabbit_with_many_files
fi
# A broker started elsewhere with a shell's 1024 open files collapses with
# many queues (the fan-out benchmark declares 1,000): restart it with more.
beam=$(pgrep -f 'beam.*rabbit' | head -n 1 || true)
fd_limit=$( [ -n "$beam" ] && awk '/Max open files/ {print $4}' "/proc/$beam/limits" 2>/dev/null || true)
if [ -n "$fd_limit" ] && [ "$fd_limit" -lt 4000 ]; then
  log "RabbitMQ runs with $fd_limit file handles; restarting it with more"
  as_root rabbitmqctl -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do rabbit_up || break; sleep 1; done
  start_rabbit_with_many_files
fi
if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_management; then
  log "enabling the RabbitMQ management plugin"
  as_root rabbitmq-plugins enable rabbitmq_management >/dev/null
fi
for _ in $(seq 1 60); do
  curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null && break
  sleep 1
done
curl -sf -u guest:guest http://127.0.0.1:15672/api/overview >/dev/null || { log "RabbitMQ management API not reachable"; exit 1; }
# The largest message the broker takes is a setting of the node (RabbitMQ
# has none per vhost or queue): 16 MiB, far above the hub's 256 KiB body
# limit (a larger body still gets a clear `oversized_body`), so that a
# runaway adapter cannot make the broker and the hub hold 100 MB messages.
# Kept in rabbitmq.conf for the next start, and applied now to new channels.
max_message_size=16777216
conf=/etc/rabbitmq/rabbitmq.conf
if ! grep -q '^max_message_size' "$conf" 2>/dev/null; then
  log "limiting RabbitMQ messages to 16 MiB ($conf)"
  echo "max_message_size = $max_message_size" | as_root tee -a "$conf" >/dev/null || true
fi
as_root rabbitmqctl -q eval "application:set_env(rabbit, max_message_size, $max_message_size)." >/dev/null 2>&1 ||
  log "could not set RabbitMQ's max_message_size now; it applies from its next start"
log "PostgreSQL and RabbitMQ are up"
