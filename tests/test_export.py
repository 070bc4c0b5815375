from __future__ import annotations

import json

from testing.util import append_spool, commit, message_record, periscope


def test_export_prints_json_lines(repo):
    append_spool(repo.path, message_record(repo.path, id="exp1"))
    commit(repo.path, "c")
    lines = periscope("export", cwd=repo.path).stdout.splitlines()
    types = [json.loads(line)["type"] for line in lines]
    assert types.count("message") == 1 and types.count("commit") == 1
