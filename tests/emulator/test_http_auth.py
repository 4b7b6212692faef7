"""Every login flow simple-salesforce offers, against the emulator over HTTP, and their failures."""

from __future__ import annotations

import time

import jwt
import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceExpiredSession

from salesforce_emulator.client_session import emulator_session

from .conftest import api


def _count(sf: Salesforce) -> int:
    return sf.query("SELECT COUNT() FROM Account")["totalSize"]


def test_soap_password_login_gives_a_working_session(emu, session):
    f = emu.facts
    sf = Salesforce(username=f.username, password=f.password, security_token="", session=session)
    assert sf.sf_instance == f.instance_url.split("://")[1]
    assert sf.session_id != f.access_token
    assert _count(sf) > 0


def test_soap_login_with_organization_id(emu, session):
    f = emu.facts
    sf = Salesforce(username=f.username, password=f.password, organizationId=f.org_id, session=session)
    assert _count(sf) > 0


def test_soap_login_wrong_password_is_a_login_fault(emu, session):
    f = emu.facts
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(username=f.username, password="wrong", security_token="", session=session)
    assert exc.value.code == "INVALID_LOGIN"
    assert f.password not in str(exc.value)


def test_oauth_password_grant(emu, session):
    f = emu.facts
    sf = Salesforce(
        username=f.username,
        password=f.password,
        consumer_key=f.client_id,
        consumer_secret=f.client_secret,
        session=session,
    )
    assert _count(sf) > 0


def test_oauth_password_grant_bad_secret(emu, session):
    f = emu.facts
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(
            username=f.username,
            password=f.password,
            consumer_key=f.client_id,
            consumer_secret="nope",
            session=session,
        )
    assert exc.value.code == "invalid_client_id"


def test_client_credentials_with_my_domain(emu, session):
    f = emu.facts
    sf = Salesforce(
        consumer_key=f.client_id, consumer_secret=f.client_secret, domain="emulator.my", session=session
    )
    assert sf.auth_type == "client-credentials"
    assert _count(sf) > 0
    with pytest.raises(SalesforceAuthenticationFailed) as exc:
        Salesforce(consumer_key=f.client_id, consumer_secret="bad", domain="emulator.my", session=session)
    assert exc.value.code == "invalid_client"


def test_jwt_bearer_with_the_configured_certificate(emu, session, jwt_keys):
    f = emu.facts
    sf = Salesforce(
        username=f.username, consumer_key=f.client_id, privatekey=jwt_keys["key_pem"], session=session
    )
    assert sf.auth_type == "jwt-bearer"
    assert _count(sf) > 0
    sf2 = Salesforce(
        username=f.username, consumer_key=f.client_id, privatekey_file=jwt_keys["key_file"], session=session
    )
    assert _count(sf2) > 0


def _jwt_post(emu, session, claims, key):
    token = jwt.encode(claims, key, algorithm="RS256")
    return session.post(
        f"{emu.facts.login_url}/services/oauth2/token",
        data={"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": token},
    )


def test_jwt_bearer_rejections(emu, session, jwt_keys):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    f = emu.facts
    good = {
        "iss": f.client_id,
        "sub": f.username,
        "aud": "https://login.salesforce.com",
        "exp": int(time.time()) + 120,
    }
    assert _jwt_post(emu, session, good, jwt_keys["key_pem"]).status_code == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    cases = [
        ({**good}, other, "invalid_grant"),  # signed by a key that is not the configured certificate's
        ({**good, "aud": "https://evil.example.com"}, jwt_keys["key_pem"], "invalid_grant"),
        ({**good, "exp": int(time.time()) - 600}, jwt_keys["key_pem"], "invalid_grant"),
        ({**good, "sub": "someone@else.com"}, jwt_keys["key_pem"], "invalid_grant"),
        ({**good, "iss": "another-app"}, jwt_keys["key_pem"], "invalid_client_id"),
    ]
    for claims, key, error in cases:
        resp = _jwt_post(emu, session, claims, key)
        assert resp.status_code == 400, claims
        assert resp.json()["error"] == error, claims


