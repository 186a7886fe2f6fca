"""shared/platform/identity.py: who the caller is, from Easy Auth headers, bearer claims or an access key."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json

import jwt
import pytest

from shared.platform import identity
from shared.platform.identity import Caller, caller_from_headers

CANARY = "CANARY-7f3e1b9c-do-not-log"  # a secret value that must never show up in a Caller
OID = "00000000-0000-0000-0000-0000000000aa"


def principal_header(claims: list[dict], auth_typ: str = "aad", name_typ: str | None = None) -> str:
    body = {
        "auth_typ": auth_typ,
        "claims": claims,
        "role_typ": "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
    }
    if name_typ:
        body["name_typ"] = name_typ
    return base64.b64encode(json.dumps(body).encode()).decode()


def bearer(claims: dict) -> str:
    return "Bearer " + jwt.encode(claims, CANARY + "-signing-key-which-is-long-enough", algorithm="HS256")


def assert_no_canary(caller: Caller) -> None:
    for text in (repr(caller), str(caller), caller.display, repr(dataclasses.astuple(caller)), str(caller.claims)):
        assert CANARY not in text


# --- Easy Auth ---------------------------------------------------------------------------------------------


def test_easyauth_principal_headers():
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header(
            [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
                {"typ": "preferred_username", "val": "ada@example.com"},
                {"typ": "roles", "val": "Jobs.Run"},
                {"typ": "roles", "val": "Jobs.Read"},
            ]
        ),
        "X-MS-CLIENT-PRINCIPAL-ID": OID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "ada@example.com",
        "Authorization": bearer({"oid": "someone-else", "preferred_username": "mallory@example.com"}),
    }
    caller = caller_from_headers(headers, source="easyauth")
    assert caller == Caller(id=OID, name="ada@example.com", source="easyauth")
    assert caller.display == "ada@example.com"
    assert caller.authenticated
    assert caller.claims["roles"] == ["Jobs.Run", "Jobs.Read"]
    assert caller.claims["auth_typ"] == "aad"


def test_easyauth_header_names_are_case_insensitive():
    headers = {"x-ms-client-principal-id": OID, "x-ms-client-principal-name": "ada@example.com"}
    caller = caller_from_headers(headers, source="easyauth")
    assert (caller.id, caller.name, caller.source) == (OID, "ada@example.com", "easyauth")


def test_easyauth_principal_only_uses_claims_and_name_typ():
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header(
            [{"typ": "oid", "val": OID}, {"typ": "custom-name", "val": "Ada L."}], name_typ="custom-name"
        )
    }
    caller = caller_from_headers(headers, source="easyauth")
    assert caller.id == OID and caller.name == "Ada L." and caller.source == "easyauth"


def test_easyauth_service_principal_without_name_falls_back_to_appid():
    headers = {
        "X-MS-CLIENT-PRINCIPAL": principal_header(
            [
                {"typ": "http://schemas.microsoft.com/identity/claims/objectidentifier", "val": OID},
                {"typ": "appid", "val": "11111111-2222-3333-4444-555555555555"},
            ]
        )
    }
    caller = caller_from_headers(headers, source="easyauth")
    assert caller.id == OID
    assert caller.display == "11111111-2222-3333-4444-555555555555"


def test_easyauth_ignores_bearer_claims():
    """In the cloud only Easy Auth's validated headers count: an unverified JWT is not an identity."""
    caller = caller_from_headers(
        {"Authorization": bearer({"oid": OID, "upn": "mallory@example.com"})}, source="easyauth"
    )
    assert caller.source == "anonymous" and caller.display == "anonymous"


def test_easyauth_undecodable_principal_uses_id_header():
    headers = {"X-MS-CLIENT-PRINCIPAL": "%%% not base64 %%%", "X-MS-CLIENT-PRINCIPAL-ID": OID}
    caller = caller_from_headers(headers, source="easyauth")
    assert caller.id == OID and caller.name is None and caller.display == OID


