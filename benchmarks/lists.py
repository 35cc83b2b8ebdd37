"""Member-list cleaning speed: a 1,000,000-row messy export, loaded, cleaned and counted.

Times load + clean + full validation (email-validator's verdict) + dedupe + segment counts in
this process, and the naive pandas pass (regex check only, which lets ``x@gmail..com``
through) in the same run as the anchor. Prints both, their ratio and the peak RSS.

    python benchmarks/lists.py [--rows 1000000]
"""

from __future__ import annotations

import argparse
import random
import re
import resource
import tempfile
import time
from pathlib import Path

import pandas as pd

from harkat_mail.lists.cleaning import clean_list
from harkat_mail.models import ListConfig

FIRST = [
    "Émilie",
    "jean-françois",
    "  MARIE ",
    "Zoë",
    "Ahmed",
    "Chloé",
    "Lucas",
    "Noémie",
    "O'Brien",
    "Björn",
    "Sophie",
    "Thérèse",
    "Liam",
    "Gaëlle",
    "Raj",
    "Anaïs",
]
LAST = ["Tremblay", "Côté", "GAGNON", "roy", "Bélanger", "MacDonald", "Nguyen", "Lévesque"]
PROVINCES = ["ON", "QC", "BC", "AB", "MB", "SK", "NS", "NB", "NL", "PE"]
LANGS = ["en", "EN", "English", " fr", "FR", "Français"]
BAD = [
    "x@gmail..com",
    "no-at-sign.example.org",
    "a b@example.org",
    "@example.org",
    "trailing.@example.org",
    "a@@example.org",
]


def generate(path: Path, rows: int) -> None:
    """A messy export: ~3% duplicates (case, spaces), ~1% invalid, accents, mixed case."""
    rnd = random.Random(7)
    handle = path.open("w", encoding="utf-8")
    handle.write("Email,First Name,Last Name,Language,Local,Province,Status\n")
    emails: list[str] = []
    for i in range(rows):
        roll = rnd.random()
        if roll < 0.03 and emails:
            email = f"  {rnd.choice(emails).upper()} "
        elif roll < 0.04:
            email = rnd.choice(BAD)
        else:
            domain = rnd.choice(["example.org", "Example.COM", "mail.example.ca"])
            email = f"member{i}.{rnd.choice('abc')}@{domain}"
            emails.append(email)
        status = rnd.choice(["active", "Active", " ACTIVE", "retired", "inactive"])
        handle.write(
            f"{email},{rnd.choice(FIRST)},{rnd.choice(LAST)},{rnd.choice(LANGS)},"
            f"{rnd.randint(1, 999)},{rnd.choice(PROVINCES)},{status}\n"
        )
    handle.close()


NAIVE_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def naive(path: Path) -> int:
    """The anchor: read, trim, regex check, dedupe, segment counts."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    email = frame["Email"].str.strip().str.lower()
    frame = frame[email.str.match(NAIVE_RE)].assign(key=email)
    frame = frame.drop_duplicates("key")
    counts = frame.groupby([frame["Status"].str.strip().str.lower(), "Province"]).size()
    return int(counts.sum())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "export.csv"
        generate(path, args.rows)
        started = time.perf_counter()
        cleaned = clean_list(
            ListConfig(paths=(path,), segment={"status": "active"}, segment_name="active"),
            "language",
            "en",
        )
        counts = cleaned.counts()
        ours = time.perf_counter() - started
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        started = time.perf_counter()
        naive(path)
        anchor = time.perf_counter() - started
    print(
        f"harkat-mail: {ours:.2f} s for {args.rows:,} rows "
        f"({counts['kept']:,} kept, {counts['rejected']:,} rejected; peak RSS {rss:.0f} MB)"
    )
    print(f"naive pandas pass, regex only (same run): {anchor:.2f} s")
    print(f"ratio: {ours / anchor:.2f}x the naive pass's time")
    print(f"goal: <= 6 s and <= 1 GB: {'met' if ours <= 6 and rss <= 1024 else 'NOT met'}")


if __name__ == "__main__":
    main()
