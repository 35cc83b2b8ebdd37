"""Write lists/members.csv: ~200 synthetic members with the mess real exports have.

Every name is invented by combining common given names and surnames; addresses use the
reserved example.* domains. Deterministic (fixed seed): run it again to get the same file.
"""

from __future__ import annotations

import csv
import random
import unicodedata
from pathlib import Path

FIRST = [
    "Émilie",
    "Jean-François",
    "Marie",
    "Zoë",
    "Amina",
    "Chloé",
    "Lucas",
    "Noémie",
    "Liam",
    "Gaëlle",
    "Raj",
    "Anaïs",
    "Hélène",
    "Mathieu",
    "Priya",
    "Owen",
    "Sylvie",
    "Karim",
    "Léa",
    "Daniel",
    "Françoise",
    "Tariq",
    "Maëlle",
    "Ian",
    "Josée",
    "Nadia",
    "Benoît",
    "Grace",
    "Stéphane",
    "Ruth",
]
LAST = [
    "Tremblay",
    "Gagnon",
    "Roy",
    "Côté",
    "Bouchard",
    "Gauthier",
    "Morin",
    "Lavoie",
    "Fortin",
    "Gagné",
    "Ouellet",
    "Pelletier",
    "Bélanger",
    "Lévesque",
    "Bergeron",
    "Leblanc",
    "Paquette",
    "Girard",
    "Simard",
    "Boucher",
    "Caron",
    "Beaulieu",
    "Cloutier",
    "Dubé",
    "Poirier",
    "MacDonald",
    "Campbell",
    "Singh",
    "Nguyen",
    "O'Neil",
]
PROVINCES = ["ON", "QC", "QC", "ON", "BC", "AB", "MB", "NB", "NS", "SK", "NL"]
DOMAINS = ["example.org", "example.com", "example.net", "mail.example.ca"]
LANGUAGE_SPELLINGS = {
    "en": ["en", "EN", "English", " en ", "anglais"],
    "fr": ["fr", "FR", "Français", "french", " fr"],
}


def main() -> None:
    rnd = random.Random(20180919)
    rows = []
    used: set[str] = set()
    while len(rows) < 190:
        first, last = rnd.choice(FIRST), rnd.choice(LAST)
        local_part = f"{first}.{last}".lower().replace("'", "")
        local_part = unicodedata.normalize("NFKD", local_part).encode("ascii", "ignore").decode()
        email = f"{local_part}{rnd.randint(1, 99)}@{rnd.choice(DOMAINS)}"
        if email in used:
            continue
        used.add(email)
        province = rnd.choice(PROVINCES)
        lang = "fr" if province == "QC" or rnd.random() < 0.15 else "en"
        status = rnd.choices(["active", "retired", "inactive"], weights=[85, 10, 5])[0]
        rows.append(
            {
                "member_id": f"M{100000 + len(rows) * 37}",
                "email": email,
                "first_name": first,
                "last_name": last,
                "local": str(rnd.choice([1, 5, 12, 47, 102, 135, 211, 340, 512, 777])),
                "province": province,
                "language": rnd.choice(LANGUAGE_SPELLINGS[lang]),
                "status": rnd.choice([status, status, status.title(), f" {status.upper()} "]),
            }
        )
    # The mess: stray spaces, mixed case, case-only duplicates, invalid addresses.
    for i in range(0, len(rows), 9):
        rows[i]["email"] = f"  {rows[i]['email'].upper()} "
    for i in range(3, len(rows), 11):
        rows[i]["first_name"] = f" {rows[i]['first_name'].upper()}  "
        rows[i]["last_name"] = rows[i]["last_name"].lower()
    for i in (4, 27, 58, 99, 141):
        dup = dict(rows[i])
        dup["email"] = dup["email"].strip().title()
        dup["member_id"] = ""
        rows.append(dup)
    for bad in (
        "marc.roy@@example.org",
        "sophie.caron@example..org",
        "no-at-sign.example.org",
        "lucie gagnon@example.com",
        "",
        "trailing.dot.@example.net",
    ):
        rows.append(
            {
                "member_id": f"M9{len(rows):05d}",
                "email": bad,
                "first_name": "Lucie",
                "last_name": "Gagnon",
                "local": "12",
                "province": "ON",
                "language": "en",
                "status": "active",
            }
        )
    rnd.shuffle(rows)
    # CASL consent (a separate generator, so the columns above stay as they were): most are
    # current members (implied), some gave express consent, a few have no basis at all.
    consent_rnd = random.Random(2018)
    for row in rows:
        roll = consent_rnd.random()
        if roll < 0.04:
            row["consent"] = consent_rnd.choice(["", "withdrawn"])
        elif roll < 0.2:
            year, month = consent_rnd.randint(2012, 2018), consent_rnd.randint(1, 12)
            word = consent_rnd.choice(["express", "Exprès"])
            row["consent"] = f"{word} {year}-{month:02d}-15"
        elif "retired" in row["status"].lower():
            row["consent"] = "implied 2016-06-30"  # membership ended: expired two years on
        else:
            row["consent"] = consent_rnd.choice(["implied", "implied", "Implicite", "member"])
    out = Path(__file__).resolve().parent.parent / "lists" / "members.csv"
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {len(rows)} rows to {out}")


if __name__ == "__main__":
    main()
