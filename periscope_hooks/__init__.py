"""periscope-hooks: link AI coding-assistant usage to git commits.

Kept free of imports: the git hook imports this package on every commit.
"""

__version__ = "0.1.0"
CLIENT_NAME = "periscope-hooks"
