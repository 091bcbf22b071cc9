"""The zendesk connector passes the connector contract suite against the fake Zendesk API
(the real zenpy over HTTP). Every subject is a user with an email and a phone identity and,
unless single, two tickets they requested, each with a comment of theirs. Deletes answer
PENDING (ticket jobs): the suite polls them as the host does, and its deferred-job tests run
(a ticket job failing one ticket keeps that ticket and its requester, nothing else)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from erasure_zendesk import ZendeskConnector
from erasure_zendesk.testing import FakeZendesk
from zendesk_fixtures import settings

from erasure import Finding, IdentifierType, ObjectionScope, Subject
from erasure.testing import ConnectorContract, Seeded

T = IdentifierType


class TestZendeskContract(ConnectorContract):
    seed_types = frozenset({T.EMAIL, T.PHONE})
    # Zendesk's search and list pages hold 100: 250 items are three of them
    population = 250

    @pytest.fixture
    def connector(self, fake: FakeZendesk) -> ZendeskConnector:
        self.fake = fake
        return ZendeskConnector("helpdesk", settings(fake, restrict_with=["tag", "suspend"]))

    def seed(self, connector: ZendeskConnector, subject: Subject, *,
             single: bool = False) -> Seeded:
        (email,), (phone,) = subject.of_type(T.EMAIL), subject.of_type(T.PHONE)
        store = self.fake.store
        uid = store.add_user(f"Person {subject.key}", email, phone)
        if single:
            return Seeded(items=1, markers={email, phone})
        texts = [f"ticket {n} of {subject.key}" for n in (1, 2)]
        for n, text in enumerate(texts):
            store.add_ticket(uid, f"question {n}", [(uid, text)])
        return Seeded(items=3, markers={email, phone, *texts})

    def seed_many(self, connector: ZendeskConnector, subject: Subject,
                  count: int) -> Seeded:
        # One user (an email is one user's) and count - 1 tickets they requested.
        (email,), (phone,) = subject.of_type(T.EMAIL), subject.of_type(T.PHONE)
        store = self.fake.store
        uid = store.add_user(f"Person {subject.key}", email, phone)
        for n in range(count - 1):
            store.add_ticket(uid, f"question {n}", [(uid, f"text {n}")])
        return Seeded(items=count, markers={email, phone})

    def refuse_item(self, connector: ZendeskConnector, finding: Finding) -> set[str]:
        # The ticket job's result fails this ticket (TicketDeleteFailed), the others run.
        # Its requester is kept (and fails, saying so) so that a retry still finds it.
        kind, ident = finding.ref.split("/")
        if kind != "ticket":
            raise NotImplementedError("only a ticket's deletion can be refused")
        store = self.fake.store
        store.failing_tickets[int(ident)] = "delete"
        return {f"user/{store.tickets[int(ident)]['requester_id']}"}

    def restricted(self, connector: ZendeskConnector, findings: Sequence[Finding]) -> set[str]:
        # the tag, as an agent sees it on the user and on the ticket
        store, out = self.fake.store, set()
        for f in findings:
            kind, ident = f.ref.split("/")
            item = (store.users if kind == "user" else store.tickets)[int(ident)]
            if "erasure-restricted" in item["tags"]:
                out.add(f.ref)
        return out

    def objected(self, connector: ZendeskConnector, findings: Sequence[Finding],
                 scope: ObjectionScope) -> set[str]:
        # the scope's tag on the user, as an agent reads it (tickets have no opt-out)
        store = self.fake.store
        tag = f"erasure-objection-{scope.value}"
        return {f.ref for f in findings if f.ref.startswith("user/")
                and tag in store.users[int(f.ref.split("/")[1])]["tags"]}
