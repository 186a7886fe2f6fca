#!/usr/bin/env bash
# Install what the tests need (Python packages, Azurite, podman and its test image) and run the whole suite.
# Tests start their own Azurite and stand-in servers on free 127.0.0.1 ports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
if [ "${SKIP_PODMAN:-0}" != "1" ]; then
  if [ "$(id -u)" -eq 0 ]; then
    bash scripts/setup_podman.sh
  elif [ -n "${CI:-}" ]; then
    echo "test.sh: CI needs root to install and start podman" >&2; exit 1
  else
    echo "test.sh: not root, podman not set up: the local-container tests will be skipped" >&2
  fi
fi
if [ -f .work/podman.env ]; then
  set -a; . .work/podman.env; set +a
fi
# Lint (pyflakes, pycodestyle, complexity <= 15 for app code: ruff.toml) and the format check before the tests.
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
exec .venv/bin/python -m pytest -q -p no:cacheprovider --durations=15 "$@"
