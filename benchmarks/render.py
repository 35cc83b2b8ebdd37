"""Render throughput: the sample appeal for 20,000 synthetic recipients, full render path.

Full path = Jinja on the CSS-inlined-once variant + text part + MIME bytes. The anchor,
measured in the same run on a slice, is the naive path: Jinja, premailer and html2text per
recipient, then a stdlib EmailMessage. Prints messages/s for both, their ratio, and peak RSS.

    python benchmarks/render.py [--recipients 20000] [--naive 300]
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from harkat_mail.campaign import load_campaign
from harkat_mail.mail.message import build_message
from harkat_mail.models import Contact, RenderedContent
from harkat_mail.render.inline import premailer_inline
from harkat_mail.render.plaintext import html_to_text
from harkat_mail.run import prepare

ROOT = Path(__file__).resolve().parent.parent
FIRST = ["Émilie", "Jean-François", "Zoë", "Amina", "Liam", "Gaëlle", "Raj", "Hélène", "Owen"]
LAST = ["Tremblay", "Côté", "Bélanger", "MacDonald", "Nguyen", "O'Neil", "Lévesque", "Singh"]


def recipients(count: int) -> list[Contact]:
    """Deterministic synthetic members, a third of them French-speaking."""
    out = []
    for i in range(count):
        first, last = FIRST[i % len(FIRST)], LAST[(i * 7) % len(LAST)]
        language = "fr" if i % 3 == 0 else "en"
        email = f"member{i}@example.org"
        fields = {
            "email": email,
            "first_name": first,
            "last_name": last,
            "local": str(100 + i % 900),
            "province": "QC" if language == "fr" else "ON",
            "language": language,
            "status": "active",
            "member_id": f"M{i:07d}",
        }
        out.append(
            Contact(
                key=email,
                email=email,
                row=i + 1,
                source="synthetic",
                language=language,
                first_name=first,
                last_name=last,
                member_id=f"M{i:07d}",
                fields=fields,
            )
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipients", type=int, default=20_000)
    parser.add_argument("--naive", type=int, default=300, help="recipients for the naive anchor")
    args = parser.parse_args()
    campaign = load_campaign(ROOT / "campaigns" / "sept2018.yaml")
    prepared = prepare(campaign)
    renderer = prepared.renderer
    people = recipients(args.recipients)

    started = time.perf_counter()
    size = 0
    for contact in people:
        size += len(prepared.compose(contact).data)
    fast = len(people) / (time.perf_counter() - started)

    started = time.perf_counter()
    for contact in people[: args.naive]:
        language = renderer.language_for(contact)
        ctx = renderer.context(contact)
        html = premailer_inline(renderer.html_env.get_template(f"{language}.html").render(ctx))
        subject = renderer.variants[language].subject.render(ctx)
        content = RenderedContent(subject=subject, html=html, text=html_to_text(html))
        build_message(campaign, contact, language, content, ctx["unsubscribe_url"])
    naive = args.naive / (time.perf_counter() - started)

    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"render: {fast:,.0f} messages/s over {len(people):,} recipients "
        f"(mean {size / len(people) / 1024:.1f} KB)"
    )
    print(
        f"naive anchor (premailer + EmailMessage per recipient): {naive:,.1f} messages/s "
        f"over {args.naive}"
    )
    print(f"ratio: {fast / naive:.1f}x the naive path; peak RSS {rss_mb:.0f} MB")
    met = fast >= 2000 and fast / naive >= 40
    print(f"goal: >= 2,000 messages/s and >= 40x: {'met' if met else 'NOT met'}")


if __name__ == "__main__":
    main()
