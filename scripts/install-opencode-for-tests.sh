#!/bin/sh
# Install the real OpenCode (opencode-ai@1.18.33) from the npm registry into a cache folder,
# reusing it when present, and print the binary's path (only that, on stdout).
set -eu
VERSION=1.18.33
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/periscope-test/opencode-$VERSION"
case "$(uname -m)" in
    x86_64|amd64) PLATFORM=linux-x64 ;;
    aarch64|arm64) PLATFORM=linux-arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
BIN="$CACHE/node_modules/opencode-$PLATFORM/bin/opencode"
if [ ! -x "$BIN" ]; then
    mkdir -p "$CACHE"
    # The platform binary is an optional dependency of opencode-ai; its postinstall is not needed.
    npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts "opencode-ai@$VERSION" >&2
fi
"$BIN" --version >&2
echo "$BIN"
