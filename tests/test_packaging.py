"""The built wheel (what `pip install .` and scripts/install.sh install) holds every subpackage and
every resource: the tests themselves run from an editable install, which would hide a missing one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_holds_every_package_and_resource(tmp_path):
    # Built from a copy: setuptools' build/ folder in the tree would keep files a broken
    # configuration no longer ships.
    src = tmp_path / "src"
    shutil.copytree(
        ROOT,
        src,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", "*.egg-info", "node_modules", "__pycache__"),
    )
    out = tmp_path / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True)
    (wheel,) = out.glob("periscope_hooks-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        p.relative_to(src).as_posix()
        for p in (src / "periscope_hooks").rglob("*")
        if p.is_file() and not p.name.endswith(".pyc")
    }
    assert expected - names == set()
