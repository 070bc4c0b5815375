#!/bin/sh
# periscope-hooks-shim v2
# Installed by `periscope install-hooks`; `periscope uninstall-hooks` restores
# the hook that was here before (kept as periscope-kept/<its name> beside this
# file, so that it still sees its own name in "$0").
# Links AI usage to commits.  It never fails the git command that ran it.
ps_hook_name=__HOOK_NAME__
INSTALL_PYTHON=__INSTALL_PYTHON__
ps_here=${0%/*}
ps_kept="$ps_here/periscope-kept/$ps_hook_name"
[ -e "$ps_kept" ] || ps_kept="$ps_here/$ps_hook_name.periscope-legacy" # kept by a v1 shim
# Redirections apply left to right: `2>/dev/null` goes before the `<file` or `>>file` it must
# silence (a file that cannot be opened made sh print on the user's terminal: no /proc, an
# unwritable hook.log).

# A rebase replaying commits runs post-commit once per commit: recognised here, before the rest
# of this file is even parsed, and no process starts (ingest gives replays no usage: post-rewrite
# moves it at the end).  A rebase is in progress, and the git that runs this hook (our parent)
# is `git rebase` itself, which commits only replays (a commit made at a stop runs `git commit`).
ps_git_rebases() { # 0: the git running this hook (our parent, or the nearest git above it) runs `rebase`
    IFS= read -r ps_cmd 2>/dev/null </proc/$PPID/cmdline # sh drops the NULs between arguments
    case $ps_cmd in
    gitrebase* | */gitrebase*) return 0 ;;
    git[a-z]* | */git[a-z]*) return 1 ;; # `git commit`, say: a commit made at a stop
    esac
    # git's own options first (`git -c k=v rebase`: editors and tools run that), or a hook
    # dispatcher between git and us: each command line read with its arguments apart (tr, one
    # process a level), from our parent up to the nearest git, as hook.git_command_of reads it.
    ps_pid=$PPID ps_depth=0 ps_ifs0=$IFS ps_nl0='
