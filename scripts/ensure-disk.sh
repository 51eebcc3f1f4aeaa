#!/usr/bin/env bash
# Makes sure the build directory has room for a full test build. A linker
# that runs out of disk while writing a test binary dies with SIGBUS ("ld
# terminated with signal 7"), which reads like a toolchain bug; this turns it
# into a plain message, and first frees the space that old builds hold.
set -euo pipefail
target="${CARGO_TARGET_DIR:?CARGO_TARGET_DIR must be set}"
need_gib="${IMI_MIN_FREE_GIB:-6}"
mkdir -p "$target"
free_gib() { df -P -BG "$target" | awk 'NR==2 { sub("G", "", $4); print $4 }'; }
echo "[disk] $(free_gib) GiB free for $target ($(du -sh "$target" 2>/dev/null | cut -f1) used by it)"
if [ "$(free_gib)" -lt "$need_gib" ]; then
  echo "[disk] less than $need_gib GiB free: removing the old build in $target"
  rm -rf "${target:?}/debug" "${target:?}/release"
fi
if [ "$(free_gib)" -lt "$need_gib" ]; then
  echo "[disk] still less than $need_gib GiB free on $(df -P "$target" | awk 'NR==2 {print $6}'): free some space and run again" >&2
  exit 1
fi
