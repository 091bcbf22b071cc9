"""Erasure against the fake org: hardDelete jobs, the Recycle Bin, per-item failures,
faults, and a resumed run that never submits a job twice."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from erasure_salesforce.testing import FakeSalesforce
from sf_fixtures import add_person, receipt, run_until_done
from test_sf_find import seed_whole_person, subject

from erasure import AuthError, ItemStatus, RequestType, TransientError
from erasure.orchestrator import RequestSpec

PAT = (("email", "pat@example.org"),)


def ids_of(seeded: dict[str, list[str]]) -> list[str]:
    return [i for ids in seeded.values() for i in ids]


def anywhere(fake: FakeSalesforce, ids: list[str]) -> list[str]:
    """The ids that queryAll still sees (active or in the Recycle Bin)."""
    return [i for i in ids if fake.org.exists(i)]


def test_hard_delete_jobs_finish_only_when_polled(fake: FakeSalesforce, sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    other = seed_whole_person(fake.org, "other@example.org", "+4930777666")
    c = sf_connector()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.PENDING}
    jobs = {o.handle for o in outcomes}
    assert len(jobs) == len(seeded) == fake.calls["job_create"]  # one job per object
    assert fake.calls["composite_delete"] == 0  # nothing went to the Recycle Bin
    assert anywhere(fake, ids_of(seeded)) == ids_of(seeded)  # not run until read
    polled = list(c.poll(outcomes))
    assert {o.status for o in polled} == {ItemStatus.PENDING}  # InProgress
    polled = list(c.poll(polled))
    assert {o.status for o in polled} == {ItemStatus.DONE}
    assert anywhere(fake, ids_of(seeded)) == []  # gone, Recycle Bin included
    assert list(c.lookup(found)) == []
    assert anywhere(fake, ids_of(other)) == ids_of(other)
    again = list(c.poll(list(c.poll(list(c.delete(found))))))
    assert {o.status for o in again} == {ItemStatus.ALREADY_DONE}  # the job found none


def test_a_failed_item_among_successes(fake: FakeSalesforce, sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    locked = seeded["Case"][0]
    fake.org.locked.add(locked)
    c = sf_connector()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    outcomes = list(c.poll(list(c.poll(list(c.delete(found))))))
    failed = [o for o in outcomes if o.status is ItemStatus.FAILED]
    assert [o.finding.ref for o in failed] == [f"Case/{locked}"]
    assert failed[0].error == "hard delete: ENTITY_IS_LOCKED" and not failed[0].transient
    assert {o.status for o in outcomes if o not in failed} == {ItemStatus.DONE}
    assert [f.ref for f in c.lookup(found)] == [f"Case/{locked}"]


def test_without_hard_delete_records_stay_in_the_recycle_bin_and_say_so(
        fake: FakeSalesforce, sf_connector) -> None:
    fake.org.hard_delete_permission(False)
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    fake.org.undeletable.add(seeded["Task"][0])
    c = sf_connector()
    with pytest.raises(AuthError, match="Bulk API Hard Delete"):
        c.check()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    outcomes = list(c.delete(found))
    until = (datetime.now(UTC) + timedelta(days=15)).date().isoformat()
    by_ref = {o.finding.ref: o for o in outcomes}
    task = by_ref.pop(f"Task/{seeded['Task'][0]}")
    assert task.status is ItemStatus.FAILED and task.error == "delete: DELETE_FAILED"
    assert {o.status for o in by_ref.values()} == {ItemStatus.FAILED}  # never done
    assert all(f"Recycle Bin until {until}" in (o.error or "") for o in by_ref.values())
    assert fake.calls["job_create"] == 0 and fake.calls["composite_delete"] == 1
    assert len(list(c.lookup(found))) == len(found)  # queryAll still sees every one
    again = list(c.delete(found))  # a repeat never claims what the bin still holds
    assert ItemStatus.ALREADY_DONE not in {o.status for o in again}
    fake.org.age_recycle_bin(16)  # Salesforce empties the bin after 15 days
    assert [f.ref for f in c.lookup(found)] == [f"Task/{seeded['Task'][0]}"]


def test_erasure_through_the_host_completes_and_verifies(fake: FakeSalesforce,
                                                          sf_host) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    other = seed_whole_person(fake.org, "other@example.org", "+4930777666")
    orch, clock = sf_host()
    rid = orch.submit(RequestSpec(RequestType.ERASURE, PAT, verified=True))
    run_until_done(orch, clock, rid)
    body = receipt(orch, rid)
    assert body["outcome"] == "completed", body
    assert body["verification"] == {"performed": True, "ok": True}
    assert body["counts"]["done"] == len(ids_of(seeded))
    assert anywhere(fake, ids_of(seeded)) == []
    assert anywhere(fake, ids_of(other)) == ids_of(other)
    usage = body["system_facts"]["api_usage"]  # from Sforce-Limit-Info
    assert usage["total"] == 15000 and 0 < usage["used"] <= fake.org.api_used


def test_host_receipt_without_hard_delete_is_partial_and_names_the_bin(
        fake: FakeSalesforce, sf_host) -> None:
    fake.org.hard_delete_permission(False)
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    orch, clock = sf_host()
    rid = orch.submit(RequestSpec(RequestType.ERASURE, PAT, verified=True))
    run_until_done(orch, clock, rid)
    body = receipt(orch, rid)
    assert body["outcome"] == "partial"
    assert body["counts"]["residue"] == len(ids_of(seeded))  # lookup: IsDeleted rows
    assert any("in the Recycle Bin until 20" in e for e in body["errors"]), body["errors"]
    assert "pat@example.org" not in str(body)


def test_thirty_percent_transient_faults_end_complete_with_no_residue(
        fake: FakeSalesforce, sf_host) -> None:
    people = [f"p{n}@example.org" for n in range(6)]
    seeded = {e: seed_whole_person(fake.org, e, f"+49305550{n:03d}")
              for n, e in enumerate(people)}
    bystander = add_person(fake.org, "bystander@example.org")
    orch, clock = sf_host()
    fake.fault_rate = 0.3
    rids = orch.submit_many([RequestSpec(RequestType.ERASURE, (("email", e),), verified=True)
                             for e in people])
    for rid in rids:
        run_until_done(orch, clock, rid, runs=60)
    fake.fault_rate = 0.0
    assert fake.injected["after_commit"] > 0 and fake.injected["limit"] > 0, fake.injected
    assert sum(fake.injected.values()) >= 0.2 * sum(fake.calls.values()), fake.injected
    for rid in rids:
        assert receipt(orch, rid)["outcome"] == "completed"
    left = [i for s in seeded.values() for i in ids_of(s) if fake.org.exists(i)]
    assert left == []  # queryAll by id finds nothing
    assert fake.org.exists(bystander)
    # every record went to exactly one job that ran (a job left Open by a failed upload
    # is aborted, never run)
    ran = Counter(i for job in fake.org.jobs.values() if job.state != "Aborted"
                  for i in set(job.ids))
    assert {n for n in ran.values()} == {1}
    assert set(ran) == {i for s in seeded.values() for i in ids_of(s)}


def test_a_503_after_the_delete_was_applied_does_not_fail_the_retry(
        fake: FakeSalesforce, sf_connector) -> None:
    fake.org.hard_delete_permission(False)
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    c = sf_connector()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    fake.fail("composite_delete", "after_commit")
    with pytest.raises(TransientError):
        list(c.delete(found))
    assert all(fake.org.in_recycle_bin(i) for i in ids_of(seeded))  # it was applied
    retried = list(c.delete(found))  # the host's retry: ENTITY_IS_DELETED for every item
    assert all("Recycle Bin until" in (o.error or "") for o in retried), retried


def test_limits_are_transient_and_say_how_long_to_wait(fake: FakeSalesforce,
                                                       sf_connector) -> None:
    add_person(fake.org, "pat@example.org")
    c = sf_connector()
    fake.fail("search", "limit")  # a concurrency limit: soon
    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED") as short:
        list(c.find([subject("req-p", email="pat@example.org")]))
    fake.org.api_limit = fake.org.api_used  # the org's daily allowance is spent
    with pytest.raises(TransientError, match="REQUEST_LIMIT_EXCEEDED") as daily:
        list(c.find([subject("req-p", email="pat@example.org")]))
    assert short.value.retry_after == 30 and daily.value.retry_after == 3600
    fake.fail("queryAll", "unavailable")
    fake.org.api_limit = 15000
    with pytest.raises(TransientError, match="HTTP 503"):
        list(c.find([subject("req-p", email="pat@example.org")]))


def test_records_deleted_before_are_purged_from_the_recycle_bin(
        fake: FakeSalesforce, sf_host) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    # An agent deleted the cases and the lead last week: in the bin, which search cannot
    # see (the lead's task hangs off it)
    fake.org.delete(seeded["Case"] + seeded["Lead"])
    other = add_person(fake.org, "other@example.org")
    fake.org.delete([other])  # somebody else's, in the bin too: stays there
    orch, clock = sf_host()
    rid = orch.submit(RequestSpec(RequestType.ERASURE, PAT, verified=True))
    run_until_done(orch, clock, rid)
    body = receipt(orch, rid)
    assert body["outcome"] == "completed", body
    assert body["counts"]["done"] == len(ids_of(seeded))  # the binned cases were found
    assert anywhere(fake, ids_of(seeded)) == []  # and purged, the email on them too
    assert fake.calls["empty_recycle_bin"] >= 1
    assert fake.org.in_recycle_bin(other)  # somebody else's stays where it was


def test_poll_purges_what_the_job_found_in_the_recycle_bin(fake: FakeSalesforce,
                                                          sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    c = sf_connector()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    pending = list(c.delete(found))
    fake.org.delete(seeded["Task"])  # deleted by someone while the job waited
    outcomes = list(c.poll(list(c.poll(pending))))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert fake.calls["empty_recycle_bin"] == 1
    assert anywhere(fake, ids_of(seeded)) == []


def test_hard_delete_taken_away_since_it_was_read(fake: FakeSalesforce, sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    c = sf_connector()
    c.check()  # the user may hard delete...
    fake.org.hard_delete_permission(False)  # ...until an admin takes it away
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    outcomes = list(c.delete(found))
    assert {o.status for o in outcomes} == {ItemStatus.FAILED}
    assert all("Recycle Bin until" in (o.error or "") for o in outcomes)
    assert all(fake.org.in_recycle_bin(i) for i in ids_of(seeded))
