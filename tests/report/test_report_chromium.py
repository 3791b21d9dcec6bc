"""report.html in a real browser: headless Chromium loads it, draws its charts, and the screenshot
is kept as a CI artifact (``$EDGESLIM_ARTIFACTS``, set by .ci/run; a temp folder otherwise).

Chromium comes from Debian's packages (scripts/ensure-chromium.sh, run by ``make test``); where
it cannot be installed the test skips and says so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# The params bars of the first chart (reporting.charts.PALETTE[0], #4472c4): nothing else on the
# page has this colour, so seeing it proves the browser decoded an embedded PNG.
CHART_BLUE = (0x44, 0x72, 0xC4)


def _browser() -> str:
    for name in BROWSERS:
        if path := shutil.which(name):
            return path
    pytest.skip("Chromium is not installed (make test installs it from Debian's packages: "
                "scripts/ensure-chromium.sh; needs root or sudo and apt-get)")


def test_report_renders_in_headless_chromium(tiny_run, tmp_path):
    from PIL import Image

    browser = _browser()
    out_dir = Path(os.environ.get("EDGESLIM_ARTIFACTS") or tmp_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    shot = out_dir / "report-screenshot.png"
    shot.unlink(missing_ok=True)
    page = (tiny_run["run_dir"] / "report.html").resolve().as_uri()
    profile = tmp_path / "profile"  # a fresh profile: nothing from the machine's browser state
    base = [browser, *FLAGS, f"--user-data-dir={profile}"]
    p = subprocess.run([*base, f"--screenshot={shot}", "--window-size=1280,2000", page],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 0 and shot.is_file(), p.stderr[-2000:]
    im = Image.open(shot).convert("RGB")
    assert im.size == (1280, 2000)
    colours = im.getcolors(maxcolors=1 << 22)
    assert colours is not None and len(colours) > 100  # text, tables and charts, not a blank page
    blue = sum(n for n, c in colours if all(abs(a - b) <= 6 for a, b in zip(c, CHART_BLUE, strict=True)))
    assert blue > 2000, blue  # the bar chart's pixels: the embedded image was decoded and drawn
    white = next((n for n, c in colours if c == (255, 255, 255)), 0)
    assert white < 0.95 * im.width * im.height
    # the DOM Chromium built holds every embedded image of the file
    dom = subprocess.run([*base, "--dump-dom", page], capture_output=True, text=True, timeout=300)
    assert dom.returncode == 0, dom.stderr[-2000:]
    source = (tiny_run["run_dir"] / "report.html").read_text()
    assert dom.stdout.count("<img") == source.count("<img") >= 4
    assert "Warnings" in dom.stdout or 'id="warnings"' not in source
