#!/bin/sh
# Print the path of a Chromium the dashboard's browser tests can drive (Playwright, through
# executable_path: Playwright's own browser download does not work here).  Installs Debian's
# `chromium` package when it is missing and we may (root with apt-get); prints nothing otherwise,
# and the browser tests then fail under CI (skip outside it).
set -eu
if [ -n "${PERISCOPE_TEST_CHROMIUM:-}" ] && [ -x "$PERISCOPE_TEST_CHROMIUM" ]; then
    echo "$PERISCOPE_TEST_CHROMIUM"; exit 0
fi
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; } >&2 || true
fi
command -v chromium || true
