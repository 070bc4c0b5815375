"""The shared fixtures live in the `testing` package, loaded as a pytest plugin (`pythonpath = ["."]`
in pyproject.toml puts the repository root on sys.path)."""

pytest_plugins = ["testing.fixtures"]
