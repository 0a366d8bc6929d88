"""`commissioning export ocds`: the canonical streams of one partnership as OCDS 1.1 files.

Reads only the accepted streams (`P:<type>`, and `P:sealed:bid.submitted` unless `--public`),
never `P:inbound`: what a partner sent but the owning service refused is not open data.
Writes `release-package.json`, `record-package.json` (each contracting process's releases and
its compiled release, merged by the Open Contracting Partnership's `ocdsmerge`) and, with
flattentool, `csv/` (the releases as spreadsheets). The streams are read through the `Entries`
port (shared.ports).
"""

from __future__ import annotations

import json
import os
import tempfile
import warnings
import zipfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from services.dataio.ocds import BIDS, TYPES, Builder, Fact
from shared.ports import Entries
from shared.streams import Streams

PAGE = 1000
#: what the project compiles records with when no copy of the standard is given: ocdsmerge's
#: defaults (objects merged by `id`, other values replaced by the latest) with the standard's
#: rule that a release's own `id` and `tag` are not carried into the compiled release
MERGE_RULES: dict[tuple[str, ...], set[str]] = {("id",): {"omitWhenMerged"}, ("tag",): {"omitWhenMerged"}}


class ExportError(RuntimeError):
    pass


def standard_zip() -> Path | None:
    """The OCDS 1.1.5 standard as the Open Contracting Partnership publishes it (the zip of its
    repository at tag `1__1__5`), where the operator has a copy: `COMMISSIONING_OCDS_STANDARD`.
    Nothing is fetched from the network."""
    path = os.environ.get("COMMISSIONING_OCDS_STANDARD")
    return Path(path) if path and Path(path).is_file() else None


def release_schema() -> dict[str, Any] | None:
    zip_path = standard_zip()
    if zip_path is None:
        return None
    with zipfile.ZipFile(zip_path) as z:
        name = next(n for n in z.namelist() if n.endswith("/schema/release-schema.json"))
        return json.loads(z.read(name))


async def read_facts(entries: Entries, streams: Streams, public: bool) -> list[Fact]:
    keys = [streams.of_type(t) for t in TYPES] + ([] if public else [streams.accepted(BIDS)])
    present = [k for k in keys if await entries.length(k) > 0]
    if not present:
        raise ExportError(
            f"no partnership under the prefix '{streams.prefix}' at this Redis: none of its streams "
            f"({streams.of_type('need.identified')}, {streams.of_type('tender.awarded')}, ...) holds an "
            "entry; give --partnership with the prefix it runs under (its COMMISSIONING_PREFIX)"
        )
    facts = []
    for key in present:
        after = "-"
        # in pages: one read never returns a whole long stream at once
        while page := await entries.events(key, after, PAGE):
            for entry_id, raw in page:
                try:
                    ev = json.loads(raw or b"")
                except ValueError:
                    continue  # not a contract entry: nothing to publish
                facts.append(Fact(entry_id, ev["type"], ev["data"]))
            after = page[-1][0]
    return facts


def packages(
    releases: list[dict[str, Any]], uri: str, publisher: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    from ocdsmerge import Merger

    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    meta = {"publishedDate": now, "publisher": {"name": publisher}, "version": "1.1"}
    release_package = {"uri": f"{uri}/release-package.json", **meta, "releases": releases}
    schema = release_schema()
    merger = Merger(schema) if schema is not None else Merger(merge_rules=MERGE_RULES)
    by_ocid: dict[str, list[dict[str, Any]]] = {}
    for release in releases:
        by_ocid.setdefault(release["ocid"], []).append(release)
    records = [
        {"ocid": ocid, "releases": rels, "compiledRelease": merger.create_compiled_release(rels)}
        for ocid, rels in by_ocid.items()
    ]
    return release_package, {"uri": f"{uri}/record-package.json", **meta, "records": records}


def flatten(package_path: Path, out_dir: Path) -> None:
    from flattentool import flatten as flattentool_flatten

    release = release_schema()
    with tempfile.TemporaryDirectory() as tmp:
        schema = Path(tmp) / "release-schema.json"
        schema.write_text(json.dumps(release), encoding="utf-8")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # flattentool warns about each optional column it leaves out
            flattentool_flatten(
                str(package_path),
                schema=str(schema) if release is not None else "",  # with it: the schema's column titles
                output_name=str(out_dir),
                output_format="csv",
                root_list_path="releases",
                main_sheet_name="releases",
                root_id="ocid",
                remove_empty_schema_columns=True,
                line_terminator="LF",
            )


async def export(
    entries: Entries,
    prefix: str,
    out: Path,
    ocid_prefix: str,
    publisher: str,
    *,
    public: bool = False,
    csv: bool = True,
    names: dict[str, str] | None = None,
    uri: str | None = None,
) -> list[str]:
    facts = await read_facts(entries, Streams(prefix), public)
    releases = Builder(ocid_prefix, names or {}, public).releases(facts)
    out.mkdir(parents=True, exist_ok=True)
    release_package, record_package = packages(releases, uri or out.resolve().as_uri(), publisher)
    written = []
    for name, doc in (("release-package.json", release_package), ("record-package.json", record_package)):
        (out / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False), encoding="utf-8")
        written.append(f"wrote {out / name}")
    if csv:
        flatten(out / "release-package.json", out / "csv")
        written.append(f"wrote {out / 'csv'}/ ({len(list((out / 'csv').glob('*.csv')))} CSV files)")
    kept = "confidential figures left out" if public else "including partners' budgets and bidders"
    written.append(
        f"{len(releases)} releases in {len(record_package['records'])} contracting processes "
        f"from {len(facts)} accepted events ({kept})"
    )
    return written
