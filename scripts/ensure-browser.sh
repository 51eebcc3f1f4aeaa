#!/usr/bin/env bash
# Makes sure the console's browser tests have what they drive: Debian's
# Chromium and ChromeDriver (installed when missing), and axe-core from npm
# (the accessibility checker the tests run on each page), kept in a cache
# folder outside the clone. Prints that folder's axe.min.js path last.
set -euo pipefail

log() { printf '[browser] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

cache="${IMI_BROWSER_CACHE:-$HOME/.cache/imi-hub-browser}"
axe="$cache/node_modules/axe-core/axe.min.js"
if [ ! -f "$axe" ]; then
  log "installing axe-core into $cache"
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-audit --no-fund --silent axe-core@4 >/dev/null)
fi
echo "$axe"
