"""pytest fixtures of the s3 connector tests (see s3_fixtures.py)."""

from s3_fixtures import s3, s3_server  # noqa: F401
