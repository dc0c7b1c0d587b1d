"""Study folder names for ``-ss``, ``-su`` and ``-sp`` (spec §6).

>>> study_dir_name("uid", "P", "1.2.3", None, datetime(2026, 11, 25, 12, 33, 20, 996000))
'P_1.2.3'
>>> study_dir_name("conc", "PRE", "1.2.3", None, datetime(2026, 11, 25, 12, 33, 20, 996000))
'PRE_20261125_123320996'
>>> transliterate(b"M\\xfcller^J\\xf6rg \\xc7a=\\xdf")
'Mueller_Joerg_Ca_ss'
"""

from __future__ import annotations

import logging
from datetime import datetime

from spoolscp.naming import sanitize

log = logging.getLogger("spoolscp.worker")


def _latin1_table() -> dict[int, str]:
    """DCMTK's byte -> ASCII mapping for patient names (spec §6 table)."""
    table = {b: "_" for b in range(256)}
    table.update({ord(c): c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"})
    spans = {
        "A": "C0-C3 C5-C6", "Ae": "C4", "C": "C7", "E": "C8-CB", "I": "CC-CF", "D": "D0", "N": "D1",
        "O": "D2-D5 D8", "Oe": "D6", "U": "D9-DB", "Ue": "DC", "Y": "DD", "ss": "DF",
        "a": "E0-E3 E5-E6", "ae": "E4", "c": "E7", "e": "E8-EB", "i": "EC-EF", "d": "F0", "n": "F1",
        "o": "F2-F5 F8", "oe": "F6", "u": "F9-FB", "ue": "FC", "y": "FD FF",
    }
    for text, ranges in spans.items():
        for span in ranges.split():
            first, _, last = span.partition("-")
            for b in range(int(first, 16), int(last or first, 16) + 1):
                table[b] = text
    return table


_LATIN1 = _latin1_table()


def transliterate(raw: bytes) -> str:
    """The ASCII directory form of a Latin-1 patient name; every other byte becomes ``_``."""
    return "".join(_LATIN1[b] for b in raw)


def patient_component(raw: bytes | None, charset: str | None) -> str:
    """The ``-sp`` name part: first value, trailing spaces gone, ``ANONYMOUS`` if empty."""
    value = (raw or b"").split(b"\\")[0].rstrip(b" ")
    if not value:
        log.warning("element PatientName (0010,0010) absent or empty in data set, using 'ANONYMOUS' instead")
        return "ANONYMOUS"
    if charset and charset.strip() != "ISO_IR 100" and any(b >= 0x80 for b in value):
        log.warning("Patient name not in Latin-1 (charset: %s), ASCII dir name may be broken", charset)
    return transliterate(value)


def _stamp(when: datetime) -> str:
    return when.strftime("%Y%m%d_%H%M%S") + f"{when.microsecond // 1000:03d}"


def _joined(prefix: str, rest: str) -> str:
    return f"{prefix}_{rest}" if prefix else rest


class UnsafeStudyDir(ValueError):
    """The assembled name would leave the output folder (``.``, ``..`` or empty)."""


def study_dir_name(mode: str, prefix: str, study_uid: str, patient: str | None, when: datetime) -> str:
    """The subdirectory for a new study, decided when its first object was received.

    ``-ss`` uses its prefix raw (it may name an existing subfolder, as in DCMTK). ``-su``
    and ``-sp`` replace path separators in the whole name as 3.6.9 does, and the Study
    UID part uses the strict character set of file names. Names that would resolve to
    the output folder itself or its parent are refused, as DCMTK HEAD does.
    """
    if mode == "conc":
        name = _joined(prefix, _stamp(when))
    elif mode == "uid":
        name = _joined(prefix, sanitize(study_uid, "Study Instance UID")).replace("/", "_")
    else:
        name = f"{patient}_{_stamp(when)}".replace("/", "_")
    if name in ("", ".", "..") or any(part in ("", ".", "..") for part in name.split("/")):
        raise UnsafeStudyDir(f"Refusing to use subdirectory name '{name}'")
    return name
