"""recover_mappings gives the same pairs, in the same order, as git's own post-rewrite stdin."""

from __future__ import annotations

import os
import sys

from testing.util import commit, git, init_repo

CAPTURE = f"""#!/bin/sh
# Record git's stdin and what recover_mappings finds, while the hook runs.
dir=$(git rev-parse --absolute-git-dir)
common=$(cd "$(git rev-parse --git-common-dir)" && pwd)
cat > "$dir/stdin-$1-$$"
PYTHONPATH='{os.path.dirname(os.path.dirname(os.path.abspath(__file__)))}' '{sys.executable}' -c '
import sys
from periscope_hooks.rewrite_recovery import recover_mappings
for o, n in recover_mappings(sys.argv[1], sys.argv[2], sys.argv[3]):
    print(o, n)
' "$dir" "$common" "$1" > "$dir/recovered-$1-$$"
"""


def install_capture(repo):
    hook = repo / ".git" / "hooks" / "post-rewrite"
    hook.write_text(CAPTURE)
    hook.chmod(0o755)


def captured(repo):
    d = repo / ".git"
    stdin = sorted(p for p in d.iterdir() if p.name.startswith("stdin-"))
    pairs = []
    for p in stdin:
        rec = d / p.name.replace("stdin-", "recovered-")
        pairs.append((p.read_text().split(), rec.read_text().split()))
    return pairs


def test_amend(tmp_path):
    repo = init_repo(tmp_path / "r")
    install_capture(repo)
    commit(repo, "one")
    git(repo, "commit", "-q", "--amend", "-m", "one'")
    ((stdin, recovered),) = captured(repo)
    assert stdin and stdin == recovered


def test_interactive_rebase_with_every_action(tmp_path):
    repo = init_repo(tmp_path / "r")
    commit(repo, "base", filename="base.txt")
    for i in range(5):
        commit(repo, f"c{i}", filename=f"f{i}.txt")
    install_capture(repo)
    editor = "sed -i -e '1s/^pick/reword/' -e '2s/^pick/squash/' -e '3s/^pick/fixup/' -e '4s/^pick/drop/'"
    git(repo, "rebase", "-q", "-i", "HEAD~5", env={"GIT_SEQUENCE_EDITOR": editor, "GIT_EDITOR": "sed -i -e '1s/.*/x/'"})
    results = captured(repo)
    assert results
    for stdin, recovered in results:
        assert stdin == recovered
    assert any(len(stdin) >= 4 for stdin, _ in results)  # the final rebase listed several pairs


def test_plain_rebase_onto_upstream(tmp_path):
    repo = init_repo(tmp_path / "r")
    commit(repo, "base", filename="base.txt")
    git(repo, "checkout", "-q", "-b", "topic")
    commit(repo, "t1", filename="t1.txt")
    commit(repo, "t2", filename="t2.txt")
    git(repo, "checkout", "-q", "main")
    commit(repo, "upstream", filename="u.txt")
    git(repo, "checkout", "-q", "topic")
    install_capture(repo)
    git(repo, "rebase", "-q", "main")
    ((stdin, recovered),) = captured(repo)
    assert len(stdin) == 4 and stdin == recovered


def test_nothing_to_recover_returns_empty(tmp_path):
    from periscope_hooks.rewrite_recovery import recover_mappings

    repo = init_repo(tmp_path / "r")
    assert recover_mappings(str(repo / ".git"), str(repo / ".git"), "rebase") == []
    assert recover_mappings(str(tmp_path / "nowhere"), str(tmp_path / "nowhere"), "amend") == []
