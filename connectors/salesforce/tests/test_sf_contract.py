"""The salesforce connector passes the connector contract suite against the fake org.

Every subject is a Contact (email, phone, name) with two Cases (by ContactId and
SuppliedEmail) and a Task on it (WhoId), unless single (the Contact alone). Deletes run as
Bulk API 2.0 hardDelete jobs: the suite polls the PENDING items until the jobs finish.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from erasure_salesforce import SalesforceConnector
from erasure_salesforce.testing import FakeSalesforce

from erasure import Finding, IdentifierType, ObjectionScope, Subject
from erasure.testing import ConnectorContract, Seeded

T = IdentifierType


class TestSalesforceContract(ConnectorContract):
    seed_types = frozenset({T.EMAIL, T.PHONE, T.NAME})
    # a small large scenario in the default run (the fake takes seconds for thousands):
    # the fake org answers SOQL in pages of 50 (sf_fixtures), so 250 items are five pages;
    # ERASURE_CONTRACT_POPULATION=2500 (make test-long) runs 2,500
    population = 250

    @pytest.fixture
    def connector(self, fake: FakeSalesforce, sf_connector) -> SalesforceConnector:
        self.fake = fake
        return sf_connector()

    def seed(self, connector: SalesforceConnector, subject: Subject, *,
             single: bool = False) -> Seeded:
        org = self.fake.org
        (email,), (phone,) = subject.of_type(T.EMAIL), subject.of_type(T.PHONE)
        (name,) = subject.of_type(T.NAME)
        first, last = name.split(" ", 1)
        contact = org.create("Contact", {"FirstName": first, "LastName": last,
                                         "Email": email, "Phone": phone})
        markers = {email, phone, name}
        if single:
            return Seeded(items=1, markers=markers)
        # Two Cases: a delete job holds one object's records, so the deferred-job test's
        # refused Case shares its job with another item that must still be deleted.
        cases = [f"case {n} of {subject.key}" for n in (1, 2)]
        for case_subject in cases:
            org.create("Case", {"ContactId": contact, "SuppliedEmail": email,
                                "Subject": case_subject})
        task_subject = f"call {subject.key}"
        org.create("Task", {"WhoId": contact, "Subject": task_subject})
        return Seeded(items=4, markers=markers | {*cases, task_subject})

    def refuse_item(self, connector: SalesforceConnector, finding: Finding) -> None:
        # An approval process locks the record: the Bulk API job's result fails that row
        # (ENTITY_IS_LOCKED) and deletes the others.
        self.fake.org.locked.add(finding.ref.split("/", 1)[1])

    def restricted(self, connector: SalesforceConnector,
                   findings: Sequence[Finding]) -> set[str]:
        # As an admin reads it: the person's Individual has HasOptedOutProcessing, and a
        # Case or Task is restricted through the person it belongs to.
        org = self.fake.org
        out = set()
        for f in findings:
            record = org.get(f.ref.split("/", 1)[1])
            if record is None:
                continue
            person = org.get(record.get("ContactId") or record.get("WhoId") or "") or record
            individual = org.get(person.get("IndividualId") or "") if "IndividualId" in \
                person else person
            if individual and individual.get("HasOptedOutProcessing"):
                out.add(f.ref)
        return out

    def objected(self, connector: SalesforceConnector, findings: Sequence[Finding],
                 scope: ObjectionScope) -> set[str]:
        # marketing: the person's HasOptedOutOfEmail and DoNotCall; profiling: the
        # Individual's HasOptedOutProfiling; a Case or Task through its person
        org = self.fake.org
        out = set()
        for f in findings:
            record = org.get(f.ref.split("/", 1)[1])
            if record is None:
                continue
            person = org.get(record.get("ContactId") or record.get("WhoId") or "") or record
            if scope is ObjectionScope.MARKETING:
                if person.get("HasOptedOutOfEmail") and person.get("DoNotCall"):
                    out.add(f.ref)
                continue
            individual = org.get(person.get("IndividualId") or "") if "IndividualId" in \
                person else person
            if individual and individual.get("HasOptedOutProfiling"):
                out.add(f.ref)
        return out
