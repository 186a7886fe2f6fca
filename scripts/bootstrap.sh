#!/usr/bin/env bash
# Install what the app needs to run locally: a virtual environment with the Python packages (dev extras
# included: the local host needs aiohttp) and Azurite from npm. Idempotent; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
.venv/bin/python -m pip install --quiet -r requirements-dev.txt 2>&1 | grep -v "^WARNING: Location" || true
.venv/bin/python -c "import azure.durable_functions, azure.data.tables, pydantic, aiohttp" \
  || { echo "bootstrap: Python packages did not install" >&2; exit 1; }

if [ ! -x node_modules/.bin/azurite ] || [ ! -f node_modules/swagger-ui-dist/package.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# Swagger UI (served at /api/docs, shipped with the app): the files of swagger-ui-dist that
# shared/openapi/swagger.py serves, copied into static/swagger-ui.
mkdir -p static/swagger-ui
for name in $(.venv/bin/python -c "from shared.openapi.swagger import FILES; print(' '.join(FILES))"); do
  cp node_modules/swagger-ui-dist/"$name" static/swagger-ui/"$name"
done
# Chromium for the dashboard's browser tests (tests/browser): Debian's package, which Playwright launches by its
# path (no browser download). Installed when missing and root can (CI, the dev container); otherwise those tests
# are skipped saying why (in CI they fail instead).
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "bootstrap: installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
  else
    echo "bootstrap: no /usr/bin/chromium and not root: the browser tests will be skipped" >&2
  fi
fi
echo "bootstrap: ready (.venv, node_modules/.bin/azurite, static/swagger-ui, chromium)"
