"""What spoolscp calls itself on the wire and in files: DCMTK storescp 3.6.9's identity.

The A-ASSOCIATE-AC (spec §2.5) and every output meta header (§10.1) carry these, so that
peers and byte comparisons see storescp. Receiver and workers both need them; they live
here so that neither imports the other.
"""

IMPLEMENTATION_CLASS_UID = "1.2.276.0.7230010.3.0.3.6.9"
VERSION_NAME = "OFFIS_DCMTK_369"
"""In the AC, and in files written in normal mode (``-B``)."""
BIT_PRESERVING_VERSION_NAME = "OFFIS_DCMBP_369"
"""In files written with ``+B`` (their meta header is built from the request)."""


def file_version_name(bit_preserving: bool) -> str:
    """The version name of a file written with ``+B`` or without (the receiver puts it in
    spool files, so that one needing no re-encoding already is its output)."""
    return BIT_PRESERVING_VERSION_NAME if bit_preserving else VERSION_NAME
