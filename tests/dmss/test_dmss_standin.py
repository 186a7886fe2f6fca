"""The stand-in DMSS itself, spoken to with plain `requests` (not the app's client), so its behaviour is
pinned independently of the code it is used to test."""

from __future__ import annotations

import json
import threading
import time
from urllib.parse import quote

import pytest
import requests

from tests.standins.dmss import PACKAGE, DmssStandIn, make_jwt


def call(
    dmss, method, address=None, *, token=None, bearer=None, params=None, form=None, multipart=True, path=None, timeout=5
):
    headers = {}
    if token:
        headers["Access-Key"] = token
        headers["Authorization"] = f"Bearer {token}"
    if bearer:
        headers["Authorization"] = f"Bearer {bearer}"
    url = dmss.url + (path or "/api/documents/" + quote(address, safe=""))
    kwargs = {}
    if form is not None:
        if multipart:
            kwargs["files"] = {k: (None, v) for k, v in form.items()}
        else:
            kwargs["data"] = form
    return requests.request(method, url, headers=headers, params=params, timeout=timeout, **kwargs)


@pytest.fixture
def tree(dmss):
    """Root/Sub/Entity (package content by storage reference and inline), and $doc with lists."""
    entity = dmss.put("DS", {"type": "E", "name": "Entity", "value": 1}, doc_id="entity")
    stored_child = dmss.put("DS", {"type": "C", "name": "stored", "n": 7}, doc_id="child")
    sub = dmss.put(
        "DS",
        {
            "type": PACKAGE,
            "name": "Sub",
            "isRoot": False,
            "content": [dmss.storage_ref(entity), {"type": "E", "name": "Inline", "value": 2}],
        },
        doc_id="sub",
    )
    dmss.add_root_package("DS", "Root", [dmss.storage_ref(sub)])
    dmss.put(
        "DS",
        {
            "type": "Doc",
            "list": [{"type": "I", "name": "a", "attr": 1}, {"type": "I", "name": "b", "attr": 2}],
            "ref": dmss.storage_ref(stored_child),
            "link": {"type": "dmss://system/SIMOS/Reference", "referenceType": "link", "address": "$entity"},
        },
        doc_id="doc",
    )
    return dmss


def test_binds_to_loopback_on_a_free_port():
    first, second = DmssStandIn().start(), DmssStandIn().start()
    try:
        assert first.url.startswith("http://127.0.0.1:") and first.port != second.port
        assert requests.get(first.url + "/api/healthcheck", timeout=5).text == "OK"
    finally:
        first.stop()
        second.stop()


@pytest.mark.parametrize(
    "address, expected",
    [
        ("dmss://DS/$doc.list[1].attr", 2),
        ("DS/$doc.list[0]", {"type": "I", "name": "a", "attr": 1}),
        ("dmss://DS/$doc.list(name=b).attr", 2),
        ("dmss://DS/$doc.list(name=b,attr=2)", {"type": "I", "name": "b", "attr": 2}),
        ("dmss://DS/Root/Sub/Entity.value", 1),
        ("dmss://DS/Root/Sub/Inline.value", 2),
        ("dmss://DS/Root/Sub/Entity", {"type": "E", "name": "Entity", "value": 1, "_id": "entity"}),
        ("dmss://DS/$sub/Entity.value", 1),
        ("dmss://DS/$doc.ref.n", 7),
    ],
)
def test_address_resolution(tree, token, address, expected):
    response = call(tree, "GET", address, token=token)
    assert response.status_code == 200, response.text
    assert response.json() == expected


def test_depth_expands_storage_references_not_links(tree, token):
    shallow = call(tree, "GET", "DS/$doc", token=token, params={"depth": 0}).json()
    assert shallow["ref"]["referenceType"] == "storage"
    deep = call(tree, "GET", "DS/$doc", token=token, params={"depth": 1}).json()
    assert deep["ref"]["n"] == 7
    assert deep["link"]["referenceType"] == "link"
    assert call(tree, "GET", "DS/$doc", token=token, params={"depth": 1000}).status_code == 422


@pytest.mark.parametrize(
    "address",
    [
        "DS/$nope",
        "DS/$doc.list[5]",
        "DS/$doc.list(name=z)",
        "DS/$doc.missing",
        "DS/Root/Nope",
        "NODS/$x",
        "DS/$doc.missing.deeper",
    ],
)
def test_not_found(tree, token, address):
    response = call(tree, "GET", address, token=token)
    assert response.status_code == 404
    assert set(response.json()) == {"status", "type", "message", "debug", "data"}


