"""A council's existing arrangements, read from the import template (CSV or Excel) and turned
into `need.identified` events. Pure apart from reading the file; docs/import.md is the template.

Every row is checked before anything is built, and every problem is reported with its row (as a
spreadsheet numbers it: the header is row 1) and its column, so a file is fixed in one pass.
One need per partner and service category: `current_arrangements` counts its rows, the budget
and the administration cost are their sums, `current_arrangements_end` is the latest end date
(the need can be replaced when all its arrangements can), and it is open to sharing unless a
row says no.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from shared.events import NeedIdentified, errors_of
from shared.money import money_str

#: column -> required; the order is the template's
COLUMNS = {
    "partner_id": True,
    "arrangement_ref": True,
    "service_category": True,
    "service_title": False,
    "provider": False,
    "annual_budget": True,
    "annual_admin_cost": True,
    "end_date": True,
    "open_to_sharing": False,
}
MAX_ROWS = 100_000  # far more than any partnership maps; a bigger file is a mistake
_ID = re.compile(r"^[a-z0-9-]{1,64}$")
_CATEGORY = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")
_MONEY = re.compile(r"^\d{1,13}(\.\d{1,2})?$")
_UK_DATE = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")
_YES = {"yes", "y", "true", "1"}
_NO = {"no", "n", "false", "0"}


@dataclass(frozen=True)
class RowError:
    row: int
    column: str | None  # None: the row (or the file) as a whole
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (
            f", column {_letter(self.column)} ({self.column})" if self.column else ""
        )
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "column": self.column, "message": self.message}


@dataclass(frozen=True)
class Arrangement:
    row: int
    partner_id: str
    ref: str
    category: str
    title: str
    provider: str
    annual_budget: Decimal
    annual_admin_cost: Decimal
    end_date: date
    open_to_sharing: bool


class ImportFileError(ValueError):
    """The file cannot be read as the template at all (not its rows: those are RowErrors)."""


def _letter(column: str) -> str:
    return chr(ord("A") + list(COLUMNS).index(column)) if column in COLUMNS else "?"


def read_rows(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, {column: value}) for every non-empty row under the header."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".xlsx", ".xlsm"):
        rows = _xlsx_rows(path)
    else:
        raise ImportFileError(
            f"{path.name}: use a .csv or .xlsx file made from the template (docs/import.md)"
        )
    header = next(rows, None)
    if header is None:
        raise ImportFileError(f"{path.name} is empty: the first row must name the columns")
    names = [str(h or "").strip().lower().replace(" ", "_") for h in header]
    missing = [c for c, required in COLUMNS.items() if required and c not in names]
    unknown = [n for n in names if n and n not in COLUMNS]
    if missing or unknown:
        raise ImportFileError(
            f"{path.name}, row 1 (the header): "
            + "; ".join(
                filter(
                    None,
                    [
                        missing and f"missing column(s) {', '.join(missing)}",
                        unknown and f"unknown column(s) {', '.join(unknown)}",
                    ],
                )
            )
            + f"; the columns are {', '.join(COLUMNS)}"
        )
    for number, values in enumerate(rows, start=2):
        if number - 1 > MAX_ROWS:
            raise ImportFileError(f"{path.name} has more than {MAX_ROWS} rows")
        row = {n: v for n, v in zip(names, values, strict=False) if n}
        if any(v not in (None, "") and str(v).strip() for v in row.values()):
            yield number, row


def _csv_rows(path: Path) -> Iterator[list[Any]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # Excel's "CSV UTF-8" starts with a BOM
            yield from csv.reader(f)
    except UnicodeDecodeError as e:
        raise ImportFileError(f"{path.name} is not UTF-8 text: save it as 'CSV UTF-8' ({e})") from e


def _xlsx_rows(path: Path) -> Iterator[list[Any]]:
    from zipfile import BadZipFile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        book = load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, BadZipFile, OSError, KeyError) as e:
        raise ImportFileError(f"{path.name} is not an Excel workbook: {e}") from e
    sheet = book["arrangements"] if "arrangements" in book.sheetnames else book.worksheets[0]
    try:
        for values in sheet.iter_rows(values_only=True):
            yield list(values)
    finally:
        book.close()


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _money(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError("is not an amount of money")
    if isinstance(value, float):  # an Excel number cell; a formula's sum may carry float noise
        exact = Decimal(repr(value))
        pennies = exact.quantize(Decimal("0.01"))
        value = str(pennies) if abs(exact - pennies) < Decimal("0.000001") else repr(value)
    elif isinstance(value, int):
        value = str(value)
    text = _text(value).removeprefix("£").replace(",", "")
    text = text.removesuffix(".0")  # an Excel number shown as 41230.0
    if not _MONEY.match(text):
        raise ValueError(
            f"'{_text(value)}' is not an amount in pounds with at most 2 decimal places, "
            "not negative (e.g. 41000.00)"
        )
    try:
        return Decimal(text)
    except InvalidOperation as e:  # pragma: no cover - the pattern admits only decimals
        raise ValueError(f"'{text}' is not a number") from e


def _date(value: Any) -> date:
    if isinstance(value, datetime):  # an Excel date cell
        return value.date()
    if isinstance(value, date):
        return value
    text = _text(value)
    m = _UK_DATE.match(text)
    try:
        if m:
            return date(int(m.group(3)), int(m.group(2)), int(m.group(1)))
        return date.fromisoformat(text)
    except ValueError as e:
        raise ValueError(f"'{text}' is not a date: use 2013-03-31 or 31/03/2013") from e


def _yes_no(value: Any) -> bool:
    text = _text(value).lower()
    if text in _YES or text == "":
        return True
    if text in _NO:
        return False
    raise ValueError(f"'{_text(value)}' is not yes or no")


def _title(category: str) -> str:
    return category.replace("-", " ").capitalize()


def parse_row(number: int, row: dict[str, Any]) -> tuple[Arrangement | None, list[RowError]]:
    errors: list[RowError] = []
    values: dict[str, Any] = {}
    for column, required in COLUMNS.items():
        raw = row.get(column)
        if required and _text(raw) == "":
            errors.append(RowError(number, column, "is empty; it is required"))
            continue
        try:
            if column in ("annual_budget", "annual_admin_cost"):
                values[column] = _money(raw)
            elif column == "end_date":
                values[column] = _date(raw)
            elif column == "open_to_sharing":
                values[column] = _yes_no(raw)
            else:
                values[column] = _text(raw)
        except ValueError as e:
            errors.append(RowError(number, column, str(e)))
    if "partner_id" in values and not _ID.match(values["partner_id"]):
        errors.append(
            RowError(
                number,
                "partner_id",
                f"'{values['partner_id']}' is not a partner id (lowercase letters, digits and hyphens)",
            )
        )
    if "service_category" in values and not _CATEGORY.match(values["service_category"]):
        errors.append(
            RowError(
                number,
                "service_category",
                f"'{values['service_category']}' is not a category "
                "key (lowercase letters, digits and hyphens)",
            )
        )
    if errors:
        return None, errors
    return Arrangement(
        number,
        values["partner_id"],
        values["arrangement_ref"],
        values["service_category"],
        values["service_title"] or _title(values["service_category"]),
        values["provider"],
        values["annual_budget"],
        values["annual_admin_cost"],
        values["end_date"],
        values["open_to_sharing"],
    ), []


def read(path: Path, partners: set[str] | None = None) -> tuple[list[Arrangement], list[RowError]]:
    """Every row of the file, checked; the arrangements only count when the errors are empty.
    `partners`: the partner ids this run may sign for (rows of any other are errors)."""
    arrangements: list[Arrangement] = []
    errors: list[RowError] = []
    first_row: dict[tuple[str, str], int] = {}
    for number, row in read_rows(path):
        arrangement, row_errors = parse_row(number, row)
        errors += row_errors
        if arrangement is None:
            continue
        if partners is not None and arrangement.partner_id not in partners:
            errors.append(
                RowError(
                    number,
                    "partner_id",
                    f"'{arrangement.partner_id}' is not a partner this run "
                    f"signs for ({', '.join(sorted(partners))})",
                )
            )
        key = (arrangement.partner_id, arrangement.ref)
        if key in first_row:
            errors.append(
                RowError(
                    number,
                    "arrangement_ref",
                    f"'{arrangement.ref}' of {arrangement.partner_id} is already on row {first_row[key]}",
                )
            )
        first_row.setdefault(key, number)
        arrangements.append(arrangement)
    if not arrangements and not errors:
        errors.append(RowError(2, None, "the file has a header but no arrangements"))
    return arrangements, errors


@dataclass(frozen=True)
class NeedEvent:
    partner_id: str
    event_id: str
    body: bytes  # the CloudEvent, structured mode, as it is signed and sent
    rows: tuple[int, ...]


def needs(arrangements: list[Arrangement]) -> tuple[list[NeedEvent], list[RowError]]:
    """One `need.identified` per partner and category, with an id that depends only on what it
    says: the same file gives the same events (a re-run sends nothing new), a changed need gets
    a new id. Each need is checked against the contract's own model before anything is sent."""
    groups: dict[tuple[str, str], list[Arrangement]] = {}
    for a in arrangements:
        groups.setdefault((a.partner_id, a.category), []).append(a)
    out: list[NeedEvent] = []
    errors: list[RowError] = []
    for (partner, category), rows in groups.items():
        data = {
            "need_id": f"{partner}-{category}",
            "partner_id": partner,
            "service_category": category,
            "title": rows[0].title,
            "annual_budget": money_str(sum(a.annual_budget for a in rows)),
            "current_arrangements": len(rows),
            "current_annual_resource_cost": money_str(sum(a.annual_admin_cost for a in rows)),
            "current_arrangements_end": max(a.end_date for a in rows).isoformat(),
            "open_to_sharing": all(a.open_to_sharing for a in rows),
        }
        try:
            NeedIdentified.model_validate(data)
        except ValidationError as e:
            errors += [
                RowError(rows[0].row, None, f"the need {data['need_id']}: {err['loc']}: {err['msg']}")
                for err in errors_of(e)
            ]
            continue
        digest = hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:24]
        event = {
            "specversion": "1.0",
            "id": f"import-{digest}",
            "source": f"/partners/{partner}",
            "type": NeedIdentified.type,
            "datacontenttype": "application/json",
            "data": data,
        }
        out.append(
            NeedEvent(
                partner,
                event["id"],
                json.dumps(event, separators=(",", ":")).encode(),
                tuple(a.row for a in rows),
            )
        )
    return out, errors
