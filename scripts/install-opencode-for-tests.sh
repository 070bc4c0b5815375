#!/bin/sh
# Install the real OpenCode (opencode-ai@1.18.33) from the npm registry into a cache folder,
# reusing it when present, and print the binary's path (only that, on stdout).
set -eu
VERSION=1.18.33
exec sh "$(dirname "$0")/npm-cached.sh" "opencode-$VERSION" "opencode-ai@$VERSION" \
    "node_modules/opencode-@PLATFORM@/bin/opencode"
