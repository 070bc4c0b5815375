#!/bin/sh
# Set up everything the tests need (a venv, the test dependencies, the real OpenCode and Claude
# Code binaries from the npm registry) and run the whole suite.  Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
# compat mode: a plain .pth path entry; the default editable finder costs every hook ~20 ms of start-up
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]' --config-settings editable_mode=compat
if [ -f scripts/install-opencode-for-tests.sh ]; then
    PERISCOPE_TEST_OPENCODE=$(sh scripts/install-opencode-for-tests.sh)
    export PERISCOPE_TEST_OPENCODE
fi
if [ -f scripts/install-claude-code-for-tests.sh ]; then
    PERISCOPE_TEST_CLAUDE_CODE=$(sh scripts/install-claude-code-for-tests.sh)
    export PERISCOPE_TEST_CLAUDE_CODE
fi
# git 2.47 built from Debian's source package (reftable): the hook and plugin tests run on both
# gits (tests/test_any_git.py); with CI set they fail, never skip, when this build is missing.
PERISCOPE_TEST_GIT=$(sh scripts/install-git-for-tests.sh) || echo "warning: could not build git for the tests" >&2
export PERISCOPE_TEST_GIT
# Debian's chromium for the dashboard's headless browser tests (tests/test_dashboard_browser.py)
PERISCOPE_TEST_CHROMIUM=$(sh scripts/install-chromium-for-tests.sh)
export PERISCOPE_TEST_CHROMIUM
# -n auto: pytest-xdist, one worker per core (add -n 0 to run serially)
exec .venv/bin/python -m pytest -n auto "$@"
