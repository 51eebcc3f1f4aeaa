#!/usr/bin/env bash
# Removes databases, vhosts and broker users that an interrupted test or
# benchmark run left behind (each test removes its own when it finishes).
# (rabbitmqctl reads standard input, so each call inside a loop gets /dev/null.)
set -uo pipefail
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
psql -h 127.0.0.1 -U postgres -d postgres -Atqc \
  "select datname from pg_database where datname like 'imi\_test\_%'" 2>/dev/null |
  while read -r db; do psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null </dev/null; done
as_root rabbitmqctl -q list_vhosts 2>/dev/null | grep '^imi-test-' |
  while read -r v; do as_root rabbitmqctl -q delete_vhost "$v" >/dev/null </dev/null; done
as_root rabbitmqctl -q list_users 2>/dev/null | awk '{print $1}' | grep -E '^[a-z0-9]+-[0-9a-f]{10}$' |
  while read -r u; do as_root rabbitmqctl -q delete_user "$u" >/dev/null </dev/null; done
exit 0
