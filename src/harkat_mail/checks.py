"""Pre-flight checks of rendered messages: what a person should look at before sending."""

from __future__ import annotations

from html.parser import HTMLParser

GMAIL_CLIP_BYTES = 102 * 1024
_SAFE_SCHEMES = ("https://", "mailto:", "tel:", "#")
_UNRESOLVED = ("{{", "{%", "none", "undefined", "null")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.hrefs: list[str] = []
        self.images_without_alt: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and "href" in values:
            self.hrefs.append((values["href"] or "").strip())
        elif tag == "img" and not (values.get("alt") or "").strip():
            self.images_without_alt.append(values.get("src") or "(no src)")


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
        if not href or any(marker in lowered for marker in _UNRESOLVED):
            warnings.append(f"link with an unresolved or empty address: {href!r}")
        elif not lowered.startswith(_SAFE_SCHEMES):
            warnings.append(f"link without https: {href}")
    warnings.extend(f"image without alt text: {src}" for src in parser.images_without_alt)
    return list(dict.fromkeys(warnings))  # once each, in order
