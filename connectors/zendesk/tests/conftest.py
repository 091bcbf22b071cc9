"""pytest fixtures of the zendesk connector tests (see zendesk_fixtures.py)."""

from zendesk_fixtures import fake, make_orch  # noqa: F401
