"""pytest fixtures of the salesforce connector tests (see sf_fixtures.py)."""

from sf_fixtures import fake, sf_connector, sf_host  # noqa: F401
