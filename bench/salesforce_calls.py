"""Benchmark: Salesforce API calls per subject, counted at the fake org (no timing).

Seeds N subjects (default 1,000), each a Contact with an Individual, two Cases (one by
ContactId, one only by SuppliedEmail), a Task, an EmailMessage and a CampaignMember: 7
records a person. Then erases them the way the host does, in batches of --batch subjects
(find, delete, poll until the Bulk API 2.0 jobs finish, lookup to verify), and once more
for a sample with one subject per call: the baseline, what the same work costs when no
call is shared. Calls are counted per endpoint by the fake server.

    .venv/bin/python bench/salesforce_calls.py [--subjects 1000] [--batch 500] [--quick]

Expected by design: a batch shares its SOSL search and one SOQL query per related object;
erasing R records costs one hardDelete job (create, upload, close) per object per batch,
not one call per record.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from erasure_salesforce import SalesforceConnector, SalesforceSettings
from erasure_salesforce.testing import FakeSalesforce, Org

from erasure import Identifier, IdentifierType, ItemStatus, Subject

#: batched erasure must cost at most this share of the one-subject-per-call calls
TARGET_RATIO = 0.05
RECORDS_PER_SUBJECT = 7


def seed(org: Org, n: int, offset: int = 0) -> list[Subject]:
    campaign = org.create("Campaign", {"Name": "spring"})
    subjects = []
    for i in range(offset, offset + n):
        email = f"person{i}@example.org"
        individual = org.create("Individual", {"LastName": f"P{i}"})
        contact = org.create("Contact", {"FirstName": "Pat", "LastName": f"P{i}",
                                         "Email": email, "IndividualId": individual})
        case = org.create("Case", {"ContactId": contact, "Subject": "billing"})
        org.create("Case", {"SuppliedEmail": email, "Subject": "web form"})
        org.create("Task", {"WhoId": contact, "Subject": "call"})
        org.create("EmailMessage", {"ParentId": case, "FromAddress": "support@acme.test",
                                    "ToAddress": email, "Subject": "re"})
        org.create("CampaignMember", {"CampaignId": campaign, "ContactId": contact})
        subjects.append(Subject(f"req-{i}", (Identifier(IdentifierType.EMAIL, email),)))
    return subjects


def erase(c: SalesforceConnector, subjects: Sequence[Subject], batch: int) -> int:
    """Erase in host-sized batches; returns the records erased."""
    erased = 0
    for start in range(0, len(subjects), batch):
        part = subjects[start:start + batch]
        found = list(c.find(part))
        outcomes = list(c.delete(found))
        for _ in range(10):
            pending = [o for o in outcomes if o.status is ItemStatus.PENDING]
            if not pending:
                break
            done = {o.finding.ref: o for o in c.poll(pending)}
            outcomes = [done.get(o.finding.ref, o) for o in outcomes]
        assert all(o.status is ItemStatus.DONE for o in outcomes), Counter(
            o.status for o in outcomes)
        assert list(c.lookup(found)) == [], "residue after the erasure"
        erased += len(found)
    return erased


def measure(n: int, batch: int) -> tuple[Counter[str], int]:
    with FakeSalesforce(Org()) as fake:
        subjects = seed(fake.org, n)
        settings = SalesforceSettings.model_validate({
            "instance_url": fake.url, "auth": "session", "session_id": fake.session_id})
        c = SalesforceConnector("crm", settings)
        with tempfile.TemporaryDirectory() as state:
            c.state_dir = Path(state)
            erased = erase(c, subjects, batch)
        c.close()
        assert erased == n * RECORDS_PER_SUBJECT, erased
        return Counter(fake.calls), erased


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=1000)
    ap.add_argument("--batch", type=int, default=500, help="subjects per host call")
    ap.add_argument("--baseline", type=int, default=20,
                    help="subjects erased one per call for the baseline")
    ap.add_argument("--quick", action="store_true", help="200 subjects")
    args = ap.parse_args(argv)
    n = 200 if args.quick else args.subjects
    batched, records = measure(n, args.batch)
    single, _ = measure(args.baseline, 1)
    per_batched = sum(batched.values()) / n
    per_single = sum(single.values()) / args.baseline
    print(f"salesforce_calls: {n} subjects, {records} records ({RECORDS_PER_SUBJECT} each), "
          f"batches of {args.batch}")
    print(f"  batched:  {sum(batched.values())} calls = {per_batched:.3f} per subject")
    for name, count in sorted(batched.items()):
        print(f"    {name:18} {count:6}")
    print(f"  baseline (one subject per call, {args.baseline} subjects): "
          f"{per_single:.1f} calls per subject")
    for name, count in sorted(single.items()):
        print(f"    {name:18} {count / args.baseline:8.2f} per subject")
    ratio = per_batched / per_single
    ok = ratio <= TARGET_RATIO
    print(f"  ratio batched/baseline: {ratio:.4f} (target <= {TARGET_RATIO}) "
          f"{'OK' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
