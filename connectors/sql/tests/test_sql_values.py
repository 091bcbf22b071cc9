"""Identifiers read from rows take the host's normal form, or none at all."""

from __future__ import annotations

import pytest
from erasure_sql.values import db_normaliser

from erasure import Identifier, IdentifierType

T = IdentifierType


@pytest.mark.parametrize(("itype", "raw", "normal"), [
    (T.EMAIL, "  Bob@Example.ORG ", "bob@example.org"),
    (T.EMAIL, "not an address", None),
    (T.EMAIL, "", None),
    (T.PHONE, "+4930123456", "+4930123456"),
    (T.PHONE, " +49 30 123456 ", "+4930123456"),
    (T.PHONE, "030 123456", None),  # no country: never guessed
    (T.NAME, "  Jim   Bob ", "Jim Bob"),
    (T.NAME, "Jim\x00Bob", None),
    (T.CUSTOMER_ID, 12345, "12345"),
    (T.CUSTOMER_ID, "  ", None),
    (T.IP, " 2001:DB8::1 ", "2001:db8::1"),
    (T.IP, "999.1.1.1", None),
])
def test_row_values_normalise_like_the_host(itype: IdentifierType, raw: object,
                                            normal: str | None) -> None:
    assert db_normaliser(itype)(raw) == normal
    if normal is not None and isinstance(raw, str) and itype is not T.NAME:
        assert Identifier.parse(itype, raw).value == normal  # the same form a request gets
