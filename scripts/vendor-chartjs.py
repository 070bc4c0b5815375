#!/usr/bin/env python3
"""Vendor Chart.js into periscope_hooks/resources/ (the dashboard never loads it from a CDN).

Fetches the package by name from the npm registry with `npm pack`, checks the tarball against the
integrity recorded below (the registry's sha512, pinned here when the version was chosen), and
copies the UMD build and its licence.  The vendored file's sha256 is pinned again in
periscope_hooks/dashboard.py and tests/test_dashboard_html.py, so a hand-edited copy is caught.

To upgrade: change VERSION and INTEGRITY (from `npm view chart.js@X dist.integrity`), run this,
and update CHARTJS_SHA256 where it is pinned.
"""

from __future__ import annotations

import base64
import hashlib
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

PACKAGE = "chart.js"
VERSION = "4.6.1"
INTEGRITY = "sha512-hJyniucsFmq//EvXYvJ6c6mahPoI3kaxdjVH8awTaJ/fDNWeSqqqArixMJWkWNN6fcYvPU3HneSANFNYtRi61g=="
FILES = {  # member of the tarball -> name under resources/
    "package/dist/chart.umd.min.js": "chart.umd.min.js",
    "package/LICENSE.md": "chart.js-LICENSE.md",
}
RESOURCES = Path(__file__).resolve().parent.parent / "periscope_hooks" / "resources"


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        name = subprocess.run(
            ["npm", "pack", "--silent", f"{PACKAGE}@{VERSION}"], cwd=tmp, check=True, capture_output=True, text=True
        ).stdout.split()[-1]
        tarball = Path(tmp) / name
        algo, expected = INTEGRITY.split("-", 1)
        got = base64.b64encode(hashlib.new(algo, tarball.read_bytes()).digest()).decode()
        if got != expected:
            print(f"error: {name} integrity {algo}-{got} != recorded {INTEGRITY}", file=sys.stderr)
            return 1
        with tarfile.open(tarball) as tar:
            for member, target in FILES.items():
                f = tar.extractfile(member)
                assert f is not None, member
                data = f.read()
                (RESOURCES / target).write_bytes(data)
                print(f"{target}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
