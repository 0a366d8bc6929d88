"""Reading and checking the import template (CSV and Excel), and the needs it becomes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from openpyxl import Workbook

from services.dataio import arrangements
from services.dataio.arrangements import COLUMNS, ImportFileError
from services.dataio.sender import Outgoing, batches
from shared.tscip import ALL, reference_payloads

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "import"
HEADER = ",".join(COLUMNS)


def write(tmp_path: Path, *rows: str, header: str = HEADER) -> Path:
    path = tmp_path / "a.csv"
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_the_reference_file_is_the_reports_100_arrangements_and_becomes_its_needs() -> None:
    rows, errors = arrangements.read(EXAMPLES / "000-tscip.csv", set(ALL))
    assert errors == [] and len(rows) == 100
    by_provider: dict[str, int] = {}
    for a in rows:
        by_provider[a.provider] = by_provider.get(a.provider, 0) + 1
    assert sorted(by_provider.values()) == [17, 28, 55]
    assert sum(a.annual_admin_cost for a in rows) == 426937
    events, errors = arrangements.needs(rows)
    assert errors == []
    sent = {json.loads(e.body)["data"]["need_id"]: json.loads(e.body)["data"] for e in events}
    want = {d["need_id"]: d for _, t, d in reference_payloads("fifteen") if t == "need.identified"}
    assert sent == want, "the same needs, field for field, as the reference partnership's"


def test_ids_depend_on_content_only() -> None:
    rows, _ = arrangements.read(EXAMPLES / "000-tscip.csv")
    first = [e.event_id for e in arrangements.needs(rows)[0]]
    assert first == [e.event_id for e in arrangements.needs(rows)[0]]
    assert len(set(first)) == len(first) == 35
    changed = [
        rows[0].__class__(**{**rows[0].__dict__, "annual_budget": rows[0].annual_budget + 1}),
        *rows[1:],
    ]
    second = [e.event_id for e in arrangements.needs(changed)[0]]
    assert sum(a != b for a, b in zip(first, second, strict=True)) == 1, "only the changed need gets a new id"


@pytest.mark.parametrize(
    "name",
    [
        "002-shropshire-illustrative.csv",
        "003-2020-vision-illustrative.xlsx",
        "004-milton-keynes-illustrative.csv",
    ],
)
def test_every_example_file_is_valid(name: str) -> None:
    rows, errors = arrangements.read(EXAMPLES / name)
    assert errors == [] and rows
    events, errors = arrangements.needs(rows)
    assert errors == [] and events


def test_every_bad_row_is_named_by_row_and_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "staffordshire-cc,R1,advocacy,,Asist,1000.00,100.00,2013-03-31,yes",
        "staffordshire-cc,R2,advocacy,,Asist,12.345,100,31/03/2013,maybe",
        'Stafford CC,R3,Advocacy,,Asist,"£1,000.50",,2013-02-30,',
        "staffordshire-cc,R1,advocacy,,Asist,-5,100.00,2013-03-31,no",
        "tamworth-bc,R9,advocacy,,Asist,1.00,1.00,2013-03-31,yes",
    )
    _, errors = arrangements.read(path, {"staffordshire-cc"})
    got = {(e.row, e.column) for e in errors}
    assert got == {
        (3, "annual_budget"),
        (3, "open_to_sharing"),
        (4, "partner_id"),
        (4, "service_category"),
        (4, "annual_admin_cost"),
        (4, "end_date"),
        (5, "annual_budget"),
        (6, "partner_id"),
    }
    text = {str(e) for e in errors}
    assert (
        "row 3, column F (annual_budget): '12.345' is not an amount in pounds with at most 2 decimal "
        "places, not negative (e.g. 41000.00)" in text
    )
    assert "row 4, column G (annual_admin_cost): is empty; it is required" in text
    # a duplicate reference is found once the row itself is fine
    path = write(
        tmp_path,
        "staffordshire-cc,R1,advocacy,,Asist,1,1,2013-03-31,",
        "staffordshire-cc,R1,advocacy,,Asist,1,1,2013-03-31,",
    )
    assert [str(e) for e in arrangements.read(path)[1]] == [
        "row 3, column B (arrangement_ref): 'R1' of staffordshire-cc is already on row 2"
    ]


def test_a_file_that_is_not_the_template_is_refused_whole(tmp_path: Path) -> None:
    with pytest.raises(ImportFileError, match="missing column.*annual_budget.*unknown column.*budget"):
        list(arrangements.read(write(tmp_path, header=HEADER.replace("annual_budget", "budget"))))
    with pytest.raises(ImportFileError, match="use a .csv or .xlsx"):
        arrangements.read(tmp_path / "a.txt")
    (tmp_path / "x.xlsx").write_bytes(b"not a workbook")
    with pytest.raises(ImportFileError, match="not an Excel workbook"):
        arrangements.read(tmp_path / "x.xlsx")


def test_excel_cells_numbers_and_dates_are_read(tmp_path: Path) -> None:
    from datetime import datetime

    book = Workbook()
    sheet = book.active
    sheet.append(list(COLUMNS))
    sheet.append(
        ["tamworth-bc", "T-1", "advocacy", None, "Asist", 1200.5, 41230, datetime(2013, 3, 31), "Yes"]
    )
    sheet.append(["tamworth-bc", "T-2", "advocacy", None, "Asist", 0.1 + 0.2, "2,000.00", "2013-03-31", None])
    book.save(tmp_path / "b.xlsx")
    rows, errors = arrangements.read(tmp_path / "b.xlsx")
    assert errors == []
    [need], _ = arrangements.needs(rows)
    data = json.loads(need.body)["data"]
    assert (data["annual_budget"], data["current_annual_resource_cost"], data["current_arrangements"]) == (
        "1200.80",
        "43230.00",
        2,
    )
    assert data["title"] == "Advocacy" and data["current_arrangements_end"] == "2013-03-31"


def test_batches_hold_one_partners_events_within_the_limits() -> None:
    events = [Outgoing(p, f"e{i}", b"x" * 100) for i in range(2500) for p in ("b", "a")]
    chunks = list(batches(events))
    assert [(c[0].partner_id, len(c)) for c in chunks] == [
        ("a", 1000),
        ("a", 1000),
        ("a", 500),
        ("b", 1000),
        ("b", 1000),
        ("b", 500),
    ]
    assert all(len({e.partner_id for e in c}) == 1 for c in chunks)
    big = [Outgoing("a", f"e{i}", b"x" * 60_000) for i in range(100)]
    assert [len(c) for c in batches(big)] == [69, 31], "4 MiB a batch"


def test_the_reference_file_is_what_make_examples_writes() -> None:
    import csv
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_examples", EXAMPLES / "make_examples.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with (EXAMPLES / "000-tscip.csv").open(newline="") as f:
        assert list(csv.reader(f))[1:] == module.tscip_rows()
