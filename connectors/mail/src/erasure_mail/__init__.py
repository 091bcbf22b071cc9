"""The ``mail`` connector of erasure: IMAP servers, Maildir folders and mbox files."""

from .connector import MailConnector
from .settings import MailSettings

__all__ = ["MailConnector", "MailSettings"]