'
    while [ "$ps_depth" -lt 8 ] && [ "$ps_pid" -gt 1 ]; do
        ps_args=$(tr '\0' '\n' 2>/dev/null <"/proc/$ps_pid/cmdline") || return 1
        set -f
        IFS=$ps_nl0
        set -- $ps_args
        IFS=$ps_ifs0
        set +f
        if [ "${1##*/}" = git ]; then
            shift
            while [ $# -gt 0 ]; do
                case $1 in
                -c | -C | --git-dir | --work-tree | --namespace | --config-env | --super-prefix | --attr-source) shift ;;
                -*) ;;
                rebase*) return 0 ;;
                *) return 1 ;;
                esac
                [ $# -gt 0 ] && shift
            done
            return 1
        fi
        IFS= read -r ps_stat 2>/dev/null <"/proc/$ps_pid/stat" || return 1
        set -- ${ps_stat##*) } # state, ppid, ... (after the command's name, which may hold anything)
        ps_pid=${2:-1}
        ps_depth=$((ps_depth + 1))
    done
    return 1
}
if [ "$ps_hook_name" = post-commit ] && [ "${PERISCOPE_SH_HOOK:-1}" != 0 ]; then
    ps_gd=${GIT_DIR:-.git}
    if [ -f "$ps_gd" ] && read -r ps_line 2>/dev/null <"$ps_gd"; then
        ps_gd=${ps_line#gitdir: } # a linked worktree or submodule (relative to this top directory)
    fi
    if { [ -d "$ps_gd/rebase-merge" ] || [ -d "$ps_gd/rebase-apply" ]; } && ps_git_rebases 2>/dev/null; then
        [ -x "$ps_kept" ] && exec "$ps_kept" "$@"
        exit 0
    fi
fi
# The detached flusher, as hook.spawn_background_flush starts it: its own session, no terminal,
# no pipes (nor any other descriptor git's caller gave it: one held open would make a caller that
# waits for its end wait for the flush; above 9, which sh cannot name, the flusher closes them),
# git's repository variables dropped; it waits 0.2 s so that git finishes first.
# $1: the state folder.  Forks once here; everything else happens in the background.
ps_spawn_flush() {
    (
        trap '' HUP
        sleep 0.2
        if [ "$ps_reftable" = 1 ]; then ps_reftable_switch || exit 0; fi
        for ps_v in $(env | sed -n 's/^\(GIT_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$ps_v"; done
        ps_setsid=
        command -v setsid >/dev/null 2>&1 && ps_setsid=setsid
        [ -x "$INSTALL_PYTHON" ] && exec $ps_setsid "$INSTALL_PYTHON" -c __MAIN_CODE__ _background-flush "$1"
        exec $ps_setsid periscope _background-flush "$1"
    ) </dev/null >/dev/null 2>&1 3>&- 4>&- 5>&- 6>&- 7>&- 8>&- 9>&- &
}
ps_reftable=

# --- post-checkout: a switch to the default branch starts the flusher, which reconciles ---------
# `git fetch` runs no hook, so a squash or rebase merge it brought in is followed when you switch
# to the default branch (`git switch main` after the forge merged the pull request).  Builtins only
# in the foreground: the one fork is the detached flusher's.  Nothing for a file checkout (flag 0),
# the first checkout of `git clone` or `git worktree add` (old HEAD all zeros), a rebase's
# checkouts (our parent is `git rebase`, its state folder exists, or HEAD is detached), a repository
# periscope never recorded in (no spool), or any other branch.  The default branch: the one
# refs/remotes/origin/HEAD names, else the first other remote's HEAD, else main or master
# (what reconcile.read_refs takes as upstream; docs/design.md).  PERISCOPE_SH_HOOK=0: Python decides.
ps_checkout_switch() { # $1 old HEAD, $2 new HEAD, $3 flag -> 0: start the flusher (ps_sd is set)
    [ "$3" = 1 ] || return 1
    case $1 in *[!0]*) ;; *) return 1 ;; esac
    ps_git_rebases && return 1
    ps_gd=${GIT_DIR:-.git}
    if [ -f "$ps_gd" ]; then
        read -r ps_line <"$ps_gd" || return 1
        case $ps_line in "gitdir: "*) ps_gd=${ps_line#gitdir: } ;; *) return 1 ;; esac
    fi
    [ ! -d "$ps_gd/rebase-merge" ] && [ ! -d "$ps_gd/rebase-apply" ] || return 1
    ps_cd=$ps_gd
    if [ -f "$ps_gd/commondir" ]; then
        read -r ps_line <"$ps_gd/commondir" || return 1
        case $ps_line in /*) ps_cd=$ps_line ;; *) ps_cd=$ps_gd/$ps_line ;; esac
    fi
    [ -f "$ps_cd/periscope/spool.jsonl" ] || return 1
    ps_sd=$ps_cd/periscope
    case $ps_sd in /*) ;; *) ps_sd=$PWD/$ps_sd ;; esac
    read -r ps_line <"$ps_gd/HEAD" || return 1
    case $ps_line in "ref: refs/heads/"*) ps_branch=${ps_line#ref: refs/heads/} ;; *) return 1 ;; esac
    if [ "$ps_branch" = .invalid ]; then # reftable: git knows; asked in the background
        ps_reftable=1
        return 0
    fi
    ps_def=
    for ps_f in "$ps_cd/refs/remotes/origin/HEAD" "$ps_cd"/refs/remotes/*/HEAD; do
        [ -f "$ps_f" ] && read -r ps_line <"$ps_f" || continue
        case $ps_line in "ref: refs/remotes/"*/?*)
            ps_def=${ps_line#ref: refs/remotes/*/}
            break
            ;;
        esac
    done
    case $ps_def in
    '') [ "$ps_branch" = main ] || [ "$ps_branch" = master ] ;;
    *) [ "$ps_branch" = "$ps_def" ] ;;
    esac
}

ps_reftable_switch() { # the same test, asking git (in the background: about 2 ms a process)
    ps_branch=$(git symbolic-ref -q --short HEAD) || return 1
    ps_def=$(git symbolic-ref -q --short refs/remotes/origin/HEAD) && ps_def=${ps_def#*/}
    case $ps_def in
    '') [ "$ps_branch" = main ] || [ "$ps_branch" = master ] ;;
    *) [ "$ps_branch" = "$ps_def" ] ;;
    esac
}

if [ "$ps_hook_name" = post-checkout ] && [ "${PERISCOPE_SH_HOOK:-1}" != 0 ]; then
    if [ "${PERISCOPE_BACKGROUND:-1}" != 0 ] && ps_checkout_switch "$@" 2>/dev/null; then
        ps_spawn_flush "$ps_sd"
    fi
    [ -x "$ps_kept" ] && exec "$ps_kept" "$@"
    exit 0
