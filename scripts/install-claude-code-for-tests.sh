#!/bin/sh
# Install the real Claude Code (@anthropic-ai/claude-code@2.1.332) from the npm registry into a
# cache folder, reusing it when present, and print the binary's path (only that, on stdout).
# The native binary is the platform package's (the skipped postinstall only copies it over
# bin/claude.exe).
set -eu
VERSION=2.1.332
export DISABLE_AUTOUPDATER=1
exec sh "$(dirname "$0")/npm-cached.sh" "claude-code-$VERSION" "@anthropic-ai/claude-code@$VERSION" \
    "node_modules/@anthropic-ai/claude-code-@PLATFORM@/claude"
