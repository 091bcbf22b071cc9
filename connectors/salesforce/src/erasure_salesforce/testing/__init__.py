"""A local fake Salesforce org for tests, the bench and the demo (see :mod:`.server`)."""

from .org import RECYCLE_DAYS, SCHEMA, ApiError, Org
from .server import FakeSalesforce

__all__ = ["RECYCLE_DAYS", "SCHEMA", "ApiError", "FakeSalesforce", "Org"]
