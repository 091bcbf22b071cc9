"""erasure-zendesk: the ``zendesk`` connector for Zendesk Support (on zenpy)."""

from .connector import ZendeskConnector
from .settings import ZendeskSettings

__all__ = ["ZendeskConnector", "ZendeskSettings"]
