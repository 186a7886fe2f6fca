#!/usr/bin/env bash
# Quick start: install everything, start Azurite, and serve the app on http://127.0.0.1:7071.
# Uses Azure Functions Core Tools (`func start`) when installed, else the bundled local host (devhost).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

[ -f local.settings.json ] || cp local.settings.json.example local.settings.json
mkdir -p .azurite
node_modules/.bin/azurite --silent --location .azurite --loose --skipApiVersionCheck --disableTelemetry \
  --blobHost 127.0.0.1 --queueHost 127.0.0.1 --tableHost 127.0.0.1 &
AZURITE_PID=$!
trap 'kill $AZURITE_PID 2>/dev/null || true' EXIT
sleep 1

if command -v func >/dev/null 2>&1 && [ "${USE_DEVHOST:-0}" != "1" ]; then
  . .venv/bin/activate
  func start
else
  echo "Core Tools not found: serving with the local host (devhost)."
  .venv/bin/python -m devhost --port "${PORT:-7071}"
fi
