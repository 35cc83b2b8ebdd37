"""Dry-run previews: checks a person needs before sending, and a page a browser really draws."""

from __future__ import annotations

import html
import re
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


def _dry_run(project: Path, *extra: str) -> tuple[str, Path]:
    result = CliRunner().invoke(main, ["send", str(project), "--dry-run", *extra])
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
    assert "No consent basis" not in page and "this dry run sent nothing" in page
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


def _inbox_lines(page: str) -> list[tuple[str, str, str]]:
    found = re.findall(
        r'<div class="inbox"[^>]*>\s*<span class="from">([^<]*)</span>\s*'
        r'<span class="subject">([^<]*)</span>\s*<span class="preheader">([^<]*)</span>',
        page,
    )
    return [(html.unescape(a), html.unescape(b), html.unescape(c)) for a, b, c in found]


def test_each_variant_shows_its_inbox_line(project: Path) -> None:
    """Sender name, subject and preheader (the body's first text, or an explicit preheader)."""
    _, index = _dry_run(project)
    lines = _inbox_lines(index.read_text(encoding="utf-8"))
    assert lines[0][:2] == (
        "CUPW National Office", "Mohamed Harkat must stay in Canada: three ways to help"
    )
    assert lines[0][2].startswith("Solidarity appeal · September 19, 2018 Mohamed Harkat")
    assert lines[1][0] == "STTP Bureau national" and lines[1][1].startswith("Mohamed Harkat doit")
    assert all(len(pre) <= 111 for _, _, pre in lines)
    fr = project.parent.parent / "templates" / "harkat-appeal" / "fr.html"
    fr.write_text(
        fr.read_text(encoding="utf-8").replace(
            "{% block body %}",
            '{% block body %}<span class="preheader" style="display:none">Trois gestes, '
            "{{ first_name }}, pour Mohamed</span>",
            1,
        ),
        encoding="utf-8",
    )
    _, index = _dry_run(project)
    lines = _inbox_lines(index.read_text(encoding="utf-8"))
    assert re.fullmatch(r"Trois gestes, \w+, pour Mohamed", lines[1][2])


def test_preview_for_renders_the_members_asked_for(project: Path) -> None:
    """--preview-for ADDR (repeatable) adds each member's own message; an unknown one is exit 2."""
    output, index = _dry_run(
        project, "--preview-for", "helene.roy4@mail.example.ca", "--preview-for", "M105550"
    )
    page = index.read_text(encoding="utf-8")
    assert "fr for Hélène Roy (members.csv row " in page
    assert "en for Amina Bélanger (members.csv row " in page
    folder = index.parent
    assert "Bonjour Hélène" in (folder / "member-1.html").read_text(encoding="utf-8")
    assert "Dear Amina" in (folder / "member-2.html").read_text(encoding="utf-8")
    result = CliRunner().invoke(
        main, ["send", str(project), "--dry-run", "--preview-for", "nobody@example.org"]
    )
    assert result.exit_code == 2
    assert "--preview-for nobody@example.org: no member of members.csv" in result.output


def test_after_a_completed_send_the_dry_run_says_nothing_is_left(
    project: Path, smtp_server
) -> None:
    """Once everyone is sent, the dry run and the preview page say 0 left to send."""
    server, _ = smtp_server()
    sent = CliRunner().invoke(
        main, ["send", str(project), "--smtp", f"smtp://127.0.0.1:{server.port}", "--yes"]
    )
    assert sent.exit_code == 0, sent.output
    output, index = _dry_run(project)
    assert re.search(r"dry run: 0 left to send of \d+ recipients", output)
    assert "<strong>0 left to send</strong>" in index.read_text(encoding="utf-8")


def _chromium(url: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--hide-scrollbars",
            *args, url,
        ],
        check=True, capture_output=True, text=True, timeout=120,
    )


@pytest.mark.external
@pytest.mark.skipif(
    CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run installs it)"
)
def test_preview_frames_show_whole_messages_in_chromium(project: Path, tmp_path: Path) -> None:
    """Each frame grows to its message (over 900 px) so the footer is drawn on the page."""
    from PIL import Image

    _, index = _dry_run(project, "--preview-for", "M105624")
    dom = _chromium(index.as_uri(), tmp_path, "--dump-dom").stdout
    frames = re.findall(r'<iframe [^>]*title="([^"]+)"[^>]*data-fitted="(\d+)px"', dom)
    frames += re.findall(r'<iframe [^>]*data-fitted="(\d+)px"[^>]*title="([^"]+)"', dom)
    assert len(frames) == 6, frames  # en, fr and the member asked for, desktop and phone
    heights = [int(h) for _, h in frames]
    assert all(h > 900 for h in heights)
    # The whole message is in the frame's srcdoc; at its fitted height nothing is cut.
    assert all("100 Example Street" in doc for doc in re.findall(r'srcdoc="([^"]*)"', dom))
    shot = tmp_path / "preview.png"
    _chromium(index.as_uri(), tmp_path, "--window-size=1280,2600", f"--screenshot={shot}")
    image = Image.open(shot).convert("RGB")
    # The first message's desktop frame starts about 850 px down: a frame cut at 900 px would
    # end near 1750 px, above its red buttons. Fitted, they are drawn below 1800 px.
    lower = image.crop((30, 1800, 700, 2600))
    colours = lower.getcolors(maxcolors=1_000_000) or []
    assert sum(n for n, (r, g, b) in colours if r > 150 and g < 60 and b < 80) > 2000
