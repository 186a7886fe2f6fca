"""Write the README's app-settings table from shared/platform/settings.py (between the SETTINGS markers).

`python scripts/gen_settings_table.py` rewrites README.md; `--check` exits 1 when the README is stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from shared.platform.settings import SETTINGS  # noqa: E402

BEGIN, END = "<!-- SETTINGS:BEGIN -->", "<!-- SETTINGS:END -->"


def table() -> str:
    rows = ["| setting | default | local example | meaning |", "|---|---|---|---|"]
    for s in SETTINGS:
        default = "" if s.default is None else f"`{s.default}`"
        local = "" if s.local is None else f"`{s.local}`"
        meaning = s.description + (" **Secret.**" if s.secret else "")
        rows.append(f"| `{s.name}` | {default} | {local} | {meaning.replace('|', '/')} |")
    return "\n".join(rows)


def render(readme: str) -> str:
    start, end = readme.index(BEGIN) + len(BEGIN), readme.index(END)
    return readme[:start] + "\n" + table() + "\n" + readme[end:]


def main() -> int:
    path = ROOT / "README.md"
    current = path.read_text()
    wanted = render(current)
    if "--check" in sys.argv:
        if current != wanted:
            print("README.md settings table is stale: run python scripts/gen_settings_table.py")
            return 1
        return 0
    path.write_text(wanted)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
