"""pytest fixtures of the sql connector tests (see sql_fixtures.py)."""

from sql_fixtures import db  # noqa: F401
