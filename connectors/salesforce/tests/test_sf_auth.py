"""Signing in: JWT bearer and password sessions are renewed when they expire; a given
session id cannot be, and the call fails as an authentication error naming the fix."""

from __future__ import annotations

import pytest
from erasure_salesforce import SalesforceConnector, SalesforceSettings
from erasure_salesforce.testing import FakeSalesforce
from sf_fixtures import add_person
from test_sf_find import subject

from erasure import AuthError


def test_password_session_is_renewed_when_it_expires(fake: FakeSalesforce) -> None:
    add_person(fake.org, "pat@example.org")
    c = SalesforceConnector("crm", SalesforceSettings(
        instance_url=fake.url, login_url=fake.url, auth="password",
        username=fake.username, password=fake.password, security_token=fake.security_token))
    assert len(list(c.find([subject("req-p", email="pat@example.org")]))) == 1
    fake.fail("search", "expire")
    assert len(list(c.find([subject("req-p", email="pat@example.org")]))) == 1
    assert fake.calls["login"] == 2  # signed in again, then went on
    assert fake.password not in repr(c.settings) + repr(c)
    c.close()


def test_jwt_bearer_signs_in_and_renews(fake: FakeSalesforce) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    fake.jwt_public_key = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    add_person(fake.org, "pat@example.org")
    c = SalesforceConnector("crm", SalesforceSettings(
        instance_url=fake.url, login_url=fake.url, auth="jwt", username=fake.username,
        consumer_key=fake.consumer_key, private_key=pem))
    fake.fail("queryAll", "expire")
    assert len(list(c.find([subject("req-p", email="pat@example.org")]))) == 1
    assert fake.calls["token"] == 2
    assert "PRIVATE KEY" not in repr(c.settings)
    c.close()
    wrong = SalesforceConnector("crm", SalesforceSettings(
        instance_url=fake.url, login_url=fake.url, auth="jwt", username="someone@else",
        consumer_key=fake.consumer_key, private_key=pem))
    with pytest.raises(AuthError, match="sign-in failed"):
        list(wrong.find([subject("req-p", email="pat@example.org")]))


def test_a_given_session_that_expires_is_an_auth_error(fake: FakeSalesforce,
                                                       sf_connector) -> None:
    add_person(fake.org, "pat@example.org")
    c = sf_connector()
    fake.expire_sessions()
    with pytest.raises(AuthError, match="INVALID_SESSION_ID") as info:
        list(c.find([subject("req-p", email="pat@example.org")]))
    assert "pat@example.org" not in str(info.value)


def test_settings_refuse_plain_http_and_inline_mistakes() -> None:
    with pytest.raises(ValueError, match="only for a local server"):
        SalesforceSettings(instance_url="http://acme.my.salesforce.com", auth="session",
                           session_id="x")
    with pytest.raises(ValueError, match="needs username, consumer_key, private_key"):
        SalesforceSettings(instance_url="https://acme.my.salesforce.com")
