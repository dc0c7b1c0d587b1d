"""DCMTK 3.6.9's SOP class table: file-name codes and the classes accepted by default.

>>> code_for("1.2.840.10008.5.1.4.1.1.2")
'CT'
>>> code_for("1.2.3.4"), log_code_for("1.2.3.4")
('UNKNOWN', 'OT')
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources


@cache
def _rows() -> list[dict[str, str]]:
    text = resources.files("spoolscp.data").joinpath("storescp-sop-classes-by-version.tsv").read_text()
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


@cache
def codes() -> dict[str, str]:
    """SOP class UID -> 3.6.9 file-name code (spec §5)."""
    return {r["sop_class_uid"]: r["code_3.6.9"] for r in _rows() if r["code_3.6.9"]}


@cache
def keywords() -> dict[str, str]:
    """SOP class UID -> DICOM keyword, for registering classes pynetdicom lacks."""
    return {r["sop_class_uid"]: r["dicom_keyword"] for r in _rows()}


@cache
def accepted_by_default() -> tuple[str, ...]:
    """The storage classes storescp 3.6.9 accepts without ``-xf`` (spec §2.4), in table order."""
    return tuple(r["sop_class_uid"] for r in _rows() if r["accepted_by_default_3.6.9"] == "yes")


def code_for(sop_class: str) -> str:
    """The file-name code; ``UNKNOWN`` for classes outside the table."""
    return codes().get(sop_class, "UNKNOWN")


def log_code_for(sop_class: str) -> str:
    """The code in "Received Store Request" log lines: ``OT`` for unknown classes."""
    return codes().get(sop_class, "OT")
