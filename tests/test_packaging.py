"""The built wheel (what `pip install .` and scripts/install.sh install) holds every subpackage and
every resource: the tests themselves run from an editable install, which would hide a missing one."""

from __future__ import annotations

import zipfile
from pathlib import Path

from testing.util import build_wheel

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_and_resource(tmp_path):
    wheel = build_wheel(tmp_path)
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "periscope_hooks").rglob("*")
        if p.is_file() and not p.name.endswith(".pyc")
    }
    assert expected - names == set()
