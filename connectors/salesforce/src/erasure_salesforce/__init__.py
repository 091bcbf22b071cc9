"""erasure-salesforce: the ``salesforce`` connector for Salesforce CRM orgs."""

from .connector import SalesforceConnector
from .settings import DEFAULT_OBJECTS, SalesforceSettings, SObjectMap

__all__ = ["DEFAULT_OBJECTS", "SObjectMap", "SalesforceConnector", "SalesforceSettings"]
