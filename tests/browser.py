"""Open a file in a real headless Chromium and hand back the DOM it rendered (scripts run).

Chromium is a Debian package (`.ci/run` installs it with Graphviz).  Without it the picture and report
tests skip and say so — except under ``QMTL_REQUIRE_SERVICES=1`` (CI), where the missing browser is a
failure, like a missing database, so a green CI means the pages were really opened.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage", "--virtual-time-budget=5000")


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        reason = "chromium is not installed (apt-get install chromium): pages cannot be opened in a browser"
        if os.environ.get("QMTL_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " — required under QMTL_REQUIRE_SERVICES=1")
        pytest.skip(reason)
    return path


def require_dot() -> None:
    if shutil.which("dot") is None:
        reason = "Graphviz's dot is not installed (apt-get install graphviz)"
        if os.environ.get("QMTL_REQUIRE_SERVICES") == "1":
            pytest.fail(reason + " — required under QMTL_REQUIRE_SERVICES=1")
        pytest.skip(reason)


def rendered_dom(page: Path, timeout: float = 120.0) -> str:
    """The DOM Chromium built from ``page`` (a local file), after its scripts ran."""
    browser = chromium()
    with tempfile.TemporaryDirectory() as profile:
        done = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom",
                               page.resolve().as_uri()], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "<body" in done.stdout, f"chromium rendered no page for {page}: {done.stderr[-2000:]}"
    return done.stdout
