"""A "browser" for `periscope login` in tests: BROWSER="python testing/fake_browser.py %s".

Submits the identity provider's form back to msal's listener on localhost:$PERISCOPE_LOGIN_PORT (14550 by default)."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from testing.idp import play_browser  # noqa: E402

if __name__ == "__main__":
    # Like a real browser, return to the caller at once and load the page meanwhile.
    if os.fork() == 0:
        try:
            play_browser(sys.argv[1], os.environ.get("SSL_CERT_FILE"))
        finally:
            os._exit(0)
