"""Identifier input (issue 11, item 5): what the host accepts as a phone and as an email
before any system is searched. The forms are listed in connectors/sql/README.md."""

from __future__ import annotations

import pytest

from erasure import Identifier, UsageError


@pytest.mark.parametrize("text", [
    "+44 20 7946 O958",     # letter O for a zero: would be another person's number
    "+1 800 FLOWERS",       # keypad letters
    "tel:+4930123456",
    "+49 30 123456 ext 5",
])
def test_phones_with_letters_are_refused(text: str) -> None:
    with pytest.raises(UsageError, match="letters are not accepted") as err:
        Identifier.parse("phone", text)
    assert "\n" not in str(err.value) and "7946" not in str(err.value)


@pytest.mark.parametrize(("text", "value"), [
    ("+44 20 7946 0958", "+442079460958"),
    ("+1 (415) 555-0123", "+14155550123"),
    ("+49.30.123456", "+4930123456"),
])
def test_phones_in_international_form(text: str, value: str) -> None:
    assert Identifier.parse("phone", text).value == value


@pytest.mark.parametrize(("text", "value"), [
    ("Bob@Example.ORG", "bob@example.org"),        # lower-cased, local part too
    ("  bob@example.org ", "bob@example.org"),      # surrounding spaces dropped
    ("bob+tag@example.org", "bob+tag@example.org"),  # sub-addresses kept as given
    ("bob@bücher.de", "bob@bücher.de"),             # internationalised domain, Unicode form
    ("böb@example.org", "böb@example.org"),         # internationalised local part
])
def test_accepted_email_forms(text: str, value: str) -> None:
    assert Identifier.parse("email", text).value == value


@pytest.mark.parametrize("text", [
    "Bob Smith <bob@example.org>",  # a display name: give the address alone
    '"bob smith"@example.org',      # quoted local part
    "bob@localhost",                # no domain
    "bob@[127.0.0.1]",              # address literal
    "bob@@example.org",
    "bob@example.org.",
    "bob",
])
def test_refused_email_forms(text: str) -> None:
    with pytest.raises(UsageError, match="invalid email address"):
        Identifier.parse("email", text)
