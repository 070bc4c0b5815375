#!/bin/sh
# The repository's checks as a commit runs them (.pre-commit-config.yaml: ruff lint, ruff
# format, strict mypy), over every file.  .ci/run runs this before the tests; non-zero on any
# finding.  Extra arguments go to `pre-commit run` (e.g. a hook id: `sh scripts/lint.sh mypy`).
set -eu
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check 'pre-commit>=3.2'
exec .venv/bin/pre-commit run --all-files --show-diff-on-failure "$@"