fi
# First, sys.path without the current folder (the work tree): a json.py or periscope_hooks/ there
# must not be imported in our place (hook.NO_CWD_IMPORTS, written in at install).
ps_py_run='__NO_CWD_IMPORTS__
try:
    from periscope_hooks.hook import run
except ImportError:
    sys.exit(3)
sys.exit(run(sys.argv[1:]))'

if [ "$ps_hook_name" = post-rewrite ]; then
    # git passes the rewritten SHA pairs on stdin; both this hook and the kept one need them.
    ps_stdin=$(cat 2>/dev/null)
else
    ps_stdin=
fi

periscope_run() {
    if [ -x "$INSTALL_PYTHON" ]; then
        if [ "$ps_hook_name" = post-rewrite ]; then
            printf '%s\n' "$ps_stdin" | "$INSTALL_PYTHON" -c "$ps_py_run" "$ps_hook_name" "$@" >/dev/null 2>&1
        else
            "$INSTALL_PYTHON" -c "$ps_py_run" "$ps_hook_name" "$@" </dev/null >/dev/null 2>&1
        fi
        [ $? -ne 3 ] && return 0
    fi
    if command -v periscope >/dev/null 2>&1; then
        printf '%s\n' "$ps_stdin" | periscope hook "$ps_hook_name" "$@" >/dev/null 2>&1
        return 0
    fi
    # No Python with periscope-hooks: note it where `periscope status` looks, and move on.
    ps_state=$(git rev-parse --git-common-dir 2>/dev/null)/periscope
    mkdir -p -m 700 "$ps_state" 2>/dev/null &&
        printf '%s hook %s: periscope-hooks not found (%s); the commit is unaffected\n' \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$ps_hook_name" "$INSTALL_PYTHON" 2>/dev/null >>"$ps_state/hook.log"
    return 0
}

# --- post-commit in sh: the record periscope_hooks.hook writes, without starting Python --------
# A Python start costs ~15 ms per commit; this path ~2-3 ms (one small process: tail).
# It handles the common case only and returns 1 for anything else (reftable, packed or symbolic
# refs, GIT_WORK_TREE, a Claude Code command, no spool yet, a string that JSON would have to escape beyond \" and \\),
# which then goes to Python: the record is the same either way (tests/test_sh_hook.py).
# PERISCOPE_SH_HOOK=0 always uses Python.  All variables start with ps_ (sh has no locals; a kept
# hook sees the environment it was given), but INSTALL_PYTHON, the line status reads back.

ps_nl='
'
ps_tab='	'

