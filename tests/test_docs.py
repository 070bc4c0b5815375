"""docs/cli.md is generated from the parser's `--help` texts; it must match the code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen-cli-docs.py"), "--check"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr + "(a command or option changed: regenerate docs/cli.md)"


def test_every_command_has_a_section() -> None:
    text = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    from periscope_hooks.main import _build_parser

    parser = _build_parser()
    names = [n for a in parser._actions if hasattr(a, "choices") and isinstance(a.choices, dict) for n in a.choices]
    assert names and all(f"## periscope {n}\n" in text for n in names)


def test_relative_links_in_the_docs_resolve() -> None:
    import re

    broken = []
    for page in [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8")):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken
