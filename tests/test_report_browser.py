"""`snakemake --report report.html` on the toy DAG's finished run, opened in a real headless Chromium
(Debian's package): every figure the report lists loads as an image, every table it lists carries
its file, and no figure or table that report.py writes is missing from it."""
from __future__ import annotations

import base64
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from quantbench.report.figures import FIGURES
from tests.conftest import snakemake
from tests.headless_chromium import Chromium

R = "results/toy-llama"
# open a category of the report's side bar, then a result's "eye" button (what a reader clicks)
OPEN_CATEGORY = '''(name => { const a = Array.from(document.querySelectorAll("a"))
    .find(e => e.textContent.trim() == name); if (a) a.click(); return !!a; })'''
OPEN_RESULT = '''(path => { const row = Array.from(document.querySelectorAll("tr"))
    .find(r => r.cells[0] && r.cells[0].textContent.trim() == path); if (!row) return false;
    row.querySelector('a[iconname="eye"]').click(); return true; })'''
SHOWN_IMAGE = '''(name => { const img = Array.from(document.querySelectorAll("img"))
    .find(i => i.src.includes("filename=" + name + ";")); return img && img.complete
    ? [img.naturalWidth, img.naturalHeight] : null; })'''


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed with apt-get where it is missing (CI runs as root with Debian's
    package mirrors)."""
    found = shutil.which("chromium")
    if found:
        return found
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail("the report's browser test needs Debian's chromium: run `apt-get install chromium` as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for cmd in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
        if proc.returncode != 0:
            pytest.fail(f"`{' '.join(cmd)}` failed (no network to Debian's packages?):\n{proc.stderr[-2000:]}")
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def html_report(toy_run, tmp_path_factory) -> Path:
    # written outside the run's folder: the toy_run copy is shared with other tests
    out = tmp_path_factory.mktemp("html_report") / "report.html"
    snakemake(toy_run, "--report", str(out))
    return out


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", head[16:24])


def test_every_figure_and_table_renders_in_a_browser(toy_run, html_report, chromium):
    report_dir = toy_run / R / "report"
    with Chromium(chromium) as browser:
        browser.open(html_report.as_uri())
        browser.wait_for('typeof categories !== "undefined" && document.body.innerText.includes("Figures")')
        listed = browser.evaluate("categories")

        figures = [p for sub in listed["Figures"].values() for p in sub]
        # none missing: the toy runs every stage, so every figure report.py draws is in the report
        assert sorted(Path(p).name for p in figures) == sorted(f"{f}.png" for f in FIGURES)
        assert sorted(Path(p).name for p in figures) == sorted(p.name for p in report_dir.glob("*.png"))
        assert browser.evaluate(OPEN_CATEGORY + '("Figures")')
        for path in figures:
            name = Path(path).name
            browser.wait_for(f"document.body.innerText.includes({path!r})")
            assert browser.evaluate(OPEN_RESULT + f"({path!r})"), f"{path}: no row in the Figures list"
            size = browser.wait_for(SHOWN_IMAGE + f"({name!r})")
            # the browser decoded the image: its size is the file's, not a broken image's 0 x 0
            assert tuple(size) == _png_size(toy_run / path), name
            assert browser.evaluate(OPEN_CATEGORY + '("Figures")')

        tables = [p for sub in listed["Tables"].values() for p in sub]
        assert sorted(Path(p).name for p in tables) == sorted(p.name for p in report_dir.glob("*.csv"))
        # back to the side bar's top level ("Results"), then the tables
        assert browser.evaluate(OPEN_CATEGORY + '("Results")')
        browser.wait_for(OPEN_CATEGORY + '("Tables")')
        for path in tables:
            browser.wait_for(f"document.body.innerText.includes({path!r})")
            # a table opens as a download of its file: the link must hold the file itself
            href = browser.evaluate(f'''Array.from(document.querySelectorAll("tr"))
                .find(r => r.cells[0] && r.cells[0].textContent.trim() == {path!r})
                .querySelector('a[iconname="eye"]').href''')
            assert href.startswith("data:text/csv"), path
            assert base64.b64decode(href.split("base64,", 1)[1]) == (toy_run / path).read_bytes(), path

        assert [p for sub in listed["Report"].values() for p in sub] == [f"{R}/report/report.md"]
