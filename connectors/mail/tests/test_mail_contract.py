"""The mail connector passes the connector contract suite on IMAP, Maildir and mbox."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from erasure_mail import MailConnector
from mail_fixtures import Archive, message

from erasure import Finding, IdentifierType, Subject
from erasure.testing import ConnectorContract, Seeded

T = IdentifierType


class TestMailContract(ConnectorContract):
    seed_types = frozenset({T.EMAIL, T.PHONE})
    # a message is a file (or an IMAP APPEND): a small large scenario in the default run.
    # IMAP fetches, flags and expunges its 30 messages in chunks of 12 UIDs (three of each);
    # Maildir lists its folders and mbox streams its files whole: no pages.
    # ERASURE_CONTRACT_POPULATION (make test-long) runs past the default 1,000-UID chunks.
    population = 30
    chunk = 12

    @pytest.fixture
    def connector(self, archive: Archive) -> MailConnector:
        self.archive = archive
        return archive.connector(search_body=True, fetch_chunk=self.chunk,
                                 expunge_chunk=self.chunk)

    def seed(self, connector: MailConnector, subject: Subject, *,
             single: bool = False) -> Seeded:
        # One message from the subject (in INBOX) and, unless single, one to them in Sent
        # with their phone in the text: both identifiers on at least one message.
        email = subject.of_type(T.EMAIL)[0]
        phone = subject.of_type(T.PHONE)[0]
        first = f"Invoice question {subject.key}"
        self.archive.add(message(email, "support@company.test", first,
                                 f"Hello, call me on {phone}.\nRegards"))
        if single:
            return Seeded(items=1, markers={email, first})
        second = f"Re: invoice {subject.key}"
        self.archive.add(message("support@company.test", f"Someone <{email}>", second,
                                 f"We will call {phone} tomorrow."), folder="Sent")
        return Seeded(items=2, markers={email, first, second})

    def restricted(self, connector: MailConnector, findings: Sequence[Finding]) -> set[str]:
        # The keyword as a mail client shows it (IMAP flag, Maildir letter, X-Keywords)
        return connector.restricted([f.ref for f in findings])
