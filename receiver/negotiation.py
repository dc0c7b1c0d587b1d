"""Which presentation contexts storescp accepts, and with which transfer syntax (spec §2.4).

For each proposed context DCMTK accepts the first entry of *its own* preference list
that the SCU proposed anywhere; pynetdicom's acceptor walks our list in order, so the
preference order below is the whole rule.

>>> preference("big")[:2]
['1.2.840.10008.1.2.2', '1.2.840.10008.1.2.1']
>>> len(preference("accept-all"))
35
"""

from __future__ import annotations

import sys

from pynetdicom import AE, register_uid
from pynetdicom.sop_class import uid_to_service_class
from pynetdicom.service_class import StorageServiceClass

from spoolscp.sopclasses import accepted_by_default, keywords

VERIFICATION = "1.2.840.10008.1.1"
ILE = "1.2.840.10008.1.2"
ELE = "1.2.840.10008.1.2.1"
EBE = "1.2.840.10008.1.2.2"
_TS = "1.2.840.10008.1.2."


def _uncompressed() -> list[str]:
    """ELE, EBE, ILE with the local byte order first, as DCMTK does."""
    return [ELE, EBE, ILE] if sys.byteorder == "little" else [EBE, ELE, ILE]


# --prefer-<name> -> the compressed syntax put in front of the uncompressed ones
_PREFERRED_FIRST = {
    "lossless": "4.70", "jpeg8": "4.50", "jpeg12": "4.51", "j2k-lossless": "4.90",
    "j2k-lossy": "4.91", "jls-lossless": "4.80", "jls-lossy": "4.81", "mpeg2": "4.100",
    "mpeg2-high": "4.101", "mpeg4": "4.102", "mpeg4-bd": "4.103", "mpeg4-2-2d": "4.104",
    "mpeg4-2-3d": "4.105", "mpeg4-2-st": "4.106", "hevc": "4.107", "hevc10": "4.108",
    "rle": "5", "deflated": "1.99",
}

# +xa in 3.6.9, compressed part (the uncompressed three follow)
_ACCEPT_ALL = (
    "4.91 4.90 4.51 4.50 4.70 4.81 4.80 5 "
    "4.100 4.100.1 4.101 4.101.1 4.102 4.102.1 4.103 4.103.1 4.104 4.104.1 "
    "4.105 4.105.1 4.106 4.106.1 4.107 4.108 4.201 4.202 4.203 4.110 4.111 4.112 1.99 1.98"
).split()


def preference(prefer: str) -> list[str]:
    """The transfer syntax preference list for a ``--prefer-*`` / ``+xi`` / ``+xa`` choice."""
    if prefer in ("uncompr",):
        return _uncompressed()
    if prefer == "little":
        return [ELE, EBE, ILE]
    if prefer == "big":
        return [EBE, ELE, ILE]
    if prefer == "implicit":
        return [ILE]
    if prefer == "accept-all":
        return [_TS + s for s in _ACCEPT_ALL] + _uncompressed()
    return [_TS + _PREFERRED_FIRST[prefer], ELE, EBE, ILE]


def register_storage_classes() -> None:
    """Teach pynetdicom the storage classes DCMTK accepts but pynetdicom does not know.

    Without this, pynetdicom would accept the context but have no C-STORE service for it.
    """
    for uid in accepted_by_default():
        if uid_to_service_class(uid) is not StorageServiceClass:
            register_uid(uid, keywords()[uid], StorageServiceClass)


def add_default_contexts(ae: AE, prefer: str) -> None:
    """Verification plus the 199 default storage classes, all with one preference list."""
    syntaxes = preference(prefer)
    for uid in (VERIFICATION, *accepted_by_default()):
        ae.add_supported_context(uid, syntaxes)
