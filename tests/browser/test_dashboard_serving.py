"""How the local host serves the dashboard's files (no browser needed): content types, a strict CSP, caching by
ETag, nothing but the listed files (a 404 JSON error body for anything else, traversal included), no secret, and
the page anonymous while the data routes keep their function key."""

from __future__ import annotations

import re
import secrets
from fnmatch import fnmatch
from urllib.parse import urljoin

import pytest
import requests

from devhost import DevHost
from shared import dashboard

from .conftest import ROOT

KEY = "serving-" + secrets.token_urlsafe(16)
CANARY = "canary-" + secrets.token_urlsafe(12)
SETTINGS = {"SCHEDULE_TICK": "0 * * * * *", "DEVHOST_REQUIRE_KEYS": "true", "DEVHOST_FUNCTION_KEY": KEY}
ERROR_KEYS = {"status", "type", "message", "debug", "data"}


@pytest.fixture(scope="module")
def host(module_storage):
    module_storage.setenv("DMSS_APP_ACCESS_KEY", CANARY)  # a secret setting: must appear nowhere
    module_storage.setenv("PUBLIC_DMSS_URL", "https://dmss.example.com")
    with DevHost(app_dir=ROOT, settings=SETTINGS) as running:
        yield running


def test_the_listed_files_are_the_shipped_ones():
    shipped = {p.name for p in dashboard.STATIC_DIR.iterdir() if p.is_file()}
    assert shipped == set(dashboard.FILES), "every file in static/dashboard is listed in FILES, and only those"


def test_the_deployment_package_ships_them():
    """`azd deploy` packs the project folder (azure.yaml: project ".") less what .funcignore names."""
    patterns = [line.strip().rstrip("/") for line in (ROOT / ".funcignore").read_text().splitlines()]
    shipped = ("static", "static/dashboard", "shared", "shared/dashboard")
    assert not [p for p in patterns if p and not p.startswith("#") and any(fnmatch(s, p) for s in shipped)]


def test_no_inline_script_or_style_and_no_html_from_strings():
    """What the CSP forbids is not in the files either, and text never goes into the page as HTML."""
    for name in dashboard.FILES:
        text = (dashboard.STATIC_DIR / name).read_text("utf-8")
        assert "style=" not in text and "innerHTML" not in text and "eval(" not in text, name
        if name.endswith(".html"):
            assert not re.search(r"<script(?![^>]*\bsrc=)", text), "no inline script"


@pytest.mark.parametrize("path", ["ui", "ui/", "ui/index.html"])
def test_the_page_and_every_file_it_links(host, path):
    url = f"{host.url}/api/{path}"
    page = requests.get(url, timeout=30)
    assert page.status_code == 200 and page.headers["Content-Type"] == "text/html; charset=utf-8"
    csp = page.headers["Content-Security-Policy"]
    for rule in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ):
        assert rule in csp
    assert "unsafe" not in csp
    links = [link for link in re.findall(r'(?:src|href)="([^"#][^"]*)"', page.text)]
    assert len(links) == 6 and "%BASE%" not in page.text
    for link in links:
        asset = requests.get(urljoin(url, link), timeout=30)
        assert asset.status_code == 200, link
        assert asset.headers["X-Content-Type-Options"] == "nosniff"
        assert asset.headers["Cache-Control"] == "no-cache" and asset.headers["ETag"]


def test_content_types_and_revalidation(host):
    for name, media_type in dashboard.FILES.items():
        response = requests.get(f"{host.url}/api/ui/{name}", timeout=30)
        assert response.status_code == 200 and response.headers["Content-Type"] == media_type, name
        etag = response.headers["ETag"]
        again = requests.get(f"{host.url}/api/ui/{name}", headers={"If-None-Match": etag}, timeout=30)
        assert again.status_code == 304 and again.content == b"", name
        changed = requests.get(f"{host.url}/api/ui/{name}", headers={"If-None-Match": '"other"'}, timeout=30)
        assert changed.status_code == 200 and changed.content == response.content


def test_config_names_dmss_and_nothing_else(host):
    response = requests.get(f"{host.url}/api/ui/config.json", timeout=30)
    assert response.json() == {"dmssUrl": "https://dmss.example.com"}


@pytest.mark.parametrize(
    "name",
    [
        "../host.json",
        "..%2Fhost.json",
        "%2e%2e/function_app.py",
        "..%2F..%2Flocal.settings.json",
        "static/dashboard/app.js",
        "app.js.map",
        ".gitignore",
        "APP.JS",
        "x" * 3000,
    ],
)
def test_anything_else_is_a_404_json_error(host, name):
    response = requests.get(f"{host.url}/api/ui/{name}", timeout=30)
    assert response.status_code == 404 and response.headers["Content-Type"].startswith("application/json")
    assert set(response.json()) == ERROR_KEYS
    assert b"extensionBundle" not in response.content and b"DFApp" not in response.content
    assert len(response.content) < 400


def test_the_page_is_anonymous_the_data_is_not_and_no_secret_is_served(host):
    assert requests.get(f"{host.url}/api/jobs", timeout=30).status_code == 401
    assert requests.get(f"{host.url}/api/jobs", headers={"x-functions-key": KEY}, timeout=30).status_code == 200
    for name in ["", "config.json", *dashboard.FILES]:
        response = requests.get(f"{host.url}/api/ui/{name}", timeout=30)
        assert response.status_code == 200
        assert CANARY.encode() not in response.content and KEY.encode() not in response.content
        assert CANARY not in str(response.headers) and KEY not in str(response.headers)
