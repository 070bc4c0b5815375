from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix: shown as one line plus a hint, exit code 1."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
