"""Pre-flight checks of rendered messages: what a person should look at before sending."""

from __future__ import annotations

from html.parser import HTMLParser

from ..models import Identification

GMAIL_CLIP_BYTES = 102 * 1024
_SAFE_SCHEMES = ("https://", "mailto:", "tel:", "#")
_UNRESOLVED = ("{{", "{%", "none", "undefined", "null")


class _Links(HTMLParser):
    """Links, images without alt text, and the text a reader sees."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images_without_alt: list[str] = []
        self.text: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag in ("style", "script", "title"):
            self._hidden += 1
        if tag == "a" and "href" in values:
            self.hrefs.append((values["href"] or "").strip())
        elif tag == "img" and not (values.get("alt") or "").strip():
            self.images_without_alt.append(values.get("src") or "(no src)")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join(" ".join(self.text).split())


def check_html(html: str) -> list[str]:
    """Warnings for one rendered HTML body: size, insecure or unresolved links, bare images."""
    warnings: list[str] = []
    size = len(html.encode("utf-8"))
    if size > GMAIL_CLIP_BYTES:
        warnings.append(f"HTML is {size / 1024:.0f} KB: Gmail clips messages over 102 KB")
    parser = _Links()
    parser.feed(html)
    for href in parser.hrefs:
        lowered = href.lower()
        # A mailto: link's subject and body are prose ("none", "null" are words there).
        address = lowered.split("?", 1)[0] if lowered.startswith("mailto:") else lowered
        if not href or any(marker in address for marker in _UNRESOLVED):
            warnings.append(f"link with an unresolved or empty address: {href!r}")
        elif not lowered.startswith(_SAFE_SCHEMES):
            warnings.append(f"link without https: {href}")
    warnings.extend(f"image without alt text: {src}" for src in parser.images_without_alt)
    return list(dict.fromkeys(warnings))  # once each, in order


def _shown(needle: str, html_text: str, plain: str) -> bool:
    wanted = " ".join(needle.split())
    return bool(wanted) and wanted in html_text and wanted in " ".join(plain.split())


def missing_identification(
    html: str,
    text: str,
    unsubscribe_url: str,
    link_works: bool,
    ident: Identification | None,
    language: str,
) -> list[str]:
    """What CASL requires that one rendered message does not show, in both of its parts.

    Sender name, mailing address and contact come from the campaign's ``identification``;
    the unsubscribe link must be a link in the HTML, written out in the text, and verify.
    """
    parser = _Links()
    parser.feed(html)
    seen = parser.visible
    missing: list[str] = []
    if ident is None:
        missing.append("identification (sender name, mailing address, contact) is not declared")
    else:
        for label, value in (
            ("the sender's name", ident.name_for(language)),
            ("the mailing address", ident.mailing_address),
            ("a contact method", ident.contact),
        ):
            if not _shown(value, seen, text):
                missing.append(f"{label} ({value!r})")
    if not (unsubscribe_url in parser.hrefs and unsubscribe_url in text and link_works):
        missing.append("a working unsubscribe link in both the HTML and the text part")
    return missing
