"""find and export against the fake org: related records, SOSL's traps, pages and the cap."""

from __future__ import annotations

from collections import Counter

import pytest
from erasure_salesforce.testing import FakeSalesforce
from sf_fixtures import add_person

from erasure import Identifier, IdentifierType, PermanentError, Subject

T = IdentifierType


def subject(key: str, **values: str) -> Subject:
    return Subject(key, tuple(Identifier.parse(t, v) for t, v in values.items()))


def kinds(findings) -> Counter[str]:
    return Counter(f.kind for f in findings)


def seed_whole_person(org, email: str, phone: str) -> dict[str, list[str]]:
    """A contact with an Individual, a lead, two cases (one only by SuppliedEmail), a task,
    an email message on a case and one only addressed to the person, a campaign
    membership: what Salesforce keeps when a contact goes."""
    individual = org.create("Individual", {"FirstName": "Pat", "LastName": "Doe"})
    contact = org.create("Contact", {"FirstName": "Pat", "LastName": "Doe", "Email": email,
                                     "MobilePhone": phone, "IndividualId": individual})
    lead = org.create("Lead", {"LastName": "Doe", "Company": "Acme", "Email": email.upper()})
    case1 = org.create("Case", {"ContactId": contact, "Subject": "billing"})
    case2 = org.create("Case", {"SuppliedEmail": email, "Subject": "web form"})
    task = org.create("Task", {"WhoId": lead, "Subject": "call back"})
    mail1 = org.create("EmailMessage", {"ParentId": case1, "FromAddress": "support@acme.test",
                                        "ToAddress": "support@acme.test", "Subject": "re"})
    mail2 = org.create("EmailMessage", {"FromAddress": "news@acme.test",
                                        "ToAddress": f"other@x.org; {email}", "Subject": "n"})
    campaign = org.create("Campaign", {"Name": "spring"})
    member = org.create("CampaignMember", {"CampaignId": campaign, "ContactId": contact})
    return {"Individual": [individual], "Contact": [contact], "Lead": [lead],
            "Case": [case1, case2], "Task": [task], "EmailMessage": [mail1, mail2],
            "CampaignMember": [member]}


