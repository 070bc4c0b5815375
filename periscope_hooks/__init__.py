"""periscope-hooks: link AI coding-assistant usage to git commits.

Kept free of imports: the git hook imports this package on every commit.
"""

__version__ = "0.1.0"  # the only place the version is written (pyproject.toml reads it)
CLIENT_NAME = "periscope-hooks"
