"""`periscope login` / `logout` / `whoami`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from periscope_hooks import output
from periscope_hooks.config import load_user_config
from periscope_hooks.errors import UserError

if TYPE_CHECKING:
    from periscope_hooks.auth import Auth


def _auth() -> Auth:
    from periscope_hooks.auth import Auth

    cfg = load_user_config()
    if not cfg.endpoint:
        raise UserError(
            f"no endpoint configured in {cfg.path}: events go to the local store, no sign-in needed",
            f"add endpoint, client_id, authority and scopes to {cfg.path} to use the Periscope backend",
        )
    return Auth(cfg)


def login() -> int:
    who = _auth().login(
        starting=lambda port: output.info(f"opening the browser to sign in (redirect to http://localhost:{port}) ...")
    )
    output.out(f"signed in as {who}")
    return 0


def logout() -> int:
    """Works whatever the config says (even none): forgetting tokens needs no endpoint."""
    from periscope_hooks.auth import forget_tokens

    output.out("signed out" if forget_tokens() else "not signed in")
    return 0


def whoami() -> int:
    from periscope_hooks.auth import Auth

    try:
        who = Auth.cached_username()
    except (OSError, ValueError):
        who = None
    if not who:
        raise UserError("not signed in", "run periscope login")
    output.out(who)
    return 0
