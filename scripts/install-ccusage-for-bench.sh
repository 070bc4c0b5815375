#!/bin/sh
# Install ccusage (pinned; default 20.0.24, the native release) from the npm registry into a cache
# folder, reusing it when present, and print the binary's path (only that, on stdout).  For
# bench/ccusage_compare.py only: no test uses it.  18.0.11 is the last JavaScript release that
# runs on Node 20 (19.x needs Node 22 or Bun).  From 20.x the binary is a per-platform optional
# dependency; no install script is needed.
set -eu
VERSION=${1:-20.0.24}
exec sh "$(dirname "$0")/npm-cached.sh" "ccusage-$VERSION" "ccusage@$VERSION" "node_modules/.bin/ccusage"
