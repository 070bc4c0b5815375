#!/bin/sh
# periscope-hooks-shim v2
# Installed by `periscope install-hooks`; `periscope uninstall-hooks` restores
# the hook that was here before (kept as periscope-kept/<its name> beside this
# file, so that it still sees its own name in "$0").
# Links AI usage to commits.  It never fails the git command that ran it.
HOOK_NAME=__HOOK_NAME__
INSTALL_PYTHON=__INSTALL_PYTHON__
HERE=${0%/*}
KEPT="$HERE/periscope-kept/$HOOK_NAME"
[ -e "$KEPT" ] || KEPT="$HERE/$HOOK_NAME.periscope-legacy" # kept by a v1 shim
PY_RUN='import sys
try:
    from periscope_hooks.hook import run
except ImportError:
    sys.exit(3)
sys.exit(run(sys.argv[1:]))'

if [ "$HOOK_NAME" = post-rewrite ]; then
    # git passes the rewritten SHA pairs on stdin; both this hook and the kept one need them.
    PERISCOPE_STDIN=$(cat)
else
    PERISCOPE_STDIN=
fi

periscope_run() {
    if [ -x "$INSTALL_PYTHON" ]; then
        if [ "$HOOK_NAME" = post-rewrite ]; then
            printf '%s\n' "$PERISCOPE_STDIN" | "$INSTALL_PYTHON" -c "$PY_RUN" "$HOOK_NAME" "$@" >/dev/null 2>&1
        else
            "$INSTALL_PYTHON" -c "$PY_RUN" "$HOOK_NAME" "$@" </dev/null >/dev/null 2>&1
        fi
        [ $? -ne 3 ] && return 0
    fi
    if command -v periscope >/dev/null 2>&1; then
        printf '%s\n' "$PERISCOPE_STDIN" | periscope hook "$HOOK_NAME" "$@" >/dev/null 2>&1
        return 0
    fi
    # No Python with periscope-hooks: note it where `periscope status` looks, and move on.
    state=$(git rev-parse --git-common-dir 2>/dev/null)/periscope
    mkdir -p "$state" 2>/dev/null &&
        printf '%s hook %s: periscope-hooks not found (%s); the commit is unaffected\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$HOOK_NAME" "$INSTALL_PYTHON" >>"$state/hook.log" 2>/dev/null
    return 0
}

periscope_run "$@"

if [ -x "$KEPT" ]; then
    if [ "$HOOK_NAME" = post-rewrite ]; then
        printf '%s\n' "$PERISCOPE_STDIN" | "$KEPT" "$@"
    else
        "$KEPT" "$@"
    fi
    exit $?
fi
exit 0
