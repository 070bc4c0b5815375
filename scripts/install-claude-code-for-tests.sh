#!/bin/sh
# Install the real Claude Code (@anthropic-ai/claude-code@2.1.332) from the npm registry into a
# cache folder, reusing it when present, and print the binary's path (only that, on stdout).
set -eu
VERSION=2.1.332
CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/periscope-test/claude-code-$VERSION"
case "$(uname -m)" in
    x86_64|amd64) PLATFORM=linux-x64 ;;
    aarch64|arm64) PLATFORM=linux-arm64 ;;
    *) echo "unsupported machine $(uname -m)" >&2; exit 1 ;;
esac
BIN="$CACHE/node_modules/@anthropic-ai/claude-code-$PLATFORM/claude"
if [ ! -x "$BIN" ]; then
    mkdir -p "$CACHE"
    # The native binary is an optional dependency (a platform package); the postinstall only
    # copies it over bin/claude.exe, so it is skipped and the platform package's binary is used.
    npm install --prefix "$CACHE" --no-audit --no-fund --ignore-scripts "@anthropic-ai/claude-code@$VERSION" >&2
fi
DISABLE_AUTOUPDATER=1 "$BIN" --version >&2
echo "$BIN"
