"""HTTP routing: templates, constraints, optional and catch-all parameters, precedence, methods, 404/405."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import requests

from devhost.routing import RouteTemplate, Router

ERROR_KEYS = {"status", "type", "message", "debug", "data"}


def seg(path):
    return path.strip("/").split("/")


def test_template_parameters_and_constraints():
    assert RouteTemplate("users/{id}").match(seg("users/42")) == {"id": "42"}
    assert RouteTemplate("users/{id:int}").match(seg("users/abc")) is None
    assert RouteTemplate("users/{id:int:min(10)}").match(seg("users/9")) is None
    gid = str(uuid.uuid4())
    assert RouteTemplate("items/{id:guid}").match(seg(f"items/{gid}")) == {"id": gid}
    assert RouteTemplate("items/{id:guid}").match(seg("items/nope")) is None
    assert RouteTemplate("a/{b?}").match(seg("a")) == {"b": None}
    assert RouteTemplate("a/{b?}").match(seg("a/x")) == {"b": "x"}
    assert RouteTemplate("files/{*rest}").match(seg("files/x/y/z")) == {"rest": "x/y/z"}
    assert RouteTemplate("files/{name}.{ext}").match(seg("files/report.pdf")) == {"name": "report", "ext": "pdf"}


def test_encoded_slash_stays_encoded_in_route_values():
    assert RouteTemplate("jobs/{name}").match(["jobs", "a%2Fb%20c"]) == {"name": "a%2Fb c"}


def test_first_route_in_function_name_order_wins_and_a_method_mismatch_is_404():
    """The real host: routes tried in case-insensitive function-name order, first template+method match wins."""
    router = Router("api")
    router.add("b_param", "items/{id}", ["GET"])
    router.add("A_catch", "items/{*rest}", ["GET"])
    router.add("c_literal", "items/special", ["GET"])
    assert router.resolve("GET", "/api/items/special")[0].function_name == "A_catch"
    assert router.most_specific("GET", "/api/items/special").function_name == "c_literal"
    assert router.most_specific("GET", "/api/items/7").function_name == "b_param"
    assert router.resolve("POST", "/api/items/7") == (None, None)
    assert router.resolve("GET", "/other/items/7") == (None, None)

    router = Router("api")
    router.add("z_catch", "items/{*rest}", ["GET"])
    router.add("m_param", "items/{id}", ["GET"])
    router.add("a_literal", "items/special", ["GET"])
    assert router.resolve("GET", "/api/items/special")[0].function_name == "a_literal"
    assert router.resolve("GET", "/api/items/7")[0].function_name == "m_param"
    assert router.resolve("GET", "/api/items/7/8")[0].function_name == "z_catch"


def test_catch_all_keeps_a_trailing_slash_and_an_empty_one_is_absent():
    router = Router("api")
    router.add("files", "files/{*rest}", ["GET"])
    assert router.resolve("GET", "/api/files/a/b/")[1] == {"rest": "a/b/"}
    assert router.resolve("GET", "/api/files/a%2Fb%20c")[1] == {"rest": "a%2Fb c"}
    assert router.resolve("GET", "/api/files/")[1] == {"rest": None}
    assert router.resolve("GET", "/api/FILES")[1] == {"rest": None}


def test_http_functions_through_the_host(host):
    gid = str(uuid.uuid4())
    r = requests.get(f"{host.url}/api/items/{gid}")
    assert r.json() == {"route": "guid", "id": gid}
    # item_catch_all sorts before item_special: the real host gives the catch-all the literal's requests
    assert requests.get(f"{host.url}/api/items/special").json() == {"route": "catchall", "rest": "special"}
    assert requests.get(f"{host.url}/api/items/a/b%2Fc").json() == {"route": "catchall", "rest": "a/b%2Fc"}
    assert requests.delete(f"{host.url}/api/items/x").json()["route"] == "catchall"

    r = requests.post(f"{host.url}/api/echo/bob?x=1&y=2", data=b"hello", headers={"X-Test": "yes"})
    assert r.status_code == 201
    assert r.headers["X-Echo"] == "yes"
    assert r.headers["Content-Type"].startswith("application/json")
    assert r.json() == {
        "method": "POST",
        "name": "bob",
        "params": {"x": "1", "y": "2"},
        "body": "hello",
        "header": "yes",
    }
    assert requests.get(f"{host.url}/api/ping?code=ignored-function-key").text == "pong"

    for missing in ("/api/nothing-here", "/ping"):  # route prefix required
        r = requests.get(f"{host.url}{missing}")
        assert r.status_code == 404 and set(r.json()) == ERROR_KEYS
    r = requests.put(f"{host.url}/api/echo/bob")  # a method mismatch: 404, as the host
    assert r.status_code == 404 and r.json()["type"] == "NotFound"


def test_two_hundred_concurrent_requests(host):
    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=200)
    session.mount("http://", adapter)

    def get(i):
        url = f"{host.url}/api/echo/n{i}" if i % 2 else f"{host.url}/api/ping"
        r = session.get(url, timeout=30)
        return r.status_code, (r.json()["name"] if i % 2 else r.text)

    with ThreadPoolExecutor(200) as pool:
        results = list(pool.map(get, range(200)))
    assert all(code in (200, 201) for code, _ in results)
    assert [body for _, body in results] == [f"n{i}" if i % 2 else "pong" for i in range(200)]


def test_every_inline_constraint():
    def ok(template, value):
        return RouteTemplate(template).match(["x", value]) is not None

    assert ok("x/{v:long}", "2147483648") and not ok("x/{v:int}", "2147483648")
    assert ok("x/{v:bool}", "False") and not ok("x/{v:bool}", "yes")
    assert ok("x/{v:alpha}", "abc") and not ok("x/{v:alpha}", "ab1")
    assert ok("x/{v:datetime}", "2026-01-01T00:00:00Z") and not ok("x/{v:datetime}", "2026-13-01")
    assert ok("x/{v:double}", "1.5") and not ok("x/{v:decimal}", "one")
    assert ok("x/{v:minlength(3)}", "abc") and not ok("x/{v:minlength(3)}", "ab")
    assert ok("x/{v:maxlength(3)}", "abc") and not ok("x/{v:maxlength(3)}", "abcd")
    assert ok("x/{v:length(3)}", "abc") and not ok("x/{v:length(3)}", "ab")
    assert ok("x/{v:length(2,4)}", "abcd") and not ok("x/{v:length(2,4)}", "abcde")
    assert ok("x/{v:max(10)}", "10") and not ok("x/{v:max(10)}", "11") and not ok("x/{v:max(10)}", "a")
    assert ok("x/{v:range(5,10)}", "5") and not ok("x/{v:range(5,10)}", "4")
    assert ok("x/{v:regex(^a+$)}", "AAA") and not ok("x/{v:regex(^a+$)}", "ab")
    assert ok("x/{v:no_such_constraint}", "anything")
