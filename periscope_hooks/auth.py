"""OAuth 2.0 sign-in with msal: the authorization-code flow with PKCE in the browser.

`login` is the only place that opens a browser.  `flush` (and the hooks' background
flushers) only ever call `access_token`, which uses the cached refresh token
silently and raises AuthRequired when the user has to sign in again.  The token
cache lives in ${XDG_CONFIG_HOME:-~/.config}/periscope/token_cache.json, mode 0600.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import time
from typing import Any, Callable
from urllib.parse import urljoin, urlsplit

from periscope_hooks import paths
from periscope_hooks.config import UserConfig
from periscope_hooks.errors import UserError


def redirect_port() -> int:
    """The local port msal listens on for the browser's redirect (14550; PERISCOPE_LOGIN_PORT)."""
    from periscope_hooks import envvars

    return envvars.port("PERISCOPE_LOGIN_PORT")


ENTRA_HOSTS = (
    "login.microsoftonline.com",
    "login.microsoftonline.us",
    "login.chinacloudapi.cn",
    "login.partner.microsoftonline.cn",
)


class AuthRequired(Exception):
    """No usable sign-in: the user must run `periscope login`."""


def set_sign_in_required(required: bool) -> None:
    """Note (or clear) that the sign-in expired, outside any repository: `status` reads the
    repository's state, but the OpenCode plugin checks this file to start `periscope login` again."""
    path = paths.sign_in_required_path()
    try:
        if required:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            path.touch()
        else:
            path.unlink()
    except OSError:
        pass


def forget_tokens() -> bool:
    """`periscope logout`: the token cache is all the sign-in state there is.  True if there was one."""
    set_sign_in_required(False)
    path = paths.token_cache_path()
    try:
        os.remove(path)
        return True
    except FileNotFoundError:
        return False
    except OSError as e:
        raise UserError(f"could not remove the token cache {path}: {e.strerror}", f"remove {path} yourself") from None


def port_in_use(port: int) -> bool:
    for family, host in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        try:
            s = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue
        try:
            # As the listener msal starts does: a socket lingering in TIME_WAIT is no obstacle.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
        except OSError as e:
            if e.errno == errno.EADDRINUSE:
                return True
        finally:
            s.close()
    return False


