"""Rectification and objection beyond the contract suite: names, addresses, Individuals."""

from __future__ import annotations

from erasure_salesforce.testing import FakeSalesforce
from test_sf_find import subject

from erasure import Correction, ItemStatus, ObjectionScope


def test_rectify_a_name_and_an_address(fake: FakeSalesforce, sf_connector) -> None:
    org = fake.org
    mine = org.create("Contact", {"FirstName": "Seán", "LastName": "O'Brien",
                                  "Email": "sean@example.org", "MailingStreet": "Old Road 1"})
    namesake = org.create("Contact", {"FirstName": "Seán", "LastName": "O'Brien",
                                      "Email": "other@example.org"})
    c = sf_connector()
    found = list(c.find([subject("req-s", email="sean@example.org")]))
    fixes = [Correction.parse("name", "Sean O'Brien-Smith", subject="req-s",
                              old=("Seán O'Brien",)),
             Correction.parse("address", "New Street 2", subject="req-s")]
    assert {o.status for o in c.rectify(found, fixes)} == {ItemStatus.DONE}
    record = org.get(mine)
    assert (record["FirstName"], record["LastName"], record["Name"]) == (
        "Sean", "O'Brien-Smith", "Sean O'Brien-Smith")
    assert record["MailingStreet"] == "New Street 2"
    assert org.get(namesake)["LastName"] == "O'Brien"  # the namesake is someone else
    assert {o.status for o in c.rectify(found, fixes)} == {ItemStatus.ALREADY_DONE}


def test_objection_to_profiling_creates_and_links_an_individual(fake: FakeSalesforce,
                                                                 sf_connector) -> None:
    org = fake.org
    contact = org.create("Contact", {"LastName": "Doe", "Email": "pat@example.org"})
    lead = org.create("Lead", {"LastName": "Doe", "Company": "Acme",
                               "Email": "pat@example.org"})
    c = sf_connector()
    found = list(c.find([subject("req-p", email="pat@example.org")]))
    outcomes = list(c.object_to(found, ObjectionScope.PROFILING))
    assert {o.status for o in outcomes} == {ItemStatus.DONE}
    for person in (contact, lead):
        individual = org.get(org.get(person)["IndividualId"])
        assert individual["HasOptedOutProfiling"] is True
        assert individual["HasOptedOutProcessing"] is False  # not a restriction
        assert org.get(person)["HasOptedOutOfEmail"] is False  # nor marketing
    again = list(c.object_to(list(c.find([subject("req-p", email="pat@example.org")])),
                             ObjectionScope.PROFILING))
    assert {o.status for o in again} == {ItemStatus.ALREADY_DONE}


def test_a_configured_object_keeps_the_other_standard_objects(fake: FakeSalesforce,
                                                              sf_connector) -> None:
    org = fake.org
    contact = org.create("Contact", {"LastName": "Doe", "Email": "pat@example.org"})
    case = org.create("Case", {"ContactId": contact, "SuppliedEmail": "pat@example.org",
                               "SuppliedName": "Pat Doe", "Subject": "kept for 6 years"})
    c = sf_connector(objects={"Case": {"email": ["SuppliedEmail"], "links": ["ContactId"],
                                       "policy": "keep", "anonymise": {
                                           "SuppliedEmail": "", "SuppliedName": ""}},
                              "Task": {"skip": True}})
    assert "Contact" in c.settings.objects and "Task" not in c.settings.objects
    found = list(c.find([subject("req-p", email="pat@example.org")]))
    assert {f.kind for f in found} == {"Contact", "Case"}
    outcomes = {o.finding.kind: o for o in c.delete(found)}
    assert outcomes["Case"].status is ItemStatus.DONE  # kept, anonymised
    assert outcomes["Contact"].status is ItemStatus.PENDING  # the hardDelete job
    kept = org.get(case)
    assert (kept["SuppliedEmail"], kept["SuppliedName"], kept["Subject"]) == (
        None, None, "kept for 6 years")


def test_rectification_restriction_and_objection_through_the_host(fake: FakeSalesforce,
                                                                  sf_host) -> None:
    from sf_fixtures import receipt, run_until_done
    from test_sf_find import seed_whole_person

    from erasure import RequestType
    from erasure.orchestrator import RequestSpec

    seeded = seed_whole_person(fake.org, "pat@example.org", "+4930999888")
    orch, clock = sf_host()
    pat = (("email", "pat@example.org"),)
    fix = orch.submit(RequestSpec(RequestType.RECTIFICATION, pat, verified=True,
                                  corrections=(("phone", "+4930111222"),)))
    run_until_done(orch, clock, fix)
    assert receipt(orch, fix)["outcome"] == "completed", receipt(orch, fix)
    (contact,) = seeded["Contact"]
    assert fake.org.get(contact)["MobilePhone"] == "+4930111222"
    limit = orch.submit(RequestSpec(RequestType.RESTRICTION, pat, verified=True))
    run_until_done(orch, clock, limit)
    assert receipt(orch, limit)["outcome"] == "completed"
    (individual,) = seeded["Individual"]
    assert fake.org.get(individual)["HasOptedOutProcessing"] is True
    objection = orch.submit(RequestSpec(RequestType.OBJECTION, pat, verified=True,
                                        objection_scope="marketing"))
    run_until_done(orch, clock, objection)
    assert receipt(orch, objection)["outcome"] == "completed"
    assert fake.org.get(individual)["HasOptedOutSolicit"] is True
    assert fake.org.get(contact)["HasOptedOutOfEmail"] is True
