#!/usr/bin/env bash
# Runs every check and test of IMI Hub against the machine's real PostgreSQL
# and RabbitMQ (installing or starting them when missing or down).
set -euo pipefail
cd "$(dirname "$0")"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/imi-hub-target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

scripts/ensure-disk.sh
scripts/ensure-services.sh
# RabbitMQ with TLS on 5671 and a development CA (the TLS tests use it).
IMI_TLS_DIR="$(scripts/ensure-tls.sh)"
export IMI_TLS_DIR
scripts/clean-test-leftovers.sh
# The console's browser tests: Chromium, ChromeDriver and axe-core.
IMI_AXE_JS="$(scripts/ensure-browser.sh)"
export IMI_AXE_JS
# Where the browser tests leave their screenshots.
export IMI_SCREENSHOTS="${IMI_SCREENSHOTS:-$CARGO_TARGET_DIR/screenshots}"

echo "== cargo fmt --check"
cargo fmt --all --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== tests (parallel)"
# The broker-restart suite restarts the machine's RabbitMQ, so it runs alone, after the rest.
cargo test --workspace --no-fail-fast -- --skip broker_restart_
echo "== tests (broker restart, alone)"
cargo test -p imi-tests --test broker_restart -- --test-threads=1
echo "== chaos run (alone: it restarts RabbitMQ and PostgreSQL)"
# Built by the tests above (the suites spawn the hub binary); fails on any
# loss, duplicate, orphan row or illegal state.
cargo build -p imi-tests --bins
"$CARGO_TARGET_DIR/debug/imi-chaos" --secs "${IMI_CHAOS_SECS:-150}" --restart-services
echo "== screenshots of the console's browser tests: $IMI_SCREENSHOTS"
