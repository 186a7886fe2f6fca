"""Swagger UI at `/api/docs`: a small page of ours and the files of the npm package swagger-ui-dist.

scripts/bootstrap.sh copies the files named in `FILES` from node_modules/swagger-ui-dist into static/swagger-ui
(they ship with the app: .funcignore keeps static/). Only those names are served, so no request reaches another
file. The page runs no inline script (its settings are in `init.js`, served from here) and is sent with a
Content-Security-Policy that allows scripts and requests to this app only: Swagger UI's online validator and
anything else outside are off. It is anonymous, like the document: it holds no data, and every call made from
it needs the same function key and token as any other call.
"""

from __future__ import annotations

import functools
from pathlib import Path

from shared.platform.static import Answer, not_found

STATIC_DIR = Path(__file__).resolve().parents[2] / "static" / "swagger-ui"
FILES = {  # the files of swagger-ui-dist that are copied and served, with their media types
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-16x16.png": "image/png",
    "favicon-32x32.png": "image/png",
    "LICENSE": "text/plain; charset=utf-8",
    "NOTICE": "text/plain; charset=utf-8",
}
BUNDLE = "swagger-ui-bundle.js"
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}

INIT_JS = """\
// Swagger UI on this app's OpenAPI document (its address is the page's data-url, relative to the page).
window.addEventListener("load", function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
    validatorUrl: null,
    queryConfigEnabled: false,
    persistAuthorization: false,
    displayOperationId: true
  });
});
"""

PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>DM Job API - Swagger UI</title>
  <link rel="stylesheet" href="{base}swagger-ui.css">
  <link rel="stylesheet" href="{base}index.css">
  <link rel="icon" type="image/png" href="{base}favicon-32x32.png" sizes="32x32">
  <link rel="icon" type="image/png" href="{base}favicon-16x16.png" sizes="16x16">
</head>
<body>
  <div id="swagger-ui" data-url="{spec}"></div>
  <script src="{base}swagger-ui-bundle.js" charset="UTF-8"></script>
  <script src="{base}init.js" charset="UTF-8"></script>
</body>
</html>
"""


@functools.lru_cache(maxsize=len(FILES))
def _read(name: str) -> bytes | None:
    try:
        return (STATIC_DIR / name).read_bytes()
    except OSError:
        return None


def installed() -> bool:
    return _read(BUNDLE) is not None


def _not_found(message: str) -> Answer:
    return not_found(message, SECURITY_HEADERS)


def _page(request_path: str) -> Answer:
    """The page. Its links are relative, so it works behind a gateway that moves `/api`: from `.../docs` the files
    are under `docs/` and the document is `openapi.json`; from `.../docs/` they are `./` and `../openapi.json`."""
    at_docs = not request_path.rstrip().endswith("/")
    base, spec = ("docs/", "openapi.json") if at_docs else ("", "../openapi.json")
    page = PAGE.format(base=base, spec=spec).encode("utf-8")
    return Answer(200, page, "text/html; charset=utf-8", {**SECURITY_HEADERS, "Cache-Control": "no-cache"})


def serve(file: str | None, request_path: str) -> Answer:
    """The answer to `GET /api/docs/{file}` (`file` empty for the page itself), `request_path` being the path the
    request was made to (its query left out)."""
    name = (file or "").strip("/")
    if not installed():
        return _not_found(
            "Swagger UI's files are not installed: scripts/bootstrap.sh copies them from the npm "
            "package swagger-ui-dist into static/swagger-ui"
        )
    if name in ("", "index.html"):
        return _page(request_path if name == "" else request_path.rsplit("/", 1)[0] + "/")
    if name == "init.js":
        return Answer(
            200,
            INIT_JS.encode("utf-8"),
            "text/javascript; charset=utf-8",
            {**SECURITY_HEADERS, "Cache-Control": "no-cache"},
        )
    content = _read(name) if name in FILES else None
    if content is None:
        return _not_found(f"Swagger UI has no file {name[:100]!r}")
    return Answer(200, content, FILES[name], {**SECURITY_HEADERS, "Cache-Control": "public, max-age=86400"})