class TokenStore:
    """msal's serializable cache, persisted with mode 0600."""

    def __init__(self, path: str | None = None) -> None:
        import msal

        self.path = str(path or paths.token_cache_path())
        self.cache = msal.SerializableTokenCache()
        self._read: tuple[int, int, int] | None = None  # the file's (inode, size, mtime) when read
        self.reload_if_changed()

    def _identity(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def reload_if_changed(self) -> None:
        """Read the cache file again when another process replaced it since (a flusher of another
        repository that refreshed the tokens: a provider that rotates refresh tokens spends the
        one this process holds, and refreshing with it said "sign in again")."""
        identity = self._identity()
        if identity is None or identity == self._read:
            return
        try:
            with open(self.path, encoding="utf-8") as f:
                self.cache.deserialize(f.read())
        except (OSError, ValueError, RecursionError):
            pass  # an unreadable cache is the same as none: sign in again
        self._read = identity

    def save(self) -> None:
        if not self.cache.has_state_changed:
            return
        directory = os.path.dirname(self.path)
        os.makedirs(directory, mode=0o700, exist_ok=True)
        # A name of this process's own, created new (O_EXCL, never following a link): a leftover
        # temporary file, group-readable or a symlink, is never written through.
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(self.cache.serialize())
        os.chmod(tmp, 0o600)  # whatever the umask
        os.replace(tmp, self.path)
        self.cache.has_state_changed = False
        self._read = self._identity()


# OAuth errors (RFC 6749 5.2, OpenID Connect 3.1.2.6) whose fix is to sign in again; any other error
# from the token endpoint is the provider's trouble, retried later.
SIGN_IN_AGAIN_ERRORS = frozenset(
    (
        "invalid_grant",
        "interaction_required",
        "login_required",
        "consent_required",
        "invalid_client",
        "unauthorized_client",
    )
)


def _https_redirects_only() -> Any:
    """msal's HTTP client (requests), following redirects to HTTPS only: an identity provider's
    token endpoint answering 307 to http://elsewhere made msal POST the refresh token there in the
    clear.  A refused redirect is an OSError (requests' errors are), said like a network failure."""
    import requests

    session = requests.Session()

    def refuse_plain_redirects(response: Any, *args: Any, **kwargs: Any) -> None:
        if response.is_redirect:
            target = urlsplit(urljoin(response.url, response.headers.get("Location", "")))
            if target.scheme != "https":
                raise requests.exceptions.InvalidURL(
                    f"the identity provider redirected to {target.scheme or 'a relative'} URL"
                    f" ({target.hostname or ''}); sign-in follows HTTPS only"
                )

    session.hooks["response"].append(refuse_plain_redirects)
    return session


class Auth:
    def __init__(self, cfg: UserConfig, cache_path: str | None = None) -> None:
        if not cfg.signs_in:
            raise UserError(f"no OAuth client configured in {cfg.path}", f"set client_id and authority in {cfg.path}")
        self.cfg = cfg
        self.store = TokenStore(cache_path)
        self._app: Any = None  # msal.PublicClientApplication (msal ships no type information)

    @property
    def scopes(self) -> list[str]:
        return list(self.cfg.scopes)

    def app(self) -> Any:
        if self._app is None:
            import msal

            from periscope_hooks import __version__

            authority = self.cfg.authority
            kwargs: dict[str, Any] = {
                "token_cache": self.store.cache,
                "app_name": "periscope-hooks",
                "app_version": __version__,
                "http_client": _https_redirects_only(),
            }
            if urlsplit(authority).hostname in ENTRA_HOSTS:
                kwargs["authority"] = authority
            else:
                kwargs["oidc_authority"] = authority  # any OpenID Connect provider
            try:
                self._app = msal.PublicClientApplication(self.cfg.client_id, **kwargs)
            except ValueError as e:  # msal's checks of the authority (its discovery document, its shape)
                raise UserError(
                    f"sign-in cannot use the authority {authority}: {str(e).splitlines()[0] if str(e) else type(e).__name__}",
                    f"check 'authority' in {self.cfg.path}",
                ) from None
        return self._app

    def login(
        self,
        *,
        auth_uri_callback: Callable[[str], None] | None = None,
        timeout: int = 300,
        starting: Callable[[int], None] | None = None,
    ) -> str:
        """Sign in in the browser; `starting(port)` runs once the authority is known good, just
        before the browser opens."""
        port = redirect_port()
        if port_in_use(port):
            raise UserError(
                f"port {port} is in use by another process; sign-in needs it for the browser redirect",
                f"find the process with 'lsof -i :{port}' (or 'ss -ltnp | grep {port}'), stop it,"
                " then run periscope login again",
            )
        extra = {"auth_uri_callback": auth_uri_callback} if auth_uri_callback else {}
        try:
            app = self.app()
            if starting is not None:
                starting(port)
            result = app.acquire_token_interactive(self.scopes, port=port, timeout=timeout, **extra)
        except OSError as e:
            raise UserError(
                f"sign-in could not start: {e}", "check your network and the authority in the config"
            ) from None
        if not result or "access_token" not in result:
            err = (result or {}).get("error", "no response")
            desc = ((result or {}).get("error_description") or "").splitlines()[0:1]
            raise UserError(f"sign-in failed: {err}{': ' + desc[0] if desc else ''}", "run periscope login again")
        self.store.save()
        set_sign_in_required(False)
        return self.username() or "unknown user"

    @staticmethod
    def cached_username(path: str | None = None) -> str | None:
        """Who is signed in, from the token cache file alone (no network, unlike msal's accounts,
        which need the authority's discovery document).  Raises ValueError for an unreadable cache."""
        try:
            with open(str(path or paths.token_cache_path()), encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return None
        except RecursionError:
            raise ValueError("the token cache is nested too deep to read") from None
        accounts = data.get("Account") if isinstance(data, dict) else None
        if accounts is not None and not isinstance(accounts, dict):  # valid JSON, not msal's shape
            raise ValueError("the token cache is not one msal wrote")
        for account in (accounts or {}).values():
            if isinstance(account, dict) and account.get("username"):
                return str(account["username"])
        return None

    def username(self) -> str | None:
        accounts = self.app().get_accounts()
        return accounts[0].get("username") if accounts else None

    def _cached_access_token(self) -> tuple[str, bool] | None:
        """The cached access token msal's acquire_token_silent would return, found in the token
        cache alone, and whether it is due for a refresh (its `refresh_on` passed).

        msal's application reads the provider's discovery document before it looks in its cache
        (one GET a flusher, each flusher a new process), so a provider's outage held delivery while
        a token valid for an hour was on disk.  The same query as msal's: this client, the
        authority's host and tenant, the one account signed in, our scopes, and five minutes of
        validity left.  None (msal decides) when anything is less plain than that."""
        from msal.authority import canonicalize

        try:
            _, environment, realm = canonicalize(str(self.cfg.authority))
        except ValueError:
            return None
        cache = self.store.cache
        try:
            accounts = list(cache.search(cache.CredentialType.ACCOUNT, query={"environment": environment}))
            if len(accounts) != 1:
                return None  # none, or several (msal's choice of one needs the application)
            query = {
                "client_id": self.cfg.client_id,
                "environment": environment,
                "realm": realm,
                "home_account_id": accounts[0].get("home_account_id"),
            }
            now = time.time()
            for entry in cache.search(cache.CredentialType.ACCESS_TOKEN, target=self.scopes, query=query):
                if "key_id" in entry or "ext_cache_key" in entry:
                    continue  # bound to a key or a path (msal asks for them by name; we never do)
                if int(entry["expires_on"]) - now < 5 * 60:
                    continue  # msal's margin: taken for expired
                return str(entry["secret"]), "refresh_on" in entry and int(entry["refresh_on"]) < now
        except (AttributeError, TypeError, KeyError, ValueError):  # a cache of valid JSON in another shape
            return None
        return None

    def access_token(self, *, force_refresh: bool = False) -> str:
        """A valid access token, refreshed silently if needed; never opens a browser.  AuthRequired
        only when signing in again is the fix; ConnectionError when the identity provider could
        not be reached or failed (a 500 from its token endpoint said "sign in again")."""
        host = urlsplit(str(self.cfg.authority)).hostname
        self.store.reload_if_changed()  # another flusher may have refreshed (and rotated) the tokens
        cached = None if force_refresh else self._cached_access_token()
        if cached is not None and not cached[1]:
            return cached[0]
        try:
            app = self.app()  # made once a run: it reads the provider's discovery document
        except OSError:
            if cached is not None:
                return cached[0]  # due for a refresh, still valid: the provider is down meanwhile
            raise ConnectionError(f"could not reach the identity provider ({host})") from None
        except Exception as e:  # an outage's answer (a 503 page, a 404, an error in JSON): retried later
            if cached is not None:
                return cached[0]
            # For `login` a bad authority is the user's to fix (UserError); while delivering it is
            # indistinguishable from the provider being down, and the sign-in still stands.
            what = e.message if isinstance(e, UserError) else type(e).__name__
            raise ConnectionError(
                f"could not read the identity provider's configuration ({host}: {what[:120]})"
            ) from None
        try:
            accounts = app.get_accounts()
        except OSError:
            raise ConnectionError(f"could not reach the identity provider ({host})") from None
        except (AttributeError, TypeError, KeyError, ValueError):  # a cache of valid JSON in another shape
            raise AuthRequired("the token cache is unreadable") from None
        if not accounts:
            raise AuthRequired("not signed in")
        try:
            # _with_error: the provider's error code, so that its failure is not read as a sign-out.
            result = app.acquire_token_silent_with_error(self.scopes, account=accounts[0], force_refresh=force_refresh)
        except OSError as e:
            raise ConnectionError(f"token refresh failed: {type(e).__name__}") from None
        except Exception as e:  # msal's MsalServiceError: an answer it could not read (never the token)
            raise ConnectionError(
                f"token refresh failed: the identity provider's answer ({type(e).__name__})"
            ) from None
        self.store.save()
        if not result or "access_token" not in result:
            error = str((result or {}).get("error") or "")
            if error and error not in SIGN_IN_AGAIN_ERRORS:
                # The provider failed (server_error, temporarily_unavailable): the sign-in stands.
                raise ConnectionError(f"token refresh failed: the identity provider answered {error[:60]!r}")
            raise AuthRequired(error or "the sign-in expired")
        return str(result["access_token"])
