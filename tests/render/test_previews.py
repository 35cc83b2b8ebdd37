"""Dry-run previews: checks a person needs before sending, and a page a browser really draws."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from harkat_mail.cli import main
from harkat_mail.render import check_html


def test_check_html_flags_what_clients_punish() -> None:
    """Plain-http links, empty or unresolved links, images without alt, and Gmail's clip size."""
    html = (
        '<a href="http://example.org/x">a</a><a href="">b</a><a href="None">c</a>'
        '<a href="https://ok.example.org">ok</a><a href="mailto:x@example.org">m</a>'
        '<img src="logo.png"><img src="ok.png" alt="Logo">'
    )
    warnings = check_html(html)
    assert warnings == [
        "link without https: http://example.org/x",
        "link with an unresolved or empty address: ''",
        "link with an unresolved or empty address: 'None'",
        "image without alt text: logo.png",
    ]
    assert check_html("<p>" + "x" * 105_000 + "</p>")[0].startswith("HTML is 103 KB")
    assert check_html('<a href="https://ok.example.org">ok</a>') == []


def _dry_run(project: Path) -> tuple[str, Path]:
    result = CliRunner().invoke(main, ["send", str(project), "--dry-run"])
    assert result.exit_code == 0, result.output
    return result.output, project.parent.parent / "previews" / "sept2018" / "index.html"


def test_preview_index_lists_variants_counts_and_warnings(project: Path) -> None:
    """index.html shows counts, subject, text, warnings, the purpose and rows without consent."""
    en = project.parent.parent / "templates" / "harkat-appeal" / "en.html"
    en.write_text(
        en.read_text().replace("{{ video_url }}", "http://video.example.org/")
        + '{% block extra %}<img src="https://x.example.org/p.png">{% endblock %}',
        encoding="utf-8",
    )
    output, index = _dry_run(project)
    page = index.read_text(encoding="utf-8")
    assert "link without https: http://video.example.org/" in page
    assert "warning: link without https" in output
    assert "<td>active</td><td>en</td>" in page and "<td>active</td><td>fr</td>" in page
    assert "Subject:</strong> Mohamed Harkat doit rester au Canada" in page
    assert "Phone (375 px)" in page and "Desktop (680 px)" in page
    assert "Dear " in page and "Bonjour " in page  # the text parts
    assert "Purpose: commercial. CASL: only members with a consent basis" in page
    assert "<td>no consent</td>" in page


def test_sample_preview_has_no_warnings(project: Path) -> None:
    """The sample appeal passes every pre-flight check."""
    output, index = _dry_run(project)
    assert "warning:" not in output
    assert index.read_text(encoding="utf-8").count('<li class="ok">none</li>') == 2


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.external
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_preview_page_renders_in_headless_chromium(project: Path, tmp_path: Path) -> None:
    """Headless Chromium draws the preview page: the screenshot is not blank."""
    from PIL import Image, ImageStat

    _, index = _dry_run(project)
    shot = tmp_path / "preview.png"
    assert CHROMIUM is not None
    subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--hide-scrollbars",
            "--window-size=1280,2400",
            f"--screenshot={shot}",
            index.as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    image = Image.open(shot).convert("L")
    assert image.size == (1280, 2400)
    stats = ImageStat.Stat(image)
    assert stats.stddev[0] > 20  # text, tables and the framed messages, not a flat page
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1_000_000) or []
    reds = sum(n for n, (r, g, b) in colours if r > 150 and g < 60 and b < 80)
    assert reds > 500  # the appeal's red buttons drawn inside the preview frames