def test_refresh_token_grant_then_direct_session(emu, session):
    f = emu.facts
    resp = session.post(
        f"{f.login_url}/services/oauth2/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": f.refresh_token,
            "client_id": f.client_id,
            "client_secret": f.client_secret,
        },
    )
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) >= {"access_token", "instance_url", "id", "token_type", "issued_at", "signature"}
    sf = Salesforce(session_id=body["access_token"], instance_url=body["instance_url"], session=session)
    assert _count(sf) > 0
    bad = session.post(
        f"{f.login_url}/services/oauth2/token", data={"grant_type": "refresh_token", "refresh_token": "nope"}
    )
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_grant"


def test_unsupported_grant_and_wrong_method(emu, session):
    f = emu.facts
    resp = session.post(f"{f.login_url}/services/oauth2/token", data={"grant_type": "magic"})
    assert resp.status_code == 400 and resp.json()["error"] == "unsupported_grant_type"
    assert session.get(f"{f.login_url}/services/oauth2/token").status_code == 405


def test_direct_session_with_the_facts_token(emu, session):
    sf = Salesforce(session_id=emu.facts.access_token, instance_url=emu.facts.instance_url, session=session)
    assert _count(sf) > 0


def test_userinfo(emu, session):
    resp = session.get(
        f"{emu.facts.instance_url}/services/oauth2/userinfo",
        headers={"Authorization": f"Bearer {emu.facts.access_token}"},
    )
    assert resp.status_code == 200
    info = resp.json()
    assert info["organization_id"] == emu.org.org_id
    assert info["preferred_username"] == emu.facts.username
    assert info["user_id"].startswith("005")
    assert session.get(f"{emu.facts.instance_url}/services/oauth2/userinfo").status_code == 401


def test_missing_or_bad_token_is_invalid_session(emu, session):
    for headers in ({}, {"Authorization": "Bearer nonsense"}, {"Authorization": "Basic abc"}):
        resp = session.get(f"{api(emu)}/sobjects", headers=headers)
        assert resp.status_code == 401
        assert resp.json() == [
            {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID", "fields": []}
        ]


def test_automatic_relogin_after_session_expires_by_request_count(emu, session):
    f = emu.facts
    sf = Salesforce(username=f.username, password=f.password, security_token="", session=session)
    emu.faults.session_max_requests = 2
    first = sf.session_id
    counts = [_count(sf) for _ in range(5)]
    assert len(set(counts)) == 1
    assert sf.session_id != first  # simple-salesforce logged in again on 401 INVALID_SESSION_ID


def test_session_expires_after_ttl_by_org_clock(emu, session):
    f = emu.facts
    sf = Salesforce(username=f.username, password=f.password, security_token="", session=session)
    direct = Salesforce(session_id=sf.session_id, instance_url=f.instance_url, session=session)
    emu.faults.session_ttl_seconds = 3600
    assert _count(direct) > 0
    emu.org.clock.advance(3601)
    with pytest.raises(SalesforceExpiredSession):
        _count(direct)  # a direct session cannot re-login: the 401 surfaces
    assert _count(sf) > 0  # a password session re-logs in


def test_revoke_ends_a_session(emu, session):
    f = emu.facts
    token = session.post(
        f"{f.login_url}/services/oauth2/token",
        data={
            "grant_type": "client_credentials",
            "client_id": f.client_id,
            "client_secret": f.client_secret,
        },
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert session.get(f"{api(emu)}/limits", headers=headers).status_code == 200
    assert session.post(f"{f.login_url}/services/oauth2/revoke", data={"token": token}).status_code == 200
    assert session.get(f"{api(emu)}/limits", headers=headers).status_code == 401


def test_plain_requests_without_rewriting_also_work(emu):
    resp = requests.get(f"{emu.facts.instance_url}/services/data/", timeout=10)
    assert resp.status_code == 200
    assert emulator_session(emu.facts).trust_env is False
