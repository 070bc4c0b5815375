"""`periscope login` / `logout` / `whoami`."""
from __future__ import annotations

import os

from periscope_hooks import output, paths
from periscope_hooks.config import load_user_config
from periscope_hooks.errors import UserError


def _auth():
    from periscope_hooks.auth import Auth

    cfg = load_user_config()
    if not cfg.endpoint:
        raise UserError(f"no endpoint configured in {cfg.path}: events go to the local store, no sign-in needed",
                        f"add endpoint, client_id, authority and scopes to {cfg.path} to use the Periscope backend")
    return Auth(cfg)


def login() -> int:
    auth = _auth()
    output.info(f"opening the browser to sign in (redirect to http://localhost:14550) ...")
    who = auth.login()
    output.out(f"signed in as {who}")
    return 0


def logout() -> int:
    if not os.path.exists(paths.token_cache_path()):
        output.out("not signed in")
        return 0
    _auth().logout()
    output.out("signed out")
    return 0


def whoami() -> int:
    who = _auth().username() if os.path.exists(paths.token_cache_path()) else None
    if not who:
        raise UserError("not signed in", "run periscope login")
    output.out(who)
    return 0
