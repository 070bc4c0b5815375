#!/bin/sh
# Install periscope-hooks for this user and switch on capture + linking for one repository.
#   sh scripts/install.sh [REPO]      (REPO defaults to the current directory)
# Events go to the local store (no account needed); `periscope report` shows them.
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
REPO=${1:-$PWD}
DATA="${XDG_DATA_HOME:-$HOME/.local/share}/periscope"
VENV="$DATA/venv"
PYTHON=${PYTHON:-python3}
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --upgrade "$SRC"
mkdir -p "$HOME/.local/bin"
ln -sf "$VENV/bin/periscope" "$HOME/.local/bin/periscope"
"$VENV/bin/periscope" install-hooks --repo "$REPO"
"$VENV/bin/periscope" install-opencode --repo "$REPO" || echo "note: OpenCode plugin not installed (see above)"
"$VENV/bin/periscope" status --repo "$REPO"
case ":$PATH:" in
  *":$HOME/.local/bin:"*) ;;
  *) echo "note: add $HOME/.local/bin to PATH to run 'periscope' directly" ;;
esac
