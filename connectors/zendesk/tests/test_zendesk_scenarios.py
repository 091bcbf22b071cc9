"""The traps Zendesk sets, each against the fake API through the real zenpy: identities and
tickets in every role, other people's tickets (redacted, kept), tickets kept by policy, the
search cap, a user already soft-deleted, a job failing one ticket, 429s and 503s after
committed writes, and a run killed between a job's submit and the ledger's write."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Sequence

import pytest
from erasure_zendesk import ZendeskConnector, ZendeskSettings
from erasure_zendesk.client import ZendeskClient
from erasure_zendesk.redact import REDACTED
from erasure_zendesk.testing import FakeZendesk, Faults
from erasure_zendesk.testing.query import parse
from zendesk_fixtures import TOKEN as TOKEN_TEXT
from zendesk_fixtures import connector, delete_and_poll, in_call

from erasure import (
    AuthError,
    Correction,
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    RequestType,
    Subject,
    TransientError,
    hookimpl,
)
from erasure.orchestrator import RequestSpec

BOB = "bob@example.org"
BOB_SECOND = "robert.baker@example.net"
BOB_PHONE = "+4930123456"


def subject(*pairs: tuple[str, str], key: str = "req-bob") -> Subject:
    return Subject(key, tuple(Identifier.parse(t, v) for t, v in pairs))


def kinds(findings: Sequence[Finding]) -> dict[str, str]:
    return {f.ref: f.kind for f in findings}


def world(fake: FakeZendesk) -> dict[str, int]:
    """Bob (three identities) in every role, Carol and Dan whose tickets he touches, Jim
    the lookalike, an agent."""
    st = fake.store
    ids = {
        "bob": st.add_user("Bob Baker", BOB, BOB_PHONE, extra_emails=[BOB_SECOND],
                           socials=[("twitter", "bobbaker")]),
        "carol": st.add_user("Carol Cook", "carol@example.org", "+4930555111"),
        "dan": st.add_user("Dan Dyer", "dan@example.org"),
        "jim": st.add_user("Jim Bob", "jimbob@example.org", "+49301234567"),
        "agent": st.add_user("Ann Agent", "ann@corp.example", role="agent"),
    }
    b, c, d, a = ids["bob"], ids["carol"], ids["dan"], ids["agent"]
    ids["requested"] = st.add_ticket(b, "My kettle", [(b, "The kettle leaks."),
                                                      (a, "Sorry to hear that.")],
                                     attachments={0: ["kettle.jpg"]})
    ids["archived"] = st.add_ticket(b, "Old order", [(b, "Where is order 12?")],
                                    archived=True)
    ids["cc"] = st.add_ticket(c, "Party", [(c, "Carol's own words")], ccs=[b])
    ids["follower"] = st.add_ticket(c, "Trip", [(c, "Carol plans a trip")], followers=[b])
    ids["commented"] = st.add_ticket(d, "Dan's question", [(d, "Dan asks"),
                                                           (b, "Bob answers Dan")],
                                     attachments={1: ["bob-notes.pdf"]})
    ids["jims"] = st.add_ticket(ids["jim"], "Jim's", [(ids["jim"], "Jim writes")])
    return ids


def test_user_with_several_identities_and_tickets_in_every_role(fake: FakeZendesk) -> None:
    ids = world(fake)
    conn = connector(fake)
    # the second email alone finds everything: identities, not only the primary email
    found = list(conn.find([subject(("email", BOB_SECOND))]))
    want = {f"user/{ids['bob']}": "user", f"ticket/{ids['requested']}": "ticket",
            f"ticket/{ids['archived']}": "ticket",
            f"ticket/{ids['cc']}": "ticket_participation",
            f"ticket/{ids['follower']}": "ticket_participation",
            f"ticket/{ids['commented']}": "ticket_participation"}
    assert kinds(found) == want
    records = {r.finding.ref: r.data for r in conn.export(found)}
    idents = {(i["type"], i["value"]) for i in records[f"user/{ids['bob']}"]["identities"]}
    assert idents == {("email", BOB), ("email", BOB_SECOND), ("phone_number", BOB_PHONE),
                      ("twitter", "bobbaker")}
    mine = records[f"ticket/{ids['requested']}"]["comments"]
    assert mine[0]["attachments"] == ["kettle.jpg"] and len(mine) == 2
    # someone else's ticket: only what Bob wrote
    theirs = records[f"ticket/{ids['commented']}"]["comments"]
    assert [c["body"] for c in theirs] == ["Bob answers Dan"]

    outcomes = {o.finding.ref: o.status for o in delete_and_poll(conn, found)}
    # cc'd and following only: no text of Bob's there; the reference to his user is
    # scrubbed with the user
    nothing = {f"ticket/{ids['cc']}", f"ticket/{ids['follower']}"}
    assert {r for r, s in outcomes.items() if s is ItemStatus.ALREADY_DONE} == nothing
    assert {s for r, s in outcomes.items() if r not in nothing} == {ItemStatus.DONE}
    st = fake.store
    assert st.users[ids["bob"]]["state"] == "purged"
    assert not [i for i in st.identities.values() if i["user_id"] == ids["bob"]]
    for t in ("requested", "archived"):
        assert st.tickets[ids[t]]["state"] == "purged"
    dans = st.comments[ids["commented"]]
    assert dans[0]["body"] == "Dan asks"  # the other requester untouched
    assert set(dans[1]["body"]) == {REDACTED}
    assert dans[1]["attachments"][0]["file_name"] == "redacted.txt"
    for t, text in (("cc", "Carol's own words"), ("follower", "Carol plans a trip")):
        assert st.tickets[ids[t]]["state"] == "live"
        assert st.comments[ids[t]][0]["body"] == text
    assert st.users[ids["jim"]]["state"] == "live"
    assert st.comments[ids["jims"]][0]["body"] == "Jim writes"
    assert list(conn.lookup(found)) == []
    assert list(conn.find([subject(("email", BOB), ("phone", BOB_PHONE))])) == []


def test_someone_elses_ticket_quoting_the_subject_is_redacted(fake: FakeZendesk) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB, BOB_PHONE)
    carol = st.add_user("Carol Cook", "carol@example.org")
    quoting = st.add_ticket(carol, "Neighbour", [
        (carol, f"Please call my neighbour on {BOB_PHONE} or write to {BOB}."),
        (carol, "And jimbob@example.org is someone else."),
    ])
    conn = connector(fake, search_text=True)
    found = list(conn.find([subject(("email", BOB), ("phone", BOB_PHONE))]))
    assert kinds(found) == {f"user/{bob}": "user", f"ticket/{quoting}": "ticket_mention"}
    outcomes = delete_and_poll(conn, found)
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    first, second = (c["body"] for c in st.comments[quoting])
    assert first == (f"Please call my neighbour on {REDACTED * len(BOB_PHONE)} or write to "
                     f"{REDACTED * len(BOB)}.")
    assert second == "And jimbob@example.org is someone else."
    ticket = st.tickets[quoting]
    assert ticket["state"] == "live" and ticket["requester_id"] == carol
    assert st.users[carol]["state"] == "live"
    again = delete_and_poll(conn, found)
    assert {o.status for o in again} == {ItemStatus.ALREADY_DONE}
    assert list(conn.lookup(found)) == []


def test_tickets_kept_by_policy_are_redacted_not_deleted(fake: FakeZendesk) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB)
    agent = st.add_user("Ann Agent", "ann@corp.example", role="agent")
    kept = st.add_ticket(bob, "Invoice dispute", [(bob, "I dispute invoice 7."),
                                                  (agent, "Noted, case closed.")],
                         archived=True, attachments={0: ["invoice-7.pdf"]})
    conn = connector(fake, requested_tickets="redact")
    found = list(conn.find([subject(("email", BOB))]))
    assert kinds(found) == {f"user/{bob}": "user", f"ticket/{kept}": "ticket"}
    assert list(conn.lookup(found)) == found
    outcomes = delete_and_poll(conn, found)
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert st.tickets[kept]["state"] == "live"  # kept: archived, closed, still there
    mine, agents = st.comments[kept]
    assert set(mine["body"]) == {REDACTED}
    assert mine["attachments"][0]["file_name"] == "redacted.txt"
    assert agents["body"] == "Noted, case closed."
    assert st.users[bob]["state"] == "purged"
    assert "DELETE /tickets/destroy_many" not in fake.counts
    assert list(conn.lookup(found)) == []


def test_more_results_than_the_search_cap(fake: FakeZendesk) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB)
    carol = st.add_user("Carol Cook", "carol@example.org")
    for n in range(1050):
        st.add_ticket(carol, f"Newsletter {n}", [(carol, "news")], ccs=[bob])
    conn = connector(fake, find_commented=False)
    # zenpy on its own stops at the cap without a word (the fake answers 422 past it)
    alone = list(conn.client._zenpy.search(type="ticket", cc=bob))
    assert len(alone) == 1000
    found = list(conn.find([subject(("email", BOB))]))
    assert Counter(f.kind for f in found) == {"ticket_participation": 1050, "user": 1}
    assert fake.counts["GET /search/export"] == 11  # 100 a page, cursor links followed


def test_a_user_already_soft_deleted_is_found_and_purged(fake: FakeZendesk) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB, BOB_PHONE)
    ticket = st.add_ticket(bob, "Hello", [(bob, "Bob's text")])
    st.soft_delete_user(bob)  # an agent's delete: every field kept, out of search
    conn = connector(fake)
    found = list(conn.find([subject(("phone", BOB_PHONE))]))
    assert kinds(found) == {f"user/{bob}": "user", f"ticket/{ticket}": "ticket"}
    assert len(list(conn.lookup(found))) == 2  # the soft-deleted user still holds data
    outcomes = delete_and_poll(conn, found)
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    assert st.users[bob]["state"] == "purged" and st.tickets[ticket]["state"] == "purged"
    assert list(conn.lookup(found)) == []


def test_a_permanent_deletion_job_failing_one_ticket_fails_it(fake: FakeZendesk) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB)
    t1 = st.add_ticket(bob, "One", [(bob, "first")])
    t2 = st.add_ticket(bob, "Two", [(bob, "second")])
    st.failing_tickets[t2] = "purge"  # fails inside a "completed" job status
    conn = connector(fake)
    found = list(conn.find([subject(("email", BOB))]))
    outcomes = {o.finding.ref: o for o in delete_and_poll(conn, found)}
    assert outcomes[f"ticket/{t1}"].status is ItemStatus.DONE
    assert outcomes[f"ticket/{t2}"].status is ItemStatus.FAILED
    # the user is kept so that a retry can still find what is left
    assert outcomes[f"user/{bob}"].status is ItemStatus.FAILED
    assert st.tickets[t2]["state"] == "deleted" and st.users[bob]["state"] == "live"
    assert {f.ref for f in conn.lookup(found)} == {f"ticket/{t2}", f"user/{bob}"}


def test_rate_limits_and_server_errors_are_classified(fake: FakeZendesk) -> None:
    fake.store.add_user("Bob Baker", BOB)
    conn = connector(fake)
    fake.faults.rate_limited, fake.faults.retry_after = 1.0, 17
    with pytest.raises(TransientError) as raised:
        list(conn.find([subject(("email", BOB))]))
    assert raised.value.retry_after == 17  # for the host to honour: zenpy did not sleep
    fake.faults.rate_limited, fake.faults.unavailable = 0.0, 1.0
    with pytest.raises(TransientError):
        list(conn.find([subject(("email", BOB))]))
    fake.faults.unavailable = 0.0
    wrong = ZendeskConnector("helpdesk", conn.settings.model_copy(update={
        "token": type(conn.settings.token)("not-the-token")}))
    with pytest.raises(AuthError):
        wrong.check()
    conn.check()
    fake.agent_role = "agent"  # cannot delete for good: said before any request runs
    with pytest.raises(AuthError, match="not an admin"):
        conn.check()


def test_hostile_values_and_foreign_user_ids_match_nothing(fake: FakeZendesk) -> None:
    bob = fake.store.add_user("Bob Baker", BOB)
    conn = connector(fake)
    hostile = Subject("req-x", (
        Identifier.parse("email", "x@example.org"),
        Identifier(IdentifierType.EMAIL, 'email:"*" OR "a'),
        Identifier(IdentifierType.EMAIL, "*"),
        Identifier(IdentifierType.USER_ID, f"{bob} OR 1"),
        Identifier(IdentifierType.USER_ID, "u-bob"),
    ))
    assert list(conn.find([hostile])) == []
    found = list(conn.find([subject(("user_id", str(bob)))]))
    assert kinds(found) == {f"user/{bob}": "user"}


# through the host ------------------------------------------------------------------------

def _erase(orch, email: str) -> str:
    return orch.submit(RequestSpec(RequestType.ERASURE, (("email", email),), verified=True))


def _run_until_done(orch, rid: str, runs: int = 80) -> None:
    start = time.time()
    for n in range(runs):
        # an hour later each time: work deferred after exhausted retries is due again
        orch.clock = lambda t=start + 3600 * n: t
        orch.run()
        if orch.ledger.get_request(rid).outcome is not None:
            return
    tasks = [(t.stage, t.summary) for t in orch.ledger.tasks_for([rid])]
    raise AssertionError(f"the request never ended: {tasks}")


def _two_people(fake: FakeZendesk) -> dict[str, int]:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB, BOB_PHONE)
    jim = st.add_user("Jim Bob", "jimbob@example.org")
    return {"bob": bob, "jim": jim,
            "t1": st.add_ticket(bob, "One", [(bob, "first")]),
            "t2": st.add_ticket(bob, "Two", [(bob, "second")]),
            "commented": st.add_ticket(jim, "Jim's", [(jim, "Jim asks"), (bob, "Bob says")]),
            "jims": st.add_ticket(jim, "Jim's own", [(jim, "Jim writes")])}


def _erased(fake: FakeZendesk, ids: dict[str, int]) -> None:
    st = fake.store
    assert st.users[ids["bob"]]["state"] == "purged"
    assert st.tickets[ids["t1"]]["state"] == st.tickets[ids["t2"]]["state"] == "purged"
    assert set(st.comments[ids["commented"]][1]["body"]) == {REDACTED}
    assert st.comments[ids["commented"]][0]["body"] == "Jim asks"
    assert st.users[ids["jim"]]["state"] == "live"
    assert st.comments[ids["jims"]][0]["body"] == "Jim writes"


def test_thirty_percent_429s_end_complete(fake: FakeZendesk, make_orch) -> None:
    ids = _two_people(fake)
    orch = make_orch(fake)
    fake.faults = Faults(rate_limited=0.3, retry_after=0, seed=23)
    rid = _erase(orch, BOB)
    _run_until_done(orch, rid)
    assert orch.ledger.get_request(rid).outcome == "completed"
    _erased(fake, ids)
    (receipt,) = [r["body"] for r in orch.ledger.receipts(rid) if r["body"].get("system")
                  == "helpdesk"]
    assert receipt["outcome"] == "completed"
    assert fake.faults_answered["429"] > 10


def test_503_after_committed_writes_do_not_fail_the_retry(fake: FakeZendesk,
                                                          make_orch) -> None:
    ids = _two_people(fake)
    orch = make_orch(fake)
    for route in ("DELETE /users/{id}", "DELETE /deleted_users/{id}",
                  "PUT /comment_redactions/{cid}", "PUT /users/{id}/tags",
                  "DELETE /deleted_tickets/destroy_many"):
        fake.faults.after_commit[route] = 1
    rid = _erase(orch, BOB)
    _run_until_done(orch, rid)
    assert orch.ledger.get_request(rid).outcome == "completed"
    assert sum(fake.faults.after_commit.values()) == 0  # every fault was served
    _erased(fake, ids)


class Crash(BaseException):
    """Stands for the process dying where it is raised."""


class SubmitThenDie(ZendeskConnector):
    """Submits the deletion job, then the process dies before the ledger hears of it."""

    name = "zendesk-submit-then-die"
    armed = True

    def delete(self, findings: Sequence[Finding]) -> Iterator[ItemOutcome]:
        outcomes = list(super().delete(findings))
        if type(self).armed and any(o.status is ItemStatus.PENDING for o in outcomes):
            type(self).armed = False
            raise Crash()
        return iter(outcomes)


class DiePlugin:
    @hookimpl
    def erasure_register_connectors(self, registry) -> None:
        registry.add(SubmitThenDie)


def test_killed_between_job_submit_and_ledger_write_submits_one_job(
        fake: FakeZendesk, make_orch) -> None:
    ids = _two_people(fake)
    SubmitThenDie.armed = True
    orch = make_orch(fake, connector="zendesk-submit-then-die", plugins=(DiePlugin(),))
    rid = _erase(orch, BOB)
    with pytest.raises(Crash):
        orch.run()
    assert fake.counts["DELETE /tickets/destroy_many"] == 1
    with orch.ledger.tx() as conn:  # the dead process's lease runs out
        conn.exec_driver_sql("UPDATE requests SET lease_owner = NULL, lease_until = NULL")
    resumed = make_orch(fake, connector="zendesk-submit-then-die", plugins=(DiePlugin(),))
    _run_until_done(resumed, rid)
    assert resumed.ledger.get_request(rid).outcome == "completed"
    assert fake.counts["DELETE /tickets/destroy_many"] == 1, "a job was submitted twice"
    assert fake.counts["DELETE /deleted_tickets/destroy_many"] == 1
    _erased(fake, ids)


def test_a_resubmitted_call_answers_the_journalled_job(fake: FakeZendesk) -> None:
    ids = _two_people(fake)
    conn = connector(fake)
    found = [f for f in conn.find([subject(("email", BOB))]) if f.kind != "ticket_participation"]
    first = in_call("delete", ["req-bob"], lambda: list(conn.delete(found)))
    again = in_call("delete", ["req-bob"], lambda: list(conn.delete(found)))
    assert {o.handle for o in first} == {o.handle for o in again} != {None}
    assert fake.counts["DELETE /tickets/destroy_many"] == 1
    assert fake.store.tickets[ids["t1"]]["state"] == "live"  # queued, not yet run


def test_custom_user_fields_are_proposed_found_and_corrected(fake: FakeZendesk) -> None:
    st = fake.store
    st.user_fields += [
        {"key": "secondary_email", "title": "Secondary e-mail", "type": "text", "active": True},
        {"key": "mobile", "title": "Mobile", "type": "text", "active": True},
        {"key": "shoe_size", "title": "Shoe size", "type": "integer", "active": True},
    ]
    st.ticket_fields.append({"id": 360001, "title": "Callback phone", "type": "text"})
    bob = st.add_user("Bob Baker", "bob@example.org",
                      user_fields={"secondary_email": "bobby@home.example", "shoe_size": 44})
    st.add_user("Jim Bob", "jimbob@example.org",
                user_fields={"secondary_email": "jimbobby@home.example"})
    proposal = connector(fake).discover()
    assert 'user_fields = { mobile = "phone", secondary_email = "email" }' in proposal
    assert "ticket field 360001" in proposal and "shoe" not in proposal
    assert "bobby" not in proposal and TOKEN_TEXT not in proposal

    conn = connector(fake, user_fields={"secondary_email": "email", "mobile": "phone"})
    found = list(conn.find([subject(("email", "bobby@home.example"))]))
    assert [(f.ref, f.fields) for f in found] == [
        (f"user/{bob}", ("identities", "user_fields.secondary_email"))]
    fix = Correction.parse("email", "robert@home.example", subject="req-bob",
                           old=("bobby@home.example",))
    assert {o.status for o in conn.rectify(found, [fix])} == {ItemStatus.DONE}
    assert st.users[bob]["user_fields"]["secondary_email"] == "robert@home.example"
    assert st.users[bob]["email"] == "bob@example.org"  # another value, not corrected
    assert list(conn.find([subject(("email", "bobby@home.example"))])) == []


def test_a_soft_deleted_users_jobs_are_journalled_in_the_state_folder(
        fake: FakeZendesk, tmp_path) -> None:
    st = fake.store
    bob = st.add_user("Bob Baker", BOB)
    st.add_ticket(bob, "One", [(bob, "first")])
    st.soft_delete_user(bob)  # no live user to carry the journal's tag
    conn = connector(fake)
    conn.state_dir = tmp_path / "systems" / "helpdesk"  # as the host sets it
    found = list(conn.find([subject(("email", BOB))]))
    first = in_call("delete", ["req-bob"], lambda: list(conn.delete(found)))
    again = in_call("delete", ["req-bob"], lambda: list(conn.delete(found)))
    assert {o.handle for o in first} == {o.handle for o in again} != {None}
    assert fake.counts["DELETE /tickets/destroy_many"] == 1
    journal = (conn.state_dir / "zendesk-jobs.journal").read_text(encoding="utf-8")
    assert BOB not in journal and "req-bob" not in journal


def test_subdomain_urls_and_oauth() -> None:
    acme = ZendeskClient(ZendeskSettings(subdomain="acme", oauth_token="o-token-123"))
    assert acme.url("users/show_many", {"ids": "1,2"}) == (
        "https://acme.zendesk.com/api/v2/users/show_many.json?ids=1,2")
    assert acme.url("search", {"query": 'email:"a+b@x.org"'}).endswith(
        "search.json?query=email%3A%22a%2Bb%40x.org%22")  # values encoded, never raw
    acme.close()
    with FakeZendesk(oauth_token="o-token-123") as server:
        server.store.add_user("Bob Baker", BOB)
        bearer = ZendeskConnector("helpdesk", ZendeskSettings(url=server.url,
                                                              oauth_token="o-token-123"))
        bearer.check()
        assert len(list(bearer.find([subject(("email", BOB))]))) == 1


def test_verification_reads_by_id_while_search_lags(fake: FakeZendesk) -> None:
    ids = _two_people(fake)
    fake.store.lag_search()  # the index keeps what it saw now, through the erasure
    conn = connector(fake)
    bob = subject(("email", BOB), ("phone", BOB_PHONE))
    found = list(conn.find([bob]))
    assert len(found) == 4
    outcomes = delete_and_poll(conn, found)
    assert {o.status for o in outcomes} <= {ItemStatus.DONE, ItemStatus.ALREADY_DONE}
    _erased(fake, ids)
    stale = fake.store.searched().search(parse(f'type:ticket requester:{ids["bob"]}'))
    assert len(stale) == 2  # search still shows Bob's deleted tickets
    # ...but what the host verifies with reads items by id: nothing left, no false residue
    assert list(conn.find([bob])) == []
    assert list(conn.lookup(found)) == []


def test_a_ticket_deleted_since_the_index_saw_it_is_not_found(fake: FakeZendesk) -> None:
    ids = _two_people(fake)
    st = fake.store
    st.lag_search()
    job = st.submit("delete", [ids["t1"]])  # an agent deleted it; search has not caught up
    while st.poll_job(job.id).status != "completed":
        pass
    assert len(st.searched().search(parse(f'type:ticket requester:{ids["bob"]}'))) == 2
    found = list(connector(fake).find([subject(("email", BOB))]))
    assert f"ticket/{ids['t1']}" not in {f.ref for f in found}
    assert f"ticket/{ids['t2']}" in {f.ref for f in found}


def test_commenters_are_told_apart_within_a_batch(fake: FakeZendesk) -> None:
    # one commenter search for both; its single hit is attributed by the ticket's comments
    st = fake.store
    bob = st.add_user("Bob Baker", BOB)
    carol = st.add_user("Carol Cook", "carol@example.org")
    dan = st.add_user("Dan Dyer", "dan@example.org")
    dans = st.add_ticket(dan, "Dan's", [(dan, "Dan asks"), (bob, "Bob answers")])
    found = list(connector(fake).find([
        subject(("email", BOB)), subject(("email", "carol@example.org"), key="req-carol")]))
    assert {(f.subject, f.ref, f.kind) for f in found} == {
        ("req-bob", f"user/{bob}", "user"), ("req-carol", f"user/{carol}", "user"),
        ("req-bob", f"ticket/{dans}", "ticket_participation")}
    assert fake.counts["GET /tickets/{id}/comments"] == 1