def test_easyauth_undecodable_principal_alone_is_anonymous():
    assert caller_from_headers({"X-MS-CLIENT-PRINCIPAL": "!!!"}, source="easyauth").source == "anonymous"


def test_oversized_header_is_ignored():
    headers = {"X-MS-CLIENT-PRINCIPAL-NAME": "x" * (identity.MAX_HEADER_CHARS + 1)}
    assert caller_from_headers(headers, source="easyauth").source == "anonymous"


# --- Bearer (unverified, local only) ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "claims, expected_id, expected_name",
    [
        (
            {"oid": OID, "sub": "subject", "preferred_username": "ada@example.com", "name": "Ada"},
            OID,
            "ada@example.com",
        ),
        ({"sub": "subject", "upn": "ada@corp.example"}, "subject", "ada@corp.example"),
        ({"sub": "subject", "name": "Ada Lovelace"}, "subject", "Ada Lovelace"),
        ({"oid": OID, "appid": "app-client-id"}, OID, "app-client-id"),
        ({"sub": "subject"}, "subject", None),
    ],
)
def test_bearer_claims(claims, expected_id, expected_name):
    caller = caller_from_headers({"Authorization": bearer(claims)}, source="bearer")
    assert (caller.id, caller.name, caller.source) == (expected_id, expected_name, "bearer")
    assert caller.display == (expected_name or expected_id)
    assert caller.claims["sub" if "sub" in claims else "oid"] == claims.get("sub", claims.get("oid"))
    assert_no_canary(caller)


def test_bearer_mode_ignores_easyauth_headers():
    caller = caller_from_headers({"X-MS-CLIENT-PRINCIPAL-ID": OID}, source="bearer")
    assert caller.source == "anonymous"


@pytest.mark.parametrize(
    "authorization",
    [
        "Bearer not-a-jwt",
        "Bearer a.b",
        "Bearer a.%%%.c",
        "Bearer "
        + base64.urlsafe_b64encode(b'{"alg":"none"}').decode()
        + "."
        + base64.urlsafe_b64encode(b"[1,2]").decode()
        + ".",
        "Basic " + base64.b64encode(b"user:" + CANARY.encode()).decode(),
        "Bearer ",
        "",
    ],
)
def test_bearer_that_is_not_a_jwt_is_anonymous(authorization):
    caller = caller_from_headers({"Authorization": authorization}, source="bearer")
    assert caller.source == "anonymous"
    assert_no_canary(caller)


def test_bearer_without_identity_claims_is_anonymous():
    caller = caller_from_headers({"Authorization": bearer({"aud": "x", "scp": "read"})}, source="bearer")
    assert caller.source == "anonymous"


# --- auto ----------------------------------------------------------------------------------------------------


def test_auto_prefers_easyauth_headers():
    headers = {
        "X-MS-CLIENT-PRINCIPAL-ID": OID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "ada@example.com",
        "Authorization": bearer({"oid": "other", "upn": "other@example.com"}),
    }
    assert caller_from_headers(headers, source="auto").source == "easyauth"


def test_auto_falls_back_to_bearer():
    caller = caller_from_headers({"Authorization": bearer({"oid": OID, "upn": "ada@example.com"})}, source="auto")
    assert (caller.source, caller.display) == ("bearer", "ada@example.com")


def test_setting_selects_the_source(monkeypatch):
    headers = {"Authorization": bearer({"oid": OID, "upn": "ada@example.com"})}
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "easyauth")
    assert caller_from_headers(headers).source == "anonymous"
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "bearer")
    assert caller_from_headers(headers).source == "bearer"
    monkeypatch.delenv("CALLER_IDENTITY_SOURCE")  # default: auto
    assert caller_from_headers(headers).source == "bearer"
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "none")
    assert caller_from_headers(headers).source == "anonymous"


def test_unknown_source_is_anonymous(monkeypatch):
    monkeypatch.setenv("CALLER_IDENTITY_SOURCE", "trust-me")
    assert caller_from_headers({"X-MS-CLIENT-PRINCIPAL-ID": OID}) == identity.ANONYMOUS


