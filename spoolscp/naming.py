"""Output file names exactly as storescp 3.6.9 builds them (spec §4).

>>> default_name("1.2.840.10008.5.1.4.1.1.2", "1.2.3/4", ".dcm")
'CT.1.2.3_4.dcm'
>>> namer = TimeNamer()
>>> t = datetime(2024, 3, 5, 10, 20, 30)
>>> [namer.next("1.2.840.10008.5.1.4.1.1.2", "", t) for _ in range(3)]
['20240305102030000.CT', '20240305102030000_0000.CT', '20240305102030000_0001.CT']
"""

from __future__ import annotations

import threading
from datetime import datetime

from pydicom.uid import generate_uid

from spoolscp.sopclasses import code_for

# 3.6.9 turns path separators into "_"; NUL cannot be in a file name at all.
_UNSAFE = str.maketrans({"/": "_", "\0": "_"})


def sanitize_uid(uid: str) -> str:
    """The UID as it may appear inside a file name."""
    return uid.translate(_UNSAFE)


def default_name(sop_class: str, sop_instance: str, ext: str) -> str:
    """``<MOD>.<SOPInstanceUID><ext>`` (``-uf``, the default)."""
    return f"{code_for(sop_class)}.{sanitize_uid(sop_instance)}{ext}"


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