def test_relative_addresses_are_refused(tree, token):
    assert call(tree, "GET", "~.~.x", token=token).status_code == 400


# --- auth -----------------------------------------------------------------------------------------------


def test_no_credentials_is_401(tree):
    assert call(tree, "GET", "DS/$doc").status_code == 401


def test_expired_token_and_jwt_are_401(tree, token):
    assert call(tree, "GET", "DS/$doc", token=token).status_code == 200
    tree.advance(7200)
    assert call(tree, "GET", "DS/$doc", token=token).json()["message"] == "Access key has expired"
    assert call(tree, "GET", "DS/$doc", bearer=make_jwt(expires_in=60)).status_code == 401


def test_jwt_bearer_is_accepted_and_garbage_is_not(tree):
    assert call(tree, "GET", "DS/$doc", bearer=make_jwt()).status_code == 200
    assert call(tree, "GET", "DS/$doc", bearer="not-a-jwt").status_code == 401


def test_access_key_is_checked_before_the_bearer(tree, token):
    response = requests.get(
        tree.url + "/api/documents/DS%2F%24doc",
        timeout=5,
        headers={"Access-Key": "DMSS_bad", "Authorization": "Bearer " + make_jwt()},
    )
    assert response.status_code == 401


def test_403_for_data_sources_outside_the_subjects_rights(tree, token):
    tree.add_data_source("OTHER")
    other = tree.put("OTHER", {"type": "X"})
    tree.limit("alice", ["DS"])
    assert call(tree, "GET", "DS/$doc", token=token).status_code == 200
    response = call(tree, "GET", f"OTHER/${other}", token=token)
    assert response.status_code == 403 and "OTHER" in response.json()["message"]


def test_token_exchange(tree):
    jwt_value = make_jwt("dave")
    response = call(tree, "POST", path="/api/token", bearer=jwt_value, params={"scope": "WRITE", "time_to_live": 60})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    pat = response.text
    assert pat.startswith("DMSS_") and tree.tokens[pat].subject == "dave"
    assert call(tree, "GET", "DS/$doc", token=pat).status_code == 200
    tree.advance(61)
    assert call(tree, "GET", "DS/$doc", token=pat).status_code == 401
    assert call(tree, "POST", path="/api/token").status_code == 401


# --- writes ----------------------------------------------------------------------------------------------


def test_put_replace_and_partial(tree, token):
    response = call(
        tree,
        "PUT",
        "DS/$doc.list[0]",
        token=token,
        params={"partial_update": "true"},
        form={"data": json.dumps({"attr": 10})},
    )
    assert response.json() == {"data": {"type": "I", "name": "a", "attr": 10}}
    response = call(
        tree, "PUT", "DS/$doc.list[0]", token=token, form={"data": json.dumps({"type": "J"})}, multipart=False
    )
    assert response.json() == {"data": {"type": "J"}}
    assert tree.lookup("DS/$doc.list[0]") == {"type": "J"}
    response = call(tree, "PUT", "DS/$doc", token=token, form={"data": json.dumps({"type": "New"})})
    assert tree.document("DS", "doc") == {"type": "New", "_id": "doc"}


def test_put_replace_needs_a_type_and_a_data_field(tree, token):
    assert call(tree, "PUT", "DS/$doc.list[0]", token=token, form={"data": '{"x": 1}'}).status_code == 400
    assert call(tree, "PUT", "DS/$doc.list[0]", token=token, form={"other": "{}"}).status_code == 422
    assert call(tree, "PUT", "DS/$doc.list[0]", token=token, form={"data": "{not json"}).status_code == 422
    assert tree.writes == []


def test_post_rules(tree, token):
    response = call(tree, "POST", "DS/$doc.list", token=token, form={"document": json.dumps({"type": "I"})})
    assert response.json()["uid"].startswith("dmss://DS/$")
    assert len(tree.lookup("DS/$doc.list")) == 3
    call(tree, "POST", "DS/$doc.extra", token=token, form={"document": json.dumps({"type": "X"})})
    assert tree.lookup("DS/$doc.extra")["type"] == "X"
    response = call(
        tree,
        "POST",
        "DS/Root/Sub",
        token=token,
        form={"document": json.dumps({"type": "E", "name": "New"})},
        multipart=False,
    )
    assert response.status_code == 200
    assert tree.lookup("DS/Root/Sub/New")["type"] == "E"
    assert (
        call(
            tree, "POST", "DS/Root/Sub", token=token, form={"document": json.dumps({"type": "E", "name": "New"})}
        ).status_code
        == 400
    )
    assert (
        call(tree, "POST", "dmss://DS", token=token, form={"document": json.dumps({"type": "E"})}).json()["message"]
        == "Only root packages may be added without a parent."
    )
    assert (
        call(tree, "POST", "DS/$doc.list", token=token, form={"document": json.dumps({"no": "type"})}).status_code
        == 422
    )


