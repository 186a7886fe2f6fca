"""Browser fixtures: Playwright driving Debian's headless Chromium against the dashboard on the local host.

No browser is downloaded (`playwright install` cannot reach its site here): Playwright launches the `chromium`
package's binary by its path, with the flags that keep it off the network, and a fresh profile per module.
scripts/bootstrap.sh installs the package when it is missing and root is available. Without it (or without the
`playwright` package) the tests are skipped saying so, except in CI (CI set), where they must run and fail instead.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
# /work/shared/reference/toolchain.md: without the background-networking flags Chromium keeps reaching out
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401 - only whether it is there
    except ImportError:
        return "the Python package playwright is not installed (requirements-dev.txt; scripts/bootstrap.sh)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no Chromium at {CHROMIUM}: scripts/bootstrap.sh installs Debian's chromium package when run as root"
    return None


@pytest.fixture(scope="module")
def module_storage(azurite):
    """Azurite settings with a prefix of this module's own: one host (and browser) serves all its tests."""
    prefix = "b" + uuid.uuid4().hex[:10]
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AzureWebJobsStorage", azurite.connection_string)
        mp.setenv("JOB_STORE_PREFIX", prefix)
        mp.setenv("JOB_ORCHESTRATION_STORE_PREFIX", prefix + "h")
        mp.setenv("ENABLE_LOCAL_RUNNERS", "true")
        mp.setenv("SCHEDULE_TICK", "0 * * * * *")
        yield mp


@pytest.fixture(scope="module")
def browser_context():
    """One headless Chromium with a fresh profile for the module."""
    why = _missing()
    if why is not None:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the browser tests: {why}")
        pytest.skip(why)
    from playwright.sync_api import sync_playwright  # only here: the module may be missing (then skipped above)

    profile = tempfile.mkdtemp(prefix="dmjob-chromium-")
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                profile,
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1280, "height": 800},
                locale="en-GB",
                timezone_id="Europe/Oslo",
            )
            context.set_default_timeout(30_000)
            yield context
            context.close()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def page(browser_context):
    page = browser_context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    yield page
    page.close()
    assert not errors, f"the page logged errors: {errors}"


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