# --- Access-Key -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["easyauth", "bearer", "auto"])
def test_access_key_caller_is_a_hash_never_the_key(source):
    caller = caller_from_headers({"access-key": CANARY}, source=source)
    expected = "access-key:" + hashlib.sha256(CANARY.encode()).hexdigest()[:12]
    assert caller == Caller(id=expected, name=None, source="access-key")
    assert caller.display == expected
    assert caller.claims == {}
    assert_no_canary(caller)


def test_access_key_is_stable_and_distinct():
    a1 = caller_from_headers({"Access-Key": CANARY + "1"}, source="auto")
    a2 = caller_from_headers({"Access-Key": CANARY + "1"}, source="auto")
    b = caller_from_headers({"Access-Key": CANARY + "2"}, source="auto")
    assert a1.id == a2.id != b.id


def test_identity_beats_access_key():
    headers = {"Access-Key": CANARY, "X-MS-CLIENT-PRINCIPAL-ID": OID}
    assert caller_from_headers(headers, source="easyauth").id == OID


def test_none_ignores_access_key():
    assert caller_from_headers({"Access-Key": CANARY}, source="none").source == "anonymous"


# --- anonymous, repr and str ---------------------------------------------------------------------------------


def test_no_headers_is_anonymous():
    for source in identity.SOURCES:
        caller = caller_from_headers({}, source=source)
        assert caller.source == "anonymous" and caller.id is None and caller.name is None
        assert caller.display == "anonymous" and not caller.authenticated


def test_caller_is_frozen_and_hashable():
    caller = Caller(id=OID, name="ada", source="easyauth", claims={"roles": ["a"]})
    with pytest.raises(dataclasses.FrozenInstanceError):
        caller.name = "eve"  # type: ignore[misc]
    assert hash(caller) == hash(Caller(id=OID, name="ada", source="easyauth"))


def test_canary_never_in_repr_or_str_whatever_the_headers():
    headers = {
        "Access-Key": CANARY,
        "Authorization": bearer({"oid": OID, "upn": "ada@example.com"}),
        "X-MS-CLIENT-PRINCIPAL": principal_header([{"typ": "oid", "val": OID}, {"typ": "name", "val": "Ada"}]),
        "x-functions-key": CANARY,
        "Cookie": "AppServiceAuthSession=" + CANARY,
    }
    for source in identity.SOURCES:
        caller = caller_from_headers(headers, source=source)
        assert_no_canary(caller)
        headers_without_identity = {"Authorization": "Bearer " + CANARY, "x-functions-key": CANARY}
        assert_no_canary(caller_from_headers(headers_without_identity, source=source))


def test_repr_leaves_claims_out():
    caller = Caller(id=OID, name="ada", source="bearer", claims={"secretish": "value"})
    assert "secretish" not in repr(caller)
    assert str(caller) == "ada"


# --- Easy Auth headers are only trusted where App Service Authentication can have set them ------------------


def test_easyauth_headers_ignored_on_app_service_without_auth(monkeypatch):
    monkeypatch.setenv("WEBSITE_SITE_NAME", "func-api-test")
    monkeypatch.delenv("WEBSITE_AUTH_ENABLED", raising=False)
    headers = {
        "X-MS-CLIENT-PRINCIPAL-ID": OID,
        "X-MS-CLIENT-PRINCIPAL-NAME": "spoofed@example.com",
        "Access-Key": CANARY,
    }
    caller = caller_from_headers(headers, source="easyauth")
    assert caller.source == "access-key"  # the spoofable headers are ignored, the key still identifies
    assert_no_canary(caller)


def test_easyauth_headers_trusted_on_app_service_with_auth(monkeypatch):
    monkeypatch.setenv("WEBSITE_SITE_NAME", "func-api-test")
    monkeypatch.setenv("WEBSITE_AUTH_ENABLED", "True")
    caller = caller_from_headers({"X-MS-CLIENT-PRINCIPAL-ID": OID}, source="easyauth")
    assert (caller.source, caller.id) == ("easyauth", OID)
