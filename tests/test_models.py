from __future__ import annotations

import dataclasses
import inspect

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from erasure import (
    Finding,
    Identifier,
    IdentifierType,
    ItemOutcome,
    ItemStatus,
    Subject,
    UsageError,
)
from erasure.models import email_forms


@pytest.mark.parametrize(
    ("kind", "raw", "normalised"),
    [
        ("email", "Alice@Example.COM", "alice@example.com"),
        ("email", " bob@x.org", "bob@x.org"),
        ("phone", "+49 151 1234-5678", "+4915112345678"),
        ("phone", "+1 (415) 555-0100", "+14155550100"),
        ("ip", "2001:db8::0:1", "2001:db8::1"),
        ("name", "  Alice   Example ", "Alice Example"),
        ("customer_id", " C-1001 ", "C-1001"),
    ],
)
def test_identifiers_are_normalised(kind: str, raw: str, normalised: str) -> None:
    assert Identifier.parse(kind, raw).value == normalised


@pytest.mark.parametrize(
    ("kind", "raw", "problem"),
    [
        ("email", "not-an-email", "email: invalid email address"),
        ("email", "a@b", "email: invalid email address"),
        ("phone", "12ab", "phone: invalid phone number"),
        ("phone", "030 1234567", "phone: invalid phone number"),  # no country: ambiguous
        ("ip", "999.1.1.1", "ip: invalid IP address"),
        ("customer_id", "   ", "customer_id: empty identifier"),
        ("customer_id", "a\nb", "customer_id: identifier contains control characters"),
        ("shoe_size", "42", "unknown identifier type 'shoe_size'"),
    ],
)
def test_bad_identifiers_give_one_line_errors(kind: str, raw: str, problem: str) -> None:
    with pytest.raises(UsageError) as exc:
        Identifier.parse(kind, raw)
    assert str(exc.value).startswith(problem)
    assert "\n" not in str(exc.value)
    assert raw.strip() not in str(exc.value) or not raw.strip()


def test_reprs_never_show_identifier_values() -> None:
    ident = Identifier.parse("email", "secret.person@example.org")
    subject = Subject("r-1", (ident,))
    assert "secret.person" not in repr(ident)
    assert "secret.person" not in repr(subject)
    assert ident.type is IdentifierType.EMAIL


@pytest.mark.parametrize("cls", [Identifier, Subject, Finding, ItemOutcome])
def test_hot_values_keep_their_dataclass_constructor(cls: type) -> None:
    """Their faster __init__ takes the same arguments, defaults included, and stays frozen."""
    fields = dataclasses.fields(cls)
    params = list(inspect.signature(cls).parameters.values())
    assert [p.name for p in params] == [f.name for f in fields]
    assert [p.default for p in params] == [
        inspect.Parameter.empty if f.default is dataclasses.MISSING else f.default for f in fields]
    ident = Identifier(IdentifierType.EMAIL, "bob@example.org")
    finding = Finding("crm", "r1", "ref", "contact", (ident,))
    value = {Identifier: ident, Subject: Subject("r1", (ident,)), Finding: finding,
             ItemOutcome: ItemOutcome(finding, ItemStatus.DONE)}[cls]
    by_keyword = cls(**{f.name: getattr(value, f.name) for f in fields})
    assert by_keyword == value and hash(by_keyword) == hash(value)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(value, fields[0].name, None)
    with pytest.raises(TypeError):
        cls()


# The common-shape fast path of email parsing must never accept what email-validator
# refuses, nor normalise differently: it is a shortcut, not a second opinion.
_EMAIL_CHARS = "abcXYZ019.-_+@!#'\"`~|{}()[]:;,<> \\é\u00a0\u200bß"
_EMAIL_PARTS = ["a", "Bob", "x.org", "example.com", "-", "--", ".", "@", "xn--", "test",
                "localhost", "co", "1", "123", "é", "a" * 63, "b" * 64, "c" * 70, "local",
                "onion", "arpa", "_", "+tag", '"q"', "..", "x-y", "-x", "x-"]


def _validator(value: str) -> str | None:
    """email-validator's syntax check with special-use domains allowed (an address a
    system holds, e.g. user@shop.test, is an identifier like any other)."""
    from unittest import mock

    import email_validator
    from email_validator import EmailNotValidError, validate_email

    try:
        with mock.patch.object(email_validator, "SPECIAL_USE_DOMAIN_NAMES", []):
            return validate_email(value.strip(), check_deliverability=False,
                                  test_environment=True).normalized.lower()
    except EmailNotValidError:
        return None


@pytest.mark.parametrize("value", [
    "alice@example.com", "Alice.Smith+news@Mail.Example.CO.UK", "o'brien@x.org",
    "a@b.cd", "user{1}@sub-domain.example.org", "x@" + "a" * 63 + ".com"])
def test_common_email_shapes_take_the_fast_path_with_the_validators_result(value: str) -> None:
    from erasure.models import _common_email

    assert _common_email(value) is not None  # else the fast path is never used
    assert _common_email(value) == _validator(value)


@pytest.mark.parametrize("value", [
    "a@b", "a@x.test", "a@x.localhost", "a..b@x.org", ".a@x.org", "a.@x.org",
    "a@-x.org", "a@x-.org", "a@x.123", "a@xn--nxasmq6b.com", "a@ab--cd.org",
    "é@x.org", "a@é.org", '"a b"@x.org', "a@[1.2.3.4]", "b" * 65 + "@x.org",
    "a@" + "a" * 64 + ".com", "a b@x.org", "a@x.org.", "a@x..org", "Bob <a@x.org>"])
def test_unusual_email_shapes_are_left_to_email_validator(value: str) -> None:
    from erasure.models import _common_email

    assert _common_email(value) is None


@given(st.one_of(
    st.text(alphabet=_EMAIL_CHARS, max_size=40),
    st.lists(st.sampled_from(_EMAIL_PARTS), min_size=1, max_size=8).map("".join),
    st.tuples(st.lists(st.sampled_from(_EMAIL_PARTS), min_size=1, max_size=4),
              st.lists(st.sampled_from(_EMAIL_PARTS), min_size=1, max_size=5)).map(
        lambda t: "".join(t[0]) + "@" + ".".join(t[1]))))
@settings(max_examples=400, deadline=None)
def test_email_fast_path_agrees_with_email_validator(value: str) -> None:
    from erasure.models import _common_email

    fast = _common_email(value.strip())
    if fast is not None:
        assert fast == _validator(value), value
    try:
        parsed = Identifier.parse("email", value).value
    except UsageError:
        parsed = None
    assert parsed == _validator(value), value


@pytest.mark.parametrize(("raw", "forms"), [
    ("bob@example.org", ("bob@example.org",)),
    ("user@bücher.example", ("user@bücher.example", "user@xn--bcher-kva.example")),
    ("User@XN--BCHER-KVA.example", ("user@bücher.example", "user@xn--bcher-kva.example")),
    ("ÉLODIE@EXAMPLE.FR", ("élodie@example.fr",)),
])
def test_email_forms_hold_both_forms_of_an_international_domain(
        raw: str, forms: tuple[str, ...]) -> None:
    ident = Identifier.parse("email", raw)
    assert set(ident.forms()) == set(forms) and ident.forms()[0] == ident.value
    assert email_forms("user@xn--bcher-kva.example") == (
        "user@xn--bcher-kva.example", "user@bücher.example")
    assert Identifier.parse("phone", "+4930123456").forms() == ("+4930123456",)
