"""In a real browser: the French appeal's amount and colon stay on one line at any width."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# For each width, the number of lines each phrase is drawn on (its Range's distinct tops).
PROBE = """<script>
function lines(phrase) {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const at = node.data.indexOf(phrase);
    if (at < 0) continue;
    const range = document.createRange();
    range.setStart(node, at);
    range.setEnd(node, at + phrase.length);
    return new Set([...range.getClientRects()].map(r => Math.round(r.top))).size;
  }
  return -1;
}
const found = {};
for (let width = 120; width <= 420; width += 2) {
  document.body.style.width = width + "px";
  found[width] = PHRASES.map(lines);
}
const out = document.createElement("pre");
out.id = "probe";
out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script>"""


def _lines_per_width(page: str, phrases: list[str], tmp_path: Path) -> dict[str, list[int]]:
    """Load ``page`` in headless Chromium and measure each phrase at widths 120-420 px."""
    assert CHROMIUM is not None
    probe = PROBE.replace("PHRASES", json.dumps(phrases))
    path = tmp_path / "page.html"
    path.write_text(page.replace("</body>", probe + "</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--virtual-time-budget=10000",
            "--dump-dom",
            path.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
        text=True,
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found is not None, done.stdout[-500:]
    return dict(json.loads(found.group(1)))


@pytest.mark.external
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_amount_and_colon_never_break_in_chromium(project: Path, tmp_path: Path) -> None:
    """Chromium lays out the French message from 120 to 420 px wide: "25 000 $" and
    "suffit :" are always on one line; with plain spaces the same page breaks them."""
    result = CliRunner().invoke(main, ["send", str(project), "--dry-run"])
    assert result.exit_code == 0, result.output
    page = (project.parent.parent / "previews" / "sept2018" / "fr.html").read_text()
    phrases = ["25\u00a0000\u00a0$", "suffit\u202f:"]
    measured = _lines_per_width(page, phrases, tmp_path)
    assert len(measured) == 151
    assert all(counts == [1, 1] for counts in measured.values()), measured
    plain = page.replace("\u00a0", " ").replace("\u202f", " ")
    control = _lines_per_width(plain, ["25 000 $", "suffit :"], tmp_path)
    assert any(counts[0] > 1 for counts in control.values())  # the test can see a break
    assert any(counts[1] > 1 for counts in control.values())