def test_writes_are_recorded_reads_are_not(tree, token):
    for _ in range(5):
        call(tree, "GET", "DS/$doc", token=token)
    assert tree.writes == []
    call(
        tree,
        "PUT",
        "DS/$doc.list[0]",
        token=token,
        params={"partial_update": "true"},
        form={"data": json.dumps({"attr": 3})},
    )
    assert [(w.method, w.address, w.partial_update, w.data) for w in tree.writes] == [
        ("PUT", "DS/$doc.list[0]", True, {"attr": 3})
    ]
    assert tree.writes_to("DS/$doc") == tree.writes
    assert len(tree.requests) == 6


# --- faults ----------------------------------------------------------------------------------------------


def test_fail_for_n_requests_per_endpoint(tree, token):
    tree.fail("get", 500, times=2)
    assert [call(tree, "GET", "DS/$doc", token=token).status_code for _ in range(3)] == [500, 500, 200]
    assert (
        call(
            tree, "PUT", "DS/$doc.list[0]", token=token, params={"partial_update": "true"}, form={"data": "{}"}
        ).status_code
        == 200
    )


def test_fail_for_ever_until_cleared(tree, token):
    tree.fail("*", 503)
    assert call(tree, "GET", "DS/$doc", token=token).status_code == 503
    assert call(tree, "POST", path="/api/token", token=token).status_code == 503
    tree.clear_faults()
    assert call(tree, "GET", "DS/$doc", token=token).status_code == 200


def test_slow(tree, token):
    tree.slow("get", 0.5, times=1)
    with pytest.raises(requests.Timeout):
        call(tree, "GET", "DS/$doc", token=token, timeout=0.2)
    started = time.monotonic()
    assert call(tree, "GET", "DS/$doc", token=token).status_code == 200
    assert time.monotonic() - started < 0.4


def test_drop(tree, token):
    tree.drop("post", times=1)
    with pytest.raises(requests.ConnectionError):
        call(tree, "POST", "DS/$doc.list", token=token, form={"document": json.dumps({"type": "I"})})
    assert tree.writes == []
    assert (
        call(tree, "POST", "DS/$doc.list", token=token, form={"document": json.dumps({"type": "I"})}).status_code == 200
    )


def test_concurrent_requests(tree, token):
    errors = []

    def worker():
        try:
            for _ in range(10):
                assert call(tree, "GET", "DS/$doc", token=token).status_code == 200
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and len(tree.requests) == 60


def test_repr_holds_no_token(tree, token):
    call(tree, "GET", "DS/$doc", token=token)
    assert token not in repr(tree) and token not in repr(tree.requests)


# ---- users and access control, after DMSS (src/authentication/access_control.py) ---------------------------
def test_whoami_is_the_user_dmss_sees(dmss):
    dmss.set_roles("alice", ["analyst"])
    read_only = dmss.issue_token(subject="alice", scope="READ")
    assert call(dmss, "GET", path="/api/whoami", token=read_only).json() == {
        "user_id": "alice",
        "email": None,
        "full_name": None,
        "roles": ["analyst"],
        "scope": "READ",
    }
    assert call(dmss, "GET", path="/api/whoami", bearer=make_jwt("bob", roles=["ops"])).json()["roles"] == ["ops"]
    assert call(dmss, "GET", path="/api/whoami").status_code == 401
    exchanged = call(dmss, "POST", path="/api/token", bearer=make_jwt("alice"), params={"scope": "WRITE"}).text
    assert call(dmss, "GET", path="/api/whoami", token=exchanged).json()["roles"] == ["analyst"]  # a PAT keeps them


