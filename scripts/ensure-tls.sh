#!/usr/bin/env bash
# Development TLS: a CA of this machine, a certificate for the broker (and
# the console), and RabbitMQ listening with TLS on 127.0.0.1:5671, where a
# client may log in with a password or with a certificate signed by the CA
# (the EXTERNAL mechanism: the certificate's common name is the broker
# user). Idempotent: restarts RabbitMQ only when its TLS settings change.
# Prints the folder of the certificates.
#
#   $IMI_TLS_DIR (default ~/.cache/imi-hub-tls): ca.pem, ca.key, server.pem,
#   server.key. scripts/dev-client-cert.sh issues an endpoint's certificate.
#
# For development and tests only: in production the certificates come from
# the operator's PKI (docs/tls.md).
set -euo pipefail

log() { printf '[tls] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

command -v openssl >/dev/null 2>&1 || {
  log "installing openssl"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssl >/dev/null
}

dir="${IMI_TLS_DIR:-$HOME/.cache/imi-hub-tls}"
mkdir -p "$dir"
chmod 700 "$dir"
if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  log "creating a development CA in $dir"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/ca.key" 2>/dev/null
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 \
    -subj "/CN=IMI Hub development CA $(hostname)" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.pem" 2>/dev/null
  rm -f "$dir/server.pem"
fi
if [ ! -s "$dir/server.pem" ]; then
  log "issuing the broker's and the console's certificate (localhost, 127.0.0.1)"
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/server.key" 2>/dev/null
  openssl req -new -key "$dir/server.key" -subj "/CN=localhost" -out "$dir/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n' >"$dir/server.ext"
  openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
    -days 825 -sha256 -extfile "$dir/server.ext" -out "$dir/server.pem" 2>/dev/null
  rm -f "$dir/server.csr" "$dir/server.ext"
fi

# RabbitMQ reads its copies (its user must be able to read the key).
etc=/etc/rabbitmq/tls
as_root mkdir -p "$etc"
changed=0
for f in ca.pem server.pem server.key; do
  if ! as_root cmp -s "$dir/$f" "$etc/$f"; then
    as_root cp "$dir/$f" "$etc/$f"
    changed=1
  fi
done
if id rabbitmq >/dev/null 2>&1; then
  as_root chown -R rabbitmq:rabbitmq "$etc"
fi
as_root chmod 600 "$etc/server.key"

conf=/etc/rabbitmq/rabbitmq.conf
if ! grep -q '^listeners.ssl.default' "$conf" 2>/dev/null; then
  log "RabbitMQ: TLS on 127.0.0.1:5671, with passwords or client certificates (EXTERNAL)"
  as_root tee -a "$conf" >/dev/null <<CONF
# TLS for national systems (scripts/ensure-tls.sh): a client may present a
# certificate of the CA; its common name is its broker user (EXTERNAL).
listeners.ssl.default = 127.0.0.1:5671
ssl_options.cacertfile = $etc/ca.pem
ssl_options.certfile = $etc/server.pem
ssl_options.keyfile = $etc/server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = AMQPLAIN
auth_mechanisms.3 = EXTERNAL
ssl_cert_login_from = common_name
CONF
  changed=1
fi
if ! as_root rabbitmq-plugins list -e -m 2>/dev/null | grep -qx rabbitmq_auth_mechanism_ssl; then
  log "enabling the RabbitMQ EXTERNAL (certificate) login plugin"
  as_root rabbitmq-plugins enable rabbitmq_auth_mechanism_ssl >/dev/null
fi
listening() { (exec 3<>/dev/tcp/127.0.0.1/5671) 2>/dev/null; }
if [ "$changed" = 1 ] || ! listening; then
  log "restarting RabbitMQ for its TLS settings"
  as_root rabbitmqctl -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 60); do as_root rabbitmqctl -q status >/dev/null 2>&1 || break; sleep 1; done
  "$(dirname "$0")/ensure-services.sh" >/dev/null
  for _ in $(seq 1 60); do listening && break; sleep 1; done
  listening || { log "RabbitMQ does not listen on 5671"; exit 1; }
fi
echo "$dir"
