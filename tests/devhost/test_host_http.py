"""The request a function gets (as the host's ToRpcHttp builds it), malformed requests, function keys."""

from __future__ import annotations

import json
import socket

import pytest
import requests

ERROR_KEYS = {"status", "type", "message", "debug", "data"}


def raw(host, data: bytes) -> tuple[int, dict, bytes]:
    """Send bytes as they are; (status, headers, body) of the answer."""
    with socket.create_connection(("127.0.0.1", host.port), timeout=10) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, body


def test_headers_query_and_route_values_as_the_host_converts_them(host):
    r = raw(
        host,
        b"GET /api/inspect/a%20b/c%2Fd/?x=1&X=2&empty=&e2=&e2=&q=a+b HTTP/1.1\r\nHost: h\r\n"
        b"X-Multi: one\r\nx-multi: two\r\nX-Empty: \r\nConnection: close\r\n\r\n",
    )
    status, _, body = r
    assert status == 200
    got = json.loads(body)
    assert got["headers"]["x-multi"] == "one,two"  # StringValues.ToString(): ',' and no space
    assert all(name == name.lower() for name in got["headers"])
    assert got["headers"]["x-empty"] == ""
    assert got["params"] == {"x": "1,2", "q": "a b"}  # case-insensitive keys; empty values left out
    assert got["route"] == {"rest": "a b/c%2Fd/"}  # decoded but %2F; the trailing slash kept
    assert got["url"] == "http://h/api/inspect/a b/c%2Fd/?x=1&X=2&empty=&e2=&e2=&q=a+b"
    assert got["thread"].startswith("devhost-worker")  # sync functions run on the worker's pool


def test_body_only_with_a_content_length(host):
    assert requests.post(f"{host.url}/api/inspect/x", data=b"hello").json()["body"] == "hello"
    status, _, body = raw(
        host,
        b"POST /api/inspect/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    assert status == 200 and json.loads(body)["body"] == ""  # chunked: ContentLength is null, no body


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"GET /api/ping HTTP/1.1\r\nHost: h\r\nX-Bad: a\x00b\r\n\r\n", 400),
        (b"GET /api/ping HTTP/1.1\r\nHost: h\r\nX-Bad: a\rb\r\n\r\n", 400),
        (b"GET /api/ping HTTP/1.1\r\nHost: h\r\nX-Bad\nNext: x\r\n\r\n", 400),
        (b"POST /api/inspect/x HTTP/1.1\r\nHost: h\r\nContent-Length: abc\r\n\r\n", 400),
        (b"POST /api/inspect/x HTTP/1.1\r\nHost: h\r\nContent-Length: -5\r\n\r\n", 400),
        (b"GET /api/ping HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 40_000 + b"\r\n\r\n", 431),
        (b"GET /api/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: h\r\n\r\n", 414),
    ],
    ids=["nul", "cr", "lf", "content-length-text", "content-length-negative", "header-40k", "line-9k"],
)
def test_malformed_requests_get_the_json_error_body(host, request_bytes, status):
    got, headers, body = raw(host, request_bytes)
    assert got == status
    assert headers["content-type"].startswith("application/json")
    assert set(json.loads(body)) == ERROR_KEYS and json.loads(body)["status"] == status


def test_a_ten_thousand_character_header_reaches_the_function_as_on_kestrel(host):
    """Kestrel allows 32 KB of headers in all, so a 10,000-character one is passed on (and the app answers)."""
    r = requests.get(f"{host.url}/api/inspect/x", headers={"X-Long": "a" * 10_000})
    assert r.status_code == 200 and len(r.json()["headers"]["x-long"]) == 10_000


def test_unmatched_routes_get_the_json_error_body(host):
    for method, path in (("GET", "/api/nowhere"), ("PATCH", "/api/inspect/x"), ("GET", "/nothing")):
        r = requests.request(method, f"{host.url}{path}")
        assert r.status_code == 404 and set(r.json()) == ERROR_KEYS


KEYS = {
    "masterKey": "the-master",
    "functionKeys": {"default": "host-key"},
    "systemKeys": {"ext": "system-key"},
    "functions": {"ping": {"own": "ping-key"}},
}


@pytest.fixture
def keyed_host(make_host, tmp_path):
    (tmp_path / "keys.json").write_text(json.dumps(KEYS))
    return make_host(settings={"DEVHOST_REQUIRE_KEYS": "true", "DEVHOST_KEYS_FILE": str(tmp_path / "keys.json")})


def test_function_keys_are_enforced_when_asked(keyed_host, sample_app):
    url = keyed_host.url
    r = requests.get(f"{url}/api/ping")
    assert r.status_code == 401 and r.content == b""  # UnauthorizedResult: empty body, function not run
    assert requests.get(f"{url}/api/ping", headers={"x-functions-key": "wrong"}).status_code == 401
    for key in ("host-key", "ping-key", "the-master"):
        assert requests.get(f"{url}/api/ping", headers={"x-functions-key": key}).text == "pong"
        assert requests.get(f"{url}/api/ping?code={key}").text == "pong"
    assert requests.get(f"{url}/api/ping", headers={"x-functions-key": "system-key"}).status_code == 401
    # the header wins over the query, even when it is wrong
    assert requests.get(f"{url}/api/ping?code=host-key", headers={"x-functions-key": "x"}).status_code == 401
    # another function's own key does not open this one
    assert requests.get(f"{url}/api/items/special", headers={"x-functions-key": "ping-key"}).status_code == 401
    # ANONYMOUS routes need none; ADMIN routes only the master key
    assert requests.get(f"{url}/api/echo/bob").status_code == 201
    assert requests.get(f"{url}/api/level/admin", headers={"x-functions-key": "host-key"}).status_code == 401
    assert requests.get(f"{url}/api/level/admin", headers={"x-functions-key": "the-master"}).text == "admin"


def test_keys_from_settings(make_host):
    host = make_host(settings={"DEVHOST_REQUIRE_KEYS": "1", "DEVHOST_FUNCTION_KEY": "k1"})
    assert requests.get(f"{host.url}/api/ping").status_code == 401
    assert requests.get(f"{host.url}/api/ping", headers={"x-functions-key": "k1"}).text == "pong"


def test_keys_are_ignored_by_default_like_func_start(host):
    assert requests.get(f"{host.url}/api/ping").text == "pong"
