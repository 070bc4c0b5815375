"""The JSON Schemas of the spool record and the events (used by tests and by other tools)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

SCHEMA_DIR = Path(__file__).resolve().parent / "schema"


def load(name: str) -> dict[str, Any]:
    """`spool-record` or `events`."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text())
    return schema
