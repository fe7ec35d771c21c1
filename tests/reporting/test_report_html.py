"""`tradeloop report --html` on a 3,000-order run, rendered by a real headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from support import run_cli

from tradeloop.reporting.verdict import VERDICT_FIELDS, notebook_verdict

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install -y chromium); CI installs it")
_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
          "--window-size=1280,2000"]
# Runs in the page after load: where the verdict block is, and any script error, written into the DOM that
# --dump-dom prints.
_PROBE = """<script>
window.__errors = [];
window.addEventListener('error', e => window.__errors.push(String(e.message)));
window.addEventListener('load', () => {
  const v = document.getElementById('tradeloop-verdict');
  const r = v ? v.getBoundingClientRect() : null;
  const out = document.createElement('pre');
  out.id = 'probe';
  out.textContent = JSON.stringify({top: r ? r.top + window.scrollY : null, height: r ? r.height : null,
                                    errors: window.__errors, scroll: document.body.scrollHeight});
  document.body.appendChild(out);
});
</script>"""


@pytest.fixture(scope="module")
def report_files(big):
    out = big["folder"]
    done = big["done"].run_id
    proc = run_cli("report", done, "--db", big["db"], "--html", out / "review.html", "--ipynb", out / "review.ipynb",
                   timeout=600)
    assert proc.returncode == 0, proc.stderr
    return {"html": out / "review.html", "ipynb": out / "review.ipynb", "run_id": done, "stdout": proc.stdout}


def test_report_writes_html_without_inputs_and_names_the_database(report_files, big):
    page = report_files["html"].read_text(encoding="utf-8")
    assert 'id="tradeloop-verdict"' in page or "id='tradeloop-verdict'" in page
    assert "notebook.review(" not in page and "NBVAL" not in page and "set_option" not in page  # no input cells
    assert not re.search(r"<script[^>]*src=[\"']https?://", page)  # self-contained: nothing from the network
    assert str(Path(big["db"]).resolve()) in page
    assert str(big["db"]) in report_files["stdout"]


def test_report_ipynb_verdict_fields(report_files, big):
    nb = nbformat.read(report_files["ipynb"], as_version=4)
    verdict = notebook_verdict(nb)
    for key in VERDICT_FIELDS:
        assert key in verdict, key
    assert verdict["run_id"] == report_files["run_id"]
    assert verdict["status"] == "done"
    assert verdict["verification"].startswith("VERIFIED: the hash chain of all ")
    assert verdict["model_version"] == "big-v1"
    assert verdict["risk.max_order_notional"] == "1000000000.0"
    assert verdict["version.tradeloop"] and verdict["version.duckdb"]
    assert all(c.metadata.get("jupyter", {}).get("source_hidden") for c in nb.cells if c.cell_type == "code")


@needs_chromium
def test_report_renders_in_headless_chromium(report_files, tmp_path):
    page = report_files["html"].read_text(encoding="utf-8")
    probed = tmp_path / "probed.html"
    probed.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    shot = tmp_path / "shot.png"
    snap = subprocess.run([CHROMIUM, *_FLAGS, f"--screenshot={shot}", probed.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert snap.returncode == 0, snap.stderr[-2000:]
    assert shot.is_file() and shot.stat().st_size > 20_000  # a rendered page, not a blank one
    dom = subprocess.run([CHROMIUM, *_FLAGS, "--enable-logging=stderr", "--v=0", "--virtual-time-budget=5000",
                          "--dump-dom", probed.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console

    probe = json.loads(re.search(r'<pre id="probe">(.*?)</pre>', dom.stdout, re.S).group(1).replace("&quot;", '"'))
    assert probe["errors"] == []
    assert probe["top"] is not None and 0 <= probe["top"] < 1_200, probe
    assert probe["top"] + 150 < 1_200  # the verdict's heading and its verification sentence are on the first screen
