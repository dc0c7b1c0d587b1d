"""Output file names exactly as storescp 3.6.9 builds them (spec §4).

>>> default_name("1.2.840.10008.5.1.4.1.1.2", "1.2.3;4", ".dcm")
'CT.1.2.3_4.dcm'
>>> next_time_name("1.2.840.10008.5.1.4.1.1.2", "", datetime(2024, 3, 5, 10, 20, 30), "", -1)
('20240305102030000.CT', -1)
"""

from __future__ import annotations

import logging
from datetime import datetime

from pydicom.uid import generate_uid

from spoolscp.sopclasses import code_for

log = logging.getLogger("spoolscp.receiver")

# DCMTK HEAD's file-name character set (the Debian 12 build has it too). 3.6.9 only
# replaces "/", which lets a hostile UID put ";", "$(" or quotes into #f and #p.
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 .:@-")


def sanitize(value: str, what: str = "SOP Instance UID") -> str:
    """``value`` with every character outside the safe set replaced by ``_``, logged once."""
    clean = "".join(c if c in _SAFE else "_" for c in value)
    if clean != value:
        log.warning('Sanitized unusual characters in %s, converted from "%s" to "%s".', what, value, clean)
    return clean


def default_name(sop_class: str, sop_instance: str, ext: str) -> str:
    """``<MOD>.<SOPInstanceUID><ext>`` (``-uf``, the default)."""
    return f"{code_for(sop_class)}.{sanitize(sop_instance)}{ext}"


def unique_name(sop_class: str, ext: str) -> str:
    """``<MOD>.X.<fresh UID><ext>`` (``+uf``): a new name for every C-STORE."""
    return f"{code_for(sop_class)}.X.{generate_uid()}{ext}"


def next_time_name(sop_class: str, ext: str, when: datetime, last: str, counter: int) -> tuple[str, int]:
    """``-tn``: the name for an object received at ``when``, and the new serial counter.

    A serial appears only when the name would equal the previous file's name ``last``
    (same millisecond, code and extension); ``counter`` is -1 when no serial is running.
    The state spans associations in DCMTK, so the caller keeps it in reception order.
    """
    stamp = when.strftime("%Y%m%d%H%M%S") + f"{when.microsecond // 1000:03d}"
    tail = f".{code_for(sop_class)}{ext}"
    serial = "" if counter == -1 else f"_{counter:04d}"
    if f"{stamp}{serial}{tail}" == last:
        return f"{stamp}_{counter + 1:04d}{tail}", counter + 1
    return f"{stamp}{tail}", -1
