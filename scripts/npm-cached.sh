#!/bin/sh
# Install one npm package into a cache folder, reusing it when present, and print the path of its
# binary (only that, on stdout).  The installers of the real programs the tests and benchmarks run
# (scripts/install-*-for-*.sh) are one call of this each.
#   sh scripts/npm-cached.sh CACHE_NAME PACKAGE@VERSION BIN [VERSION_ARGS...]
# BIN is relative to the cache folder; "@PLATFORM@" in it becomes linux-x64 or linux-arm64 (the
# agents ship their native binary as a per-platform optional dependency).  --ignore-scripts: no
# postinstall is needed (they only copy that binary elsewhere), and none runs on the test machine.
set -eu
NAME=$1 SPEC=$2 BIN=$3
shift 3
case "$(uname -m)" in
    x86_64|amd64) PLATFORM=linux-x64 ;;
    aarch64|arm64) PLATFORM=linux-arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/periscope-test/$NAME"
BIN="$CACHE/$(printf '%s' "$BIN" | sed "s/@PLATFORM@/$PLATFORM/g")"
if [ ! -x "$BIN" ]; then
    mkdir -p "$CACHE"
    npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts "$SPEC" >&2
fi
[ $# -gt 0 ] || set -- --version
"$BIN" "$@" >&2
echo "$BIN"