ps_str() { # $1 -> ps_json: a JSON string, or return 1 if sh cannot write it as Python would
    case $1 in
    *[!\ -~]*) return 1 ;; # controls, DEL, non-ASCII: Python writes \u escapes
    *[\"\\]*)
        ps_s=$1 ps_json=
        while :; do
            case $ps_s in
            *[\"\\]*)
                ps_pre=${ps_s%%[\"\\]*}
                ps_s=${ps_s#"$ps_pre"}
                ps_rest=${ps_s#?}
                ps_json=$ps_json$ps_pre\\${ps_s%"$ps_rest"}
                ps_s=$ps_rest
                ;;
            *)
                ps_json=$ps_json$ps_s
                break
                ;;
            esac
        done
        ps_json="\"$ps_json\""
        ;;
    *) ps_json="\"$1\"" ;;
    esac
}

ps_is_sha() {
    case $1 in *[!0-9a-f]*) return 1 ;; esac
    [ ${#1} -eq 40 ] || [ ${#1} -eq 64 ]
}

ps_entry() { # a reflog line $1 -> ps_json: {"old":..,"new":..,"subject":..} (git.reflog_action)
    case $1 in
    *"$ps_tab"*) ps_head=${1%%"$ps_tab"*} ps_subj=${1#*"$ps_tab"} ;;
    *) ps_head=$1 ps_subj= ;;
    esac
    case $ps_head in *" "*) ;; *) return 1 ;; esac
    ps_old=${ps_head%% *} ps_new=${ps_head#* }
    ps_new=${ps_new%% *}
    case $ps_subj in
    *": "*)
        ps_act=${ps_subj%%": "*}
        case $ps_act in
        "pull --rebase"*) ;;
        merge* | pull*) ps_act=$ps_subj ;;
        esac
        ;;
    *) ps_act=$ps_subj ;;
    esac
    [ ${#ps_act} -le 200 ] || return 1
    ps_str "$ps_old" || return 1
    ps_e="{\"old\":$ps_json"
    ps_str "$ps_new" || return 1
    ps_e="$ps_e,\"new\":$ps_json"
    ps_str "$ps_act" || return 1
    ps_json="$ps_e,\"subject\":$ps_json}"
}

ps_head_fields() { # what both records hold: ps_sd, ps_top, ps_sha, ps_branch, ps_last_line, ps_prev_line, ps_head
    [ -z "${GIT_WORK_TREE:-}" ] || return 1
    [ "${CLAUDECODE:-}" != 1 ] || return 1 # Claude Code's agent block (agents/claude_code.py): Python
    cd -P . 2>/dev/null || return 1
    ps_top=$PWD
    ps_gd=${GIT_DIR:-.git}
    if [ -f "$ps_gd" ]; then
        read -r ps_line <"$ps_gd" || return 1
        case $ps_line in "gitdir: "*) ;; *) return 1 ;; esac
        case $ps_gd in */*) ps_base=${ps_gd%/*} ;; *) ps_base=. ;; esac
        ps_gd=${ps_line#gitdir: }
        case $ps_gd in /*) ;; *) ps_gd=$ps_base/$ps_gd ;; esac
    fi
    cd -P -- "$ps_gd" 2>/dev/null || return 1
    ps_gd=$PWD
    ps_cd=$PWD
    if [ -f commondir ]; then
        read -r ps_line <commondir || return 1
        cd -P -- "$ps_line" 2>/dev/null || return 1
        ps_cd=$PWD
    fi
    cd -- "$ps_top" || return 1
    [ -f "$ps_gd/HEAD" ] || return 1
    ps_sd=$ps_cd/periscope
    [ -f "$ps_sd/spool.jsonl" ] || return 1 # the first record: Python creates the spool (0600)
    read -r ps_line <"$ps_gd/HEAD" || return 1
    ps_branch=null
    case $ps_line in
    "ref: "*)
        ps_ref=${ps_line#ref: }
        if [ -f "$ps_gd/$ps_ref" ]; then
            read -r ps_sha <"$ps_gd/$ps_ref" || return 1
        elif [ -f "$ps_cd/$ps_ref" ]; then
            read -r ps_sha <"$ps_cd/$ps_ref" || return 1
        else
            return 1 # packed-refs, reftable: Python
        fi
        ps_is_sha "$ps_sha" || return 1
        ps_str "${ps_ref#refs/heads/}" || return 1
        ps_branch=$ps_json
        ;;
    *)
        ps_sha=$ps_line
        ps_is_sha "$ps_sha" || return 1
        for ps_d in rebase-merge rebase-apply; do
            if [ -f "$ps_gd/$ps_d/head-name" ]; then
                read -r ps_line <"$ps_gd/$ps_d/head-name" || continue
                case $ps_line in
                refs/heads/*)
                    ps_str "${ps_line#refs/heads/}" || return 1
                    ps_branch=$ps_json
                    break
                    ;;
                esac
            fi
        done
        ;;
    esac
    [ -s "$ps_gd/logs/HEAD" ] || return 1
    ps_tail=$(LC_ALL=C tail -n 2 "$ps_gd/logs/HEAD" 2>/dev/null) || return 1 # C: no locale to load
    case $ps_tail in
    *"$ps_nl"*) ps_prev_line=${ps_tail%%"$ps_nl"*} ps_last_line=${ps_tail#*"$ps_nl"} ;;
    *) ps_prev_line= ps_last_line=$ps_tail ;;
    esac
    ps_entry "$ps_last_line" || return 1
    ps_reflog=$ps_json
    if [ -d "$ps_gd/rebase-merge" ] || [ -d "$ps_gd/rebase-apply" ]; then
        ps_rebasing=true
    else
        ps_rebasing=false
    fi
    ps_str "$ps_top" || return 1
    ps_wt=$ps_json
}

ps_agent() { # the agent block a coding agent's command adds (PERISCOPE_*; Claude Code: Python) -> ps_rec
    if [ -n "${PERISCOPE_SESSION_ID:-}" ] || [ -n "${PERISCOPE_MESSAGE_ID:-}" ]; then
        ps_sid=null ps_mid=null
        if [ -n "${PERISCOPE_SESSION_ID:-}" ]; then
            ps_str "$PERISCOPE_SESSION_ID" || return 1
            ps_sid=$ps_json
        fi
        if [ -n "${PERISCOPE_MESSAGE_ID:-}" ]; then
            ps_str "$PERISCOPE_MESSAGE_ID" || return 1
            ps_mid=$ps_json
        fi
        ps_rec="$ps_rec,\"agent\":{\"session_id\":$ps_sid,\"message_id\":$ps_mid}"
    fi
}

ps_clock_ms() { # -> ps_ms (a `date` process: ~1.5-3 ms)
    ps_ms=$(LC_ALL=C date +%s%3N 2>/dev/null) || return 1
    case $ps_ms in '' | *[!0-9]*) return 1 ;; esac # no GNU date: Python
}

ps_append() { # ps_rec -> the spool, in one write(2), so lines of concurrent writers never mix
    if [ ${#ps_rec} -lt 4000 ]; then # sh's output buffer holds it (bash's stdio: 4096)
        printf '%s\n' "$ps_rec" 2>/dev/null >>"$ps_sd/spool.jsonl" || return 1
    else
        # A longer line (post-rewrite of a rebase of 45-360 commits): sh's printf writes it in
        # pieces (strace: bash 4,096 bytes at a time; dash past 8 KiB, the text, then the
        # newline), so GNU dd gathers the whole line first (iflag=fullblock: reads until EOF, up
        # to bs) and appends it in one write.  One dd process, ~1-2 ms, against ~50-70 ms for
        # Python.  No GNU dd (BSD, busybox): it refuses the flags before writing anything, and
        # Python writes the record.
        printf '%s\n' "$ps_rec" |
            LC_ALL=C dd of="$ps_sd/spool.jsonl" oflag=append conv=notrunc bs=1048576 iflag=fullblock \
                status=none 2>/dev/null || return 1
    fi
    ps_written=1
}

periscope_sh_post_commit() {
    ps_head_fields || return 1
    # The record's time: git's own time for this entry (the commit's, in whole seconds) when the
    # entry is this commit's and no GIT_COMMITTER_DATE put a made-up date there, else the clock.
    # Reading it from the line we already have saves a `date` process (~1.5-3 ms, measured).
    ps_ms=
    if [ -z "${GIT_COMMITTER_DATE:-}" ] && [ "$ps_new" = "$ps_sha" ]; then
        ps_t=${ps_head% *}
        ps_t=${ps_t##* }
        case $ps_t in '' | 0* | *[!0-9]*) ;; *) ps_ms=${ps_t}000 ;; esac
    fi
    ps_prev=null
    if [ -n "$ps_prev_line" ]; then
        ps_entry "$ps_prev_line" || return 1
        ps_prev=$ps_json
    fi
    if [ -z "$ps_ms" ]; then
        ps_clock_ms || return 1
    fi
    ps_rec="{\"v\":1,\"kind\":\"commit\",\"hook\":\"post-commit\",\"time\":$ps_ms,\"worktree\":$ps_wt"
    ps_rec="$ps_rec,\"sha\":\"$ps_sha\",\"branch\":$ps_branch,\"reflog\":$ps_reflog,\"rebasing\":$ps_rebasing"
    ps_rec="$ps_rec,\"reflog_prev\":$ps_prev"
    if [ "$ps_rebasing" = true ] && [ -f "$ps_gd/rebase-merge/stopped-sha" ] && [ -f "$ps_gd/rebase-merge/amend" ]; then
        ps_stopped= ps_stophead= # a commit at an `edit` stop (hook.rebase_stop)
        read -r ps_stopped <"$ps_gd/rebase-merge/stopped-sha"
        read -r ps_stophead <"$ps_gd/rebase-merge/amend"
        if ps_is_sha "$ps_stopped" && ps_is_sha "$ps_stophead"; then
            ps_rec="$ps_rec,\"rebase_stop\":{\"commit\":\"$ps_stopped\",\"head\":\"$ps_stophead\"}"
        fi
    elif [ "$ps_rebasing" = true ] && [ -d "$ps_gd/rebase-merge" ] && [ ! -e "$ps_gd/rebase-merge/stopped-sha" ]; then
        ps_rec="$ps_rec,\"rebase_break\":true" # at a `break` or `exec` (hook.rebase_at_break)
    fi
    ps_agent || return 1
    ps_rec="$ps_rec}"
    ps_append || return 1
    # The detached flusher (none while rebasing: post-rewrite's comes at the end).
    if [ "${PERISCOPE_BACKGROUND:-1}" != 0 ] && [ "$ps_rebasing" = false ]; then
        ps_spawn_flush "$ps_sd"
    fi
    return 0
}

# --- post-rewrite in sh: `git commit --amend` and rebases, without starting Python ----------
# The record periscope_hooks.hook writes for plain git's post-rewrite ($1 amend or rebase, the
# pairs on stdin); no pairs (pre-commit passes no stdin: Python recovers them from the reflog), an
# unexpected line, or more than ~360 pairs: Python.  The time is the clock's, as there.
ps_pairs_of() { # the lines $1, split on IFS (the caller's newline) -> ps_pairs; 1 on a line not "old new"
    ps_pairs= ps_before= ps_npairs=0
    for ps_line in $1; do
        case $ps_line in *[!0-9a-f\ ]*) return 1 ;; esac # git writes "old new" (SHAs, one space)
        ps_o=${ps_line%% *} ps_n=${ps_line#* }
        case $ps_n in *" "*) return 1 ;; esac
        ps_is_sha "$ps_o" && ps_is_sha "$ps_n" || return 1
        # Two olds onto one new (a fixup or squash; a skipped pick): Python reads the todo for them.
        [ "$ps_n" != "$ps_before" ] || return 1
        ps_before=$ps_n
        ps_pairs="$ps_pairs${ps_pairs:+,}[\"$ps_o\",\"$ps_n\"]"
        ps_npairs=$((ps_npairs + 1))
    done
}

ps_sha_list() { # fewer than $1 commits, then `git rev-list` arguments -> ps_list ("a","b"), ps_n; 1 when git fails, a line is no SHA or the list may be cut
    ps_limit=$1
    shift
    # Bounded as the Python hook's git calls are (5 s): a git that never answers (a commit-graph
    # that is a FIFO, a hung network filesystem) would hang the rebase.  coreutils' timeout, one
    # more exec (~1 ms, twice a rebase); where there is none (macOS) git runs unbounded.
    ps_bound=
    command -v timeout >/dev/null 2>&1 && ps_bound="timeout 5"
    # Without the repository variables of the git that runs us (git.REPOSITORY_ENV, which the
    # Python hook's git calls drop too: GIT_NO_REPLACE_OBJECTS, GIT_OBJECT_DIRECTORY, ... changed
    # what rev-list lists, and sh's record differed from Python's; a hook sweep).  In the command
    # substitution's own process: nothing else loses them.
    ps_lines=$(
        unset GIT_ALTERNATE_OBJECT_DIRECTORIES GIT_CONFIG GIT_OBJECT_DIRECTORY GIT_DIR GIT_WORK_TREE \
            GIT_IMPLICIT_WORK_TREE GIT_GRAFT_FILE GIT_INDEX_FILE GIT_NO_REPLACE_OBJECTS GIT_REPLACE_REF_BASE \
            GIT_PREFIX GIT_INTERNAL_SUPER_PREFIX GIT_SHALLOW_FILE GIT_COMMON_DIR GIT_QUARANTINE_PATH
        $ps_bound git --git-dir="$ps_gd" rev-list --max-count="$ps_limit" "$@" 2>/dev/null
    ) || return 1
    ps_list= ps_n=0
    for ps_line in $ps_lines; do
        ps_is_sha "$ps_line" || return 1
        ps_list="$ps_list${ps_list:+,}\"$ps_line\""
        ps_n=$((ps_n + 1))
    done
    [ "$ps_n" -lt "$ps_limit" ] # the list may be cut: left out
}

ps_made_of() { # HEAD $1, onto $2, orig-head $3, fewer than $4 commits -> ps_made: ,"made":[...] (hook.rebase_facts), or empty
    ps_made=
    ps_sha_list "$4" "$1" "^$2" "^$3" || return 0
    ps_made=",\"made\":[$ps_list]"
}

ps_merges_of() { # orig-head $1, onto $2, fewer than $3 -> ps_merges: ,"merges":[...] (hook.rebase_facts), or empty
    ps_merges=
    ps_sha_list "$3" --merges "$1" "^$2" || return 0
    [ "$ps_n" -gt 0 ] || return 0 # none: left out
    ps_merges=",\"merges\":[$ps_list]"
}

periscope_sh_post_rewrite() {
    case ${1:-} in amend | rebase) ;; *) return 1 ;; esac
    # Up to ~360 pairs: dash appends to a string by copying it, so the pairs' text costs time
    # quadratic in their number: measured (sh start included) 4.4 ms at 100 pairs, 12.9 ms at
    # 300, 33 ms at 600, 90 ms at 1,000, where Python takes 50-70 ms at any size.
    [ ${#ps_stdin} -lt 30000 ] || return 1
    case $ps_stdin in "$ps_nl"* | *"$ps_nl$ps_nl"*) return 1 ;; esac # an empty line
    ps_ifs=$IFS
    set -f # one field per line, no globbing (each line is checked in ps_pairs_of)
    IFS=$ps_nl
    ps_pairs_of "$ps_stdin"
    ps_ok=$?
    IFS=$ps_ifs
    set +f
    [ "$ps_ok" = 0 ] && [ -n "$ps_pairs" ] || return 1
    ps_head_fields || return 1
    ps_clock_ms || return 1
    ps_rec="{\"v\":1,\"kind\":\"commit\",\"hook\":\"post-rewrite\",\"time\":$ps_ms,\"worktree\":$ps_wt"
    ps_rec="$ps_rec,\"sha\":\"$ps_sha\",\"branch\":$ps_branch,\"reflog\":$ps_reflog,\"rebasing\":$ps_rebasing"
    ps_rec="$ps_rec,\"command\":\"$1\",\"pairs\":[$ps_pairs]"
    if [ "$1" = rebase ] && [ "$ps_rebasing" = true ]; then # the commit it replays onto (hook.rebase_facts)
        ps_onto= ps_orig= ps_rmerges=
        for ps_d in rebase-merge rebase-apply; do
            if [ -d "$ps_gd/$ps_d" ]; then
                [ -f "$ps_gd/$ps_d/onto" ] && read -r ps_onto <"$ps_gd/$ps_d/onto"
                [ -f "$ps_gd/$ps_d/orig-head" ] && read -r ps_orig <"$ps_gd/$ps_d/orig-head"
                [ -f "$ps_gd/$ps_d/refs-to-delete" ] && ps_rmerges=1 # --rebase-merges: flattens none
                break
            fi
        done
        if ps_is_sha "$ps_onto"; then
            ps_rec="$ps_rec,\"onto\":\"$ps_onto\""
            if ps_is_sha "$ps_orig"; then
                ps_made_of "$ps_sha" "$ps_onto" "$ps_orig" $((ps_npairs + 100)) # MADE_EXTRA_COMMITS
                ps_merges=
                [ -n "$ps_rmerges" ] || ps_merges_of "$ps_orig" "$ps_onto" 100 # MADE_EXTRA_COMMITS
                ps_rec="$ps_rec$ps_made$ps_merges"
            fi
        fi
    fi
    ps_agent || return 1
    ps_rec="$ps_rec}"
    ps_append || return 1
    if [ "${PERISCOPE_BACKGROUND:-1}" != 0 ]; then
        ps_spawn_flush "$ps_sd"
    fi
    return 0
}

ps_written=
if [ "${PERISCOPE_SH_HOOK:-1}" != 0 ] && [ -x "$INSTALL_PYTHON" ]; then
    ps_pwd=$PWD
    case $ps_hook_name in
    post-commit) periscope_sh_post_commit >/dev/null 2>&1 ;;
    post-rewrite) periscope_sh_post_rewrite "$@" >/dev/null 2>&1 ;;
    esac
    cd -- "$ps_pwd" 2>/dev/null
fi
[ -n "$ps_written" ] || periscope_run "$@"

if [ -x "$ps_kept" ]; then
    if [ "$ps_hook_name" = post-rewrite ]; then
        printf '%s\n' "$ps_stdin" | "$ps_kept" "$@"
    else
        "$ps_kept" "$@"
    fi
    exit $?
fi
exit 0
