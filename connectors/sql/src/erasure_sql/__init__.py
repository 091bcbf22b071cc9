"""erasure-sql: the ``sql`` connector for PostgreSQL, MariaDB/MySQL and SQLite."""

from .connector import SqlConnector
from .settings import Relation, SqlSettings, TableSettings

__all__ = ["Relation", "SqlConnector", "SqlSettings", "TableSettings"]
