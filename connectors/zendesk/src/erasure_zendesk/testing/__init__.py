"""A local fake of the Zendesk Support API for tests, the bench and the demo."""

from .server import FakeZendesk, Faults
from .store import Store

__all__ = ["FakeZendesk", "Faults", "Store"]