def test_acl_decides_reads_and_writes(dmss):
    doc = dmss.put("DS", {"type": "T", "name": "job", "study": {"type": "S", "jobs": []}})
    dmss.set_acl(
        "DS", doc, owner="alice", roles={"team": "WRITE", "viewers": "READ"}, users={"carol": "WRITE"}, others="NONE"
    )
    dmss.set_roles("dave", ["team"])
    dmss.set_roles("erin", ["viewers"])
    who = {name: dmss.issue_token(subject=name) for name in ("alice", "bob", "carol", "dave", "erin")}
    read = {name: call(dmss, "GET", f"DS/${doc}", token=t).status_code for name, t in who.items()}
    assert read == {"alice": 200, "bob": 403, "carol": 200, "dave": 200, "erin": 200}
    denied = call(dmss, "GET", f"DS/${doc}.study", token=who["bob"]).json()
    assert denied["message"] == "The requested operation requires 'READ' privileges"
    assert denied["type"] == "MissingPrivilegeException"
    write = {
        name: call(
            dmss,
            "PUT",
            f"DS/${doc}",
            token=t,
            params={"partial_update": "true"},
            form={"data": json.dumps({"type": "T", "note": name})},
        ).status_code
        for name, t in who.items()
    }
    assert write == {"alice": 200, "bob": 403, "carol": 200, "dave": 200, "erin": 403}
    assert (
        call(
            dmss, "POST", f"DS/${doc}.study.jobs", token=who["erin"], form={"document": json.dumps({"type": "J"})}
        ).status_code
        == 403
    )


def test_the_scope_of_a_token_comes_first(dmss):
    doc = dmss.put("DS", {"type": "T"}, owner="alice")
    read_only = dmss.issue_token(subject="alice", scope="READ")
    assert call(dmss, "GET", f"DS/${doc}", token=read_only).status_code == 200
    response = call(
        dmss,
        "PUT",
        f"DS/${doc}",
        token=read_only,
        params={"partial_update": "true"},
        form={"data": json.dumps({"type": "T"})},
    )
    assert response.status_code == 403 and "'WRITE' privileges" in response.json()["message"]


def test_default_acl_of_an_owned_document_and_the_acl_endpoint(dmss):
    doc = dmss.put("DS", {"type": "T"}, owner="alice")
    bob = dmss.issue_token(subject="bob")
    acl = call(dmss, "GET", path="/api/acl/" + quote(f"dmss://DS/${doc}", safe=""), token=bob)
    assert acl.status_code == 200
    assert acl.json() == {"owner": "alice", "roles": {"dmss-admin": "WRITE"}, "users": {}, "others": "READ"}
    assert call(dmss, "GET", f"DS/${doc}", token=bob).status_code == 200  # others: READ
    assert (
        call(
            dmss,
            "PUT",
            f"DS/${doc}",
            token=bob,
            params={"partial_update": "true"},
            form={"data": json.dumps({"type": "T"})},
        ).status_code
        == 403
    )
    dmss.set_acl("DS", doc, owner="alice", others="NONE")
    refused = call(dmss, "GET", path="/api/acl/" + quote(f"DS/${doc}", safe=""), token=bob)
    assert refused.status_code == 403  # the ACL endpoint itself needs READ
    missing = call(dmss, "GET", path="/api/acl/" + quote("DS/$nope", safe=""), token=bob)
    assert missing.status_code == 404
    unowned = dmss.put("DS", {"type": "T"})
    assert (
        call(dmss, "GET", path="/api/acl/" + quote(f"DS/${unowned}", safe=""), token=bob).json()["others"] == "WRITE"
    )  # stored without an ACL: open


def test_reading_through_a_storage_reference_needs_read_on_both(dmss):
    child = dmss.put("DS", {"type": "C", "name": "child"})
    parent = dmss.put("DS", {"type": "P", "child": dmss.storage_ref(child)})
    dmss.set_acl("DS", child, owner="alice", others="NONE")
    bob = dmss.issue_token(subject="bob")
    assert call(dmss, "GET", f"DS/${parent}", token=bob, params={"depth": 0}).status_code == 200
    assert call(dmss, "GET", f"DS/${parent}.child", token=bob).status_code == 403


def test_a_document_added_to_a_package_inherits_its_acl(dmss):
    package = dmss.add_root_package("DS", "Root")
    dmss.set_acl("DS", package, owner="alice", users={"bob": "READ"}, others="NONE")
    alice = dmss.issue_token(subject="alice")
    uid = call(dmss, "POST", "DS/Root", token=alice, form={"document": json.dumps({"type": "T", "name": "x"})})
    new_id = uid.json()["uid"].rsplit("$", 1)[1]
    assert dmss.acl("DS", new_id) == dmss.acl("DS", package)
