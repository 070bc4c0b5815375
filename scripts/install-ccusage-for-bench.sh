#!/bin/sh
# Install ccusage (pinned; default 20.0.24, the native release) from the npm registry into a cache
# folder, reusing it when present, and print the binary's path (only that, on stdout).  For
# bench/ccusage_compare.py only: no test uses it.  18.0.11 is the last JavaScript release that
# runs on Node 20 (19.x needs Node 22 or Bun).
set -eu
VERSION=${1:-20.0.24}
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/periscope-test/ccusage-$VERSION"
BIN="$CACHE/node_modules/.bin/ccusage"
if [ ! -x "$BIN" ]; then
    mkdir -p "$CACHE"
    # From 20.x the binary is a per-platform optional dependency; no install script is needed.
    npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts "ccusage@$VERSION" >&2
fi
"$BIN" --version >&2
echo "$BIN"
