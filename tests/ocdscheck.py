"""OCDS validation by the Open Contracting Partnership's own checker (libcoveocds, the library
behind the Data Review Tool), offline: the standard's schema comes from a copy of the standard
(`COMMISSIONING_OCDS_STANDARD`, else `ocds-standard-1__1__5.zip` in the shared folder beside the
repository), never from the network. Without a copy the check is skipped, saying so: this
machine reaches no site the standard is published on, and the project ships no copy of it."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any
from unittest.mock import patch

import jsonref
from libcoveocds.api import ocds_json_output
from libcoveocds.config import LibCoveOCDSConfig

import pytest

from services.dataio.export import standard_zip

ROOT = Path(__file__).resolve().parent.parent
STANDARD_ZIP = standard_zip() or ROOT.parent / "shared" / "ocds-standard-1__1__5.zip"


class _Standard:
    """Where libcoveocds dereferences the record package schema, jsonref fetches the standard's
    other schema files by URL with `requests.get`; this answers those URLs from the same zip and
    refuses any other, so the check never touches the network."""

    BASE = "https://standard.open-contracting.org/schema/1__1__5/"

    class Response:
        def __init__(self, doc: Any) -> None:
            self.doc = doc

        def raise_for_status(self) -> None:
            pass

        def json(self, **_: Any) -> Any:
            return self.doc

    def get(self, uri: str, **_: Any) -> Response:
        if not uri.startswith(self.BASE):
            raise ConnectionError(f"the OCDS check fetches nothing: {uri}")
        with zipfile.ZipFile(STANDARD_ZIP) as z:
            name = next(n for n in z.namelist() if n.endswith("/schema/" + uri.removeprefix(self.BASE)))
            return self.Response(json.loads(z.read(name)))


def review(package: dict[str, Any]) -> dict[str, Any]:
    if not STANDARD_ZIP.is_file():
        pytest.skip(f"no copy of the OCDS 1.1.5 standard to validate against (set COMMISSIONING_OCDS_STANDARD "
                    f"or put it at {STANDARD_ZIP}); nothing can be fetched here")
    config = LibCoveOCDSConfig({"standard_zip": STANDARD_ZIP.resolve().as_uri(), "context": "api"})
    with patch.object(jsonref, "requests", _Standard()):
        return ocds_json_output(
            json_data=package, lib_cove_ocds_config=config, record_pkg="records" in package
        )


def problems(package: dict[str, Any]) -> dict[str, Any]:
    """What the checker finds wrong: schema errors, fields outside the schema, codes outside
    closed codelists, and its additional checks. Empty when the package is clean."""
    result = review(package)
    found = {
        "validation_errors": result["validation_errors"],
        "additional_fields": result["additional_fields"],
        "additional_closed_codelist_values": result["additional_closed_codelist_values"],
        "additional_checks": result["additional_checks"],
    }
    return {k: v for k, v in found.items() if v}
