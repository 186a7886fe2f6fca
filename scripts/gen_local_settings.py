#!/usr/bin/env python3
"""Write `local.settings.json.example` from the one list of settings (shared/platform/settings.py).

    python scripts/gen_local_settings.py            # print the example
    python scripts/gen_local_settings.py --write    # (re)write local.settings.json.example
    python scripts/gen_local_settings.py --check    # exit 1 if the file differs from the list

Each declared setting appears once, in declaration order, with its local value (`Setting.local`) or else its
default ("" when it has none). Secret settings never get a value here unless their local value is a
development-only one (e.g. `UseDevelopmentStorage=true`). Copy the example to `local.settings.json` (ignored
by git) and edit that.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "local.settings.json.example"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from shared.platform.settings import SETTINGS  # noqa: E402


def local_value(setting) -> str:
    if setting.local is not None:
        return setting.local
    if setting.secret:
        return ""
    return setting.default or ""


def render() -> str:
    document = {
        "IsEncrypted": False,
        "Values": {setting.name: local_value(setting) for setting in SETTINGS},
    }
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help=f"write {EXAMPLE.name}")
    group.add_argument("--check", action="store_true", help=f"fail if {EXAMPLE.name} is out of date")
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        EXAMPLE.write_text(text, encoding="utf-8")
        print(f"wrote {EXAMPLE.relative_to(ROOT)} ({len(SETTINGS)} settings)")
        return 0
    if args.check:
        current = EXAMPLE.read_text(encoding="utf-8") if EXAMPLE.exists() else None
        if current != text:
            print(f"{EXAMPLE.name} is out of date: run python scripts/gen_local_settings.py --write", file=sys.stderr)
            return 1
        return 0
    sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
