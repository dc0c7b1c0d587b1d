"""DCMTK 3.6.9's UID dictionary: symbolic names for ``-xf`` files and the "known" set of ``-pm``.

storescp resolves names in a profile (``CTImageStorage``, ``JPEGBaseline``) through dcmdata's
UID name table, and ``--promiscuous`` accepts exactly the abstract syntaxes that table does
not know (spec §2.4, §11). pydicom's dictionary is close but not the same, so the table is
DCMTK's own, shipped as ``spoolscp/data/dcmtk-uid-names-3.6.9.tsv`` (one UID may have an
old alias name too, e.g. ``ImplantationPlanSRDocumentStorage``).

>>> uid_for_name("JPEGBaseline")
'1.2.840.10008.1.2.4.50'
>>> is_known("1.2.840.10008.5.1.4.38.1"), is_known("1.2.3.4.5.6.7.8.9")
(True, False)
"""

from __future__ import annotations

import csv
from functools import cache
from importlib import resources

TABLE = "dcmtk-uid-names-3.6.9.tsv"


@cache
def _rows() -> tuple[tuple[str, str], ...]:
    text = resources.files("spoolscp.data").joinpath(TABLE).read_text()
    lines = [line for line in text.splitlines() if not line.startswith("#")]
    return tuple((r["uid"], r["dcmtk_name"]) for r in csv.DictReader(lines, delimiter="\t"))


@cache
def _by_name() -> dict[str, str]:
    names: dict[str, str] = {}
    for uid, name in _rows():
        names.setdefault(name, uid)  # DCMTK returns the first match
    return names


@cache
def _by_uid() -> dict[str, str]:
    uids: dict[str, str] = {}
    for uid, name in _rows():
        uids.setdefault(uid, name)  # the first name is the current one, later ones are aliases
    return uids


def uid_for_name(name: str) -> str | None:
    """The UID DCMTK's ``dcmFindUIDFromName`` gives for ``name`` (exact, case-sensitive)."""
    return _by_name().get(name)


def is_known(uid: str) -> bool:
    """True if DCMTK 3.6.9 has a name for ``uid`` (then ``-pm`` does not rescue it)."""
    return uid in _by_uid()


def name_for_uid(uid: str) -> str | None:
    """DCMTK's name for ``uid`` (``dcmFindNameOfUID``), as its logs show it after ``=``."""
    return _by_uid().get(uid)
