#!/usr/bin/env bash
# Runs IMI Hub with a demo: two authorities in two countries exchange
# diploma-verification requests through the hub, and you watch them flow.
# Installs or starts PostgreSQL and RabbitMQ when missing or down.
#   ROUNDS=3 ./run-demo.sh      stop after three requests (default: until Ctrl-C)
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imi-hub-target}"
export IMI_HTTP_LISTEN="${IMI_HTTP_LISTEN:-127.0.0.1:8080}"

scripts/ensure-services.sh
# TLS on 5671 with a development CA; the demo's German system logs in with a
# client certificate (docs/tls.md).
tls="$(scripts/ensure-tls.sh)"
[ -s "$tls/clients/de-aekno-gw.p12" ] || scripts/dev-client-cert.sh de-aekno-gw "$tls/clients" imi-dev >/dev/null
psql -h 127.0.0.1 -U postgres -d postgres -Atqc "select 1 from pg_database where datname = 'imi'" | grep -q 1 ||
  psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE imi"

cargo build --bins -p imi-hub -p imi-adapters
bin="$CARGO_TARGET_DIR/debug"

mkdir -p .imi-demo
"$bin/imi-hub" run --config config/hub.toml > .imi-demo/hub.log 2>&1 &
hub=$!
trap 'kill $hub 2>/dev/null; wait $hub 2>/dev/null; echo "hub stopped (log: .imi-demo/hub.log)"' EXIT
for _ in $(seq 1 120); do
  curl -sf "http://$IMI_HTTP_LISTEN/readyz" >/dev/null && break
  kill -0 $hub 2>/dev/null || { cat .imi-demo/hub.log; exit 1; }
  sleep 0.5
done
echo "IMI Hub is up: health http://$IMI_HTTP_LISTEN/readyz, metrics http://$IMI_HTTP_LISTEN/metrics, broker UI http://127.0.0.1:15672 (vhost imi)"
# A console login for this demo: a fresh operator with a password of its own.
login="demo-operator-$(date +%s)"
password="demo-$(head -c 9 /dev/urandom | base64 | tr -d '/+=')"
token=$(echo "$password" | "$bin/imi-hub" account create --config config/hub.toml --name "$login" --role operator --password-stdin 2>/dev/null)
echo
echo "── the console: http://$IMI_HTTP_LISTEN/console   login: $login   password: $password"
echo "   (it shows the demo's traffic live while this runs)"
echo
echo "── searching the registry for 'arztekammer' (no umlaut) through the HTTP API:"
"$bin/imi-adapter" search --hub "http://$IMI_HTTP_LISTEN" --token "$token" arztekammer --lang fr
echo "   (an operator token for your own calls: $token)"
"$bin/imi-adapter" demo --rounds "${ROUNDS:-0}" \
  --amqp-url amqps://127.0.0.1:5671 --ca-file "$tls/ca.pem" \
  --responder-cert "$tls/clients/de-aekno-gw.p12" --responder-cert-password imi-dev
echo
curl -s "http://$IMI_HTTP_LISTEN/metrics" | grep -E '^imi_ingress_messages_total|^imi_rejections_total' || true