def test_finds_a_person_and_everything_salesforce_keeps_of_them(fake: FakeSalesforce,
                                                               sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    seed_whole_person(fake.org, "other@example.org", "+4930777666")  # somebody else
    c = sf_connector()
    found = list(c.find([subject("req-pat", email="pat@example.org")]))
    assert {f.ref for f in found} == {f"{o}/{i}" for o, ids in seeded.items() for i in ids}
    assert kinds(found) == Counter({o: len(ids) for o, ids in seeded.items()})
    assert {f.subject for f in found} == {"req-pat"}
    contact = next(f for f in found if f.kind == "Contact")
    related = {(i.type, i.value) for i in contact.related}
    assert (T.PHONE, "+4930999888") in related  # for the other systems (expansion)
    assert (T.USER_ID, seeded["Contact"][0]) in related  # the record id, for this id space
    # the phone alone finds the contact (SOSL in PHONE FIELDS) and what hangs off it
    by_phone = list(c.find([subject("req-pat", phone="+49 30 999888")]))
    assert {"Contact", "Case", "CampaignMember", "EmailMessage"} <= set(kinds(by_phone))
    # export holds every record's data
    records = list(c.export(found))
    assert len(records) == len(found)
    subjects = {r.data.get("Subject") for r in records}
    assert {"billing", "web form", "call back"} <= subjects


def test_reserved_characters_are_escaped_and_matches_are_exact(fake: FakeSalesforce,
                                                               sf_connector) -> None:
    org = fake.org
    obrien = add_person(org, "sean.o'brien@example.org", first="Seán", last="O'Brien")
    plus = add_person(org, "a+b@x.org", last="Plus")
    dot = add_person(org, "a.b@x.org", last="Dot")  # SOSL's words match it too
    braces = add_person(org, "x{1}@x.org", last="Brace")
    c = sf_connector()
    people = [subject("req-o", email="sean.o'brien@example.org", name="Seán O'Brien"),
              subject("req-p", email="a+b@x.org"),
              subject("req-b", email="x{1}@x.org")]
    found = list(c.find(people))
    refs = {(f.subject, f.ref) for f in found}
    assert refs == {("req-o", f"Contact/{obrien}"), ("req-p", f"Contact/{plus}"),
                    ("req-b", f"Contact/{braces}")}
    assert f"Contact/{dot}" not in {f.ref for f in found}
    o = next(f for f in found if f.subject == "req-o")
    assert {m.type for m in o.matched} == {T.EMAIL, T.NAME}
    # the fake is as strict as Salesforce: the same search unescaped is refused
    with pytest.raises(PermanentError, match="MALFORMED_SEARCH"):
        c.api.search("FIND {\"a+b@x.org\"} IN EMAIL FIELDS RETURNING Contact(Id)", "search")
    with pytest.raises(PermanentError, match="MALFORMED_QUERY"):
        list(c.api.query("SELECT Id FROM Contact WHERE LastName = 'O'Brien'", "query"))


def test_more_records_than_a_page_and_than_the_search_cap(fake: FakeSalesforce,
                                                          sf_connector) -> None:
    org = fake.org
    org.search_cap = 20  # Salesforce's is 2,000; the fake's is set low to keep this fast
    contacts = {add_person(org, "dup@example.org", last=f"Dup{n}") for n in range(30)}
    contact = next(iter(contacts))
    cases = {org.create("Case", {"ContactId": contact, "Subject": f"c{n}"})
             for n in range(130)}  # pages of 50
    for n in range(10):
        add_person(org, f"crowd{n}@example.org")
    c = sf_connector(search_cap=20)
    assert fake.calls["query"] == 0
    found = list(c.find([subject("req-dup", email="dup@example.org"),
                         subject("req-c1", email="crowd1@example.org")]))
    mine = [f for f in found if f.subject == "req-dup"]
    assert {f.ref for f in mine if f.kind == "Contact"} == {f"Contact/{i}" for i in contacts}
    assert {f.ref for f in mine if f.kind == "Case"} == {f"Case/{i}" for i in cases}
    assert len([f for f in found if f.subject == "req-c1"]) == 1
    assert fake.calls["query_more"] >= 2  # the case pages were followed to the end
    # the capped search was asked again by SOQL (live people; queryAll is for the rest)
    fallback = fake.calls["query"]
    assert fallback >= 2  # Contact and Lead
    c2 = sf_connector(search_cap=2000)  # a connector that trusts a cut-off search...
    partial = [f for f in c2.find([subject("req-dup", email="dup@example.org")])
               if f.kind == "Contact"]
    assert len(partial) == 20  # ...misses records: why the fallback exists
    assert fake.calls["query"] == fallback


def test_a_batch_shares_its_searches(fake: FakeSalesforce, sf_connector) -> None:
    for n in range(40):
        add_person(fake.org, f"p{n}@example.org", phone=f"+4930555{n:04d}")
    c = sf_connector()
    found = list(c.find([subject(f"req-{n}", email=f"p{n}@example.org",
                                 phone=f"+4930555{n:04d}") for n in range(40)]))
    assert len({f.ref for f in found}) == 40
    assert fake.calls["search"] == 2  # one per identifier type for the whole batch


def test_hostile_user_ids_and_values_match_nothing(fake: FakeSalesforce,
                                                   sf_connector) -> None:
    add_person(fake.org, "bob@example.org")
    c = sf_connector()
    hostile = Subject("req-h", (Identifier(T.USER_ID, "' OR Id != null OR Id = '"),
                                Identifier(T.EMAIL, "x'or'1'='1\"--@example.org"),
                                Identifier(T.NAME, "*")))
    assert list(c.find([hostile])) == []


def test_a_record_id_finds_its_person_and_what_hangs_off_it(fake: FakeSalesforce,
                                                            sf_connector) -> None:
    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    seed_whole_person(fake.org, "other@example.org", "+4930777666")
    (contact,) = seeded["Contact"]
    c = sf_connector()
    for given in (contact, contact[:15]):  # the 18- and the 15-character form
        found = list(c.find([subject("req-pat", user_id=given)]))
        assert {f.kind for f in found} == {"Contact", "Case", "EmailMessage",
                                           "CampaignMember", "Individual"}, given
        assert {f.ref for f in found if f.kind == "Case"} == {f"Case/{seeded['Case'][0]}"}
