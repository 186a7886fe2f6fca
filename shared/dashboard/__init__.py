"""The dashboard at `/api/ui`: static HTML, ES modules and CSS from static/dashboard, shipped with the app.

The page is plain ES modules (no framework, no build step): it calls this app's API from the browser with the
caller's own authorization (the function key typed once and kept in sessionStorage, or App Service
Authentication's session cookie), so it shows exactly what the API would show that caller.

Served anonymously, like Swagger UI: the files hold no data and no secret; every data call they make needs the
function key (and, with Entra ID on, the sign-in) as any other call. Only the names in `FILES` are served (no path
ever reaches the file system), unknown names are a 404 JSON error body. Every answer carries a strict
Content-Security-Policy (scripts, styles, images and requests from this origin only; no inline script or style,
no framing) and `Cache-Control: no-cache` with an ETag: a browser revalidates each file (a 304 when unchanged), so
a new deployment is seen at once.

`config.json` is built here: the DMSS address the page links a DMSS job's entity to (`PUBLIC_DMSS_URL`, else
`DMSS_URL`; an address jobs are given anyway), nothing else.
"""

from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path

from shared.platform import settings
from shared.platform.static import Answer, not_found

STATIC_DIR = Path(__file__).resolve().parents[2] / "static" / "dashboard"
JS = "text/javascript; charset=utf-8"
FILES = {  # every file the dashboard is made of, with its media type; nothing else is served
    "index.html": "text/html; charset=utf-8",
    "app.js": JS,
    "api.js": JS,
    "util.js": JS,
    "jobs.js": JS,
    "job.js": JS,
    "schedules.js": JS,
    "timeline.js": JS,
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
MAX_NAME = 100


@functools.lru_cache(maxsize=len(FILES))
def _read(name: str) -> bytes:
    return (STATIC_DIR / name).read_bytes()


def _etag(content: bytes) -> str:
    return '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _not_found(name: str) -> Answer:
    return not_found(f"the dashboard has no file {name[:MAX_NAME]!r}", SECURITY_HEADERS)


def _page(request_path: str) -> bytes:
    """index.html with its links made relative to where it was asked for: from `.../ui` the files are under
    `ui/`, from `.../ui/` they are next to it (so it works behind a gateway that moves `/api`)."""
    base = "ui/" if not request_path.endswith("/") else ""
    return _read("index.html").replace(b"%BASE%", base.encode("ascii"))


def config() -> bytes:
    dmss = (settings.get("PUBLIC_DMSS_URL") or settings.get("DMSS_URL") or "").strip()
    return json.dumps({"dmssUrl": dmss or None}).encode("utf-8")


def _matches(if_none_match: str | None, etag: str) -> bool:
    return bool(if_none_match) and any(tag.strip() in (etag, "*") for tag in if_none_match.split(","))


def serve(file: str | None, request_path: str, if_none_match: str | None = None) -> Answer:
    """The answer to `GET /api/ui/{file}` (`file` empty for the page), `request_path` being the path the request
    was made to (no query), `if_none_match` the request's If-None-Match header."""
    name = (file or "").strip("/")
    if name == "":
        content, content_type = _page(request_path), FILES["index.html"]
    elif name == "index.html":
        content, content_type = _page(request_path.rsplit("/", 1)[0] + "/"), FILES["index.html"]
    elif name == "config.json":
        content, content_type = config(), "application/json"
    elif name in FILES:
        content, content_type = _read(name), FILES[name]
    else:
        return _not_found(name)
    etag = _etag(content)
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "ETag": etag}
    if _matches(if_none_match, etag):
        return Answer(304, b"", content_type, headers)
    return Answer(200, content, content_type, headers)
