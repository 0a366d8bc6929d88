"""Writes the example import files in this folder: `python examples/import/make_examples.py`.

000 is the reference partnership (seed 000) row by row: its 100 arrangements, split between
partners exactly as shared/tscip.py does, each partner's total per category divided evenly
between its arrangements (pennies to the first rows). Seeds 002-004 publish no arrangements:
their files are small and illustrative, and say so in their names and in README.md.
"""

from __future__ import annotations

import csv
import sys
from decimal import Decimal
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent))

from services.dataio.arrangements import COLUMNS  # noqa: E402
from shared.tscip import ADVOCACY, ARRANGEMENTS, CATEGORIES, DEBT, INFRA  # noqa: E402

PROVIDERS = {
    DEBT: "Citizens Advice bureau",
    INFRA: "Council for voluntary service (CVS/VAST)",
    ADVOCACY: "Asist",
}
SHORT = {DEBT: "DEBT", INFRA: "INFRA", ADVOCACY: "ADV"}


def split(total: str, n: int) -> list[Decimal]:
    pence = int(Decimal(total) * 100)
    return [Decimal(pence // n + (1 if i < pence % n else 0)) / 100 for i in range(n)]


def tscip_rows() -> list[list[str]]:
    rows = []
    for pid, categories in ARRANGEMENTS.items():
        code = "".join(w[0] for w in pid.split("-")).upper()
        for category, (n, cost, budget) in categories.items():
            title, ends = CATEGORIES[category]
            for i, (b, c) in enumerate(zip(split(budget, n), split(cost, n), strict=True), start=1):
                rows.append(
                    [
                        pid,
                        f"{code}-{SHORT[category]}-{i:02d}",
                        category,
                        title,
                        PROVIDERS[category],
                        f"{b:.2f}",
                        f"{c:.2f}",
                        ends,
                        "yes",
                    ]
                )
    return rows


ILLUSTRATIVE = {
    # seed 002, Shropshire: the council and its health and police partners (figures invented)
    "002-shropshire-illustrative.csv": [
        [
            "shropshire-council",
            "SC-ADV-01",
            "advocacy",
            "Advocacy",
            "Local advocacy charity",
            "85000.00",
            "6200.00",
            "2013-03-31",
            "yes",
        ],
        [
            "shropshire-council",
            "SC-CARERS-01",
            "carers",
            "Carers' support",
            "Carers' centre",
            "120000.00",
            "7400.00",
            "2013-03-31",
            "yes",
        ],
        [
            "shropshire-pct",
            "SPCT-ADV-01",
            "advocacy",
            "Advocacy",
            "Local advocacy charity",
            "40000.00",
            "3900.00",
            "2013-06-30",
            "yes",
        ],
        [
            "west-mercia-police",
            "WMP-VICTIMS-01",
            "victim-support",
            "Victim support",
            "Victim support charity",
            "60000.00",
            "4100.00",
            "2013-03-31",
            "no",
        ],
    ],
    # seed 004, Milton Keynes: small grants and quotes below the £25,000 boundary (figures invented)
    "004-milton-keynes-illustrative.csv": [
        [
            "milton-keynes-council",
            "MKC-VOL-01",
            "infrastructure-volunteering",
            "Volunteering infrastructure",
            "Community action MK",
            "24000.00",
            "2600.00",
            "31/03/2012",
            "yes",
        ],
        [
            "milton-keynes-council",
            "MKC-VOL-02",
            "infrastructure-volunteering",
            "Volunteering infrastructure",
            "Volunteer centre",
            "18500.00",
            "2100.00",
            "31/03/2012",
            "yes",
        ],
        [
            "milton-keynes-pct",
            "MKPCT-VOL-01",
            "infrastructure-volunteering",
            "Volunteering infrastructure",
            "Volunteer centre",
            "9000.00",
            "1800.00",
            "30/06/2012",
            "yes",
        ],
    ],
}

# seed 003, the 2020 Vision partnership of four district councils (figures invented): an Excel file
VISION = [
    [
        pid,
        f"{pid.split('-')[0][:4].upper()}-{cat[:4].upper()}-01",
        cat,
        title,
        provider,
        budget,
        cost,
        ends,
        "yes",
    ]
    for pid in ("cheltenham-bc", "cotswold-dc", "forest-of-dean-dc", "west-oxfordshire-dc")
    for cat, title, provider, budget, cost, ends in (
        (
            "debt-benefits-consumer-advice",
            "Debt, benefits and consumer advice",
            "Citizens Advice",
            "45000.00",
            "3100.00",
            "2016-03-31",
        ),
        (
            "community-grants",
            "Community grants",
            "Local community groups",
            "20000.00",
            "2400.00",
            "2016-03-31",
        ),
    )
]


def write_csv(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)


def write_xlsx(path: Path, rows: list[list[object]], note: str) -> None:
    from openpyxl import Workbook

    book = Workbook()
    sheet = book.active
    sheet.title = "arrangements"
    sheet.append(list(COLUMNS))
    for row in rows:
        sheet.append([Decimal(v) if i in (5, 6) else v for i, v in enumerate(row)])
    about = book.create_sheet("about")
    about.append([note])
    book.save(path)


def main() -> None:
    write_csv(HERE / "000-tscip.csv", tscip_rows())
    for name, rows in ILLUSTRATIVE.items():
        write_csv(HERE / name, rows)
    write_xlsx(
        HERE / "003-2020-vision-illustrative.xlsx",
        VISION,
        "ILLUSTRATIVE: seed 003 publishes no arrangements; these figures are invented.",
    )
    write_csv(HERE / "template.csv", [])
    write_xlsx(
        HERE / "template.xlsx",
        [],
        "Fill in the 'arrangements' sheet: one row per arrangement; "
        "the columns are described in docs/import.md.",
    )


if __name__ == "__main__":
    main()
