#!/usr/bin/env bash
# Issues a development client certificate for an endpoint, signed by the CA
# of scripts/ensure-tls.sh: its common name is the endpoint id (its broker
# user), so the endpoint logs in with it instead of a password (EXTERNAL).
#
#   scripts/dev-client-cert.sh <endpoint-id> [out-dir] [password]
#
# Writes <out-dir>/<endpoint-id>.p12 (certificate and key, PKCS#12, the form
# the SDK and imi-adapter read) and prints its path. For development and
# tests only: in production the operator's PKI issues them (docs/tls.md).
set -euo pipefail
endpoint="${1:?usage: dev-client-cert.sh <endpoint-id> [out-dir] [password]}"
dir="${IMI_TLS_DIR:-$HOME/.cache/imi-hub-tls}"
out="${2:-$dir/clients}"
password="${3:-imi-dev}"
[ -s "$dir/ca.key" ] || { echo "no development CA in $dir: run scripts/ensure-tls.sh" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$work/key.pem" 2>/dev/null
openssl req -new -key "$work/key.pem" -subj "/CN=$endpoint" -out "$work/csr.pem" 2>/dev/null
printf 'extendedKeyUsage=clientAuth\nbasicConstraints=CA:FALSE\n' >"$work/ext"
openssl x509 -req -in "$work/csr.pem" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 365 -sha256 -extfile "$work/ext" -out "$work/cert.pem" 2>/dev/null
openssl pkcs12 -export -inkey "$work/key.pem" -in "$work/cert.pem" -certfile "$dir/ca.pem" \
  -name "$endpoint" -passout "pass:$password" -out "$out/$endpoint.p12"
chmod 600 "$out/$endpoint.p12"
echo "$out/$endpoint.p12"
