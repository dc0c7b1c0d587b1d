"""Output file names exactly as storescp 3.6.9 builds them (spec §4).

>>> default_name("1.2.840.10008.5.1.4.1.1.2", "1.2.3;4", ".dcm")
'CT.1.2.3_4.dcm'
>>> namer = TimeNamer()
>>> t = datetime(2024, 3, 5, 10, 20, 30)
>>> [namer.next("1.2.840.10008.5.1.4.1.1.2", "", t) for _ in range(3)]
['20240305102030000.CT', '20240305102030000_0000.CT', '20240305102030000_0001.CT']
"""

from __future__ import annotations

import logging
import threading
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


class TimeNamer:
    """``-tn`` names: a millisecond timestamp, and a serial only against the previous name.

    The state is process-wide in DCMTK (it spans associations), so one instance serves
    the whole receiver; the lock keeps concurrent associations in reception order.
    """

    def __init__(self) -> None:
        self.last = ""
        self.counter = -1
        self.lock = threading.Lock()

    def next(self, sop_class: str, ext: str, now: datetime) -> str:
        stamp = now.strftime("%Y%m%d%H%M%S") + f"{now.microsecond // 1000:03d}"
        tail = f".{code_for(sop_class)}{ext}"
        with self.lock:
            serial = "" if self.counter == -1 else f"_{self.counter:04d}"
            if f"{stamp}{serial}{tail}" == self.last:
                self.counter += 1
                name = f"{stamp}_{self.counter:04d}{tail}"
            else:
                self.counter = -1
                name = f"{stamp}{tail}"
            self.last = name
            return name
