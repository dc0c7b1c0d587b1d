"""Read a PDU from the socket in one go (an upstreamable fix to pynetdicom 3.0.4).

``AssociationSocket.recv(n)`` reads at most 4096 bytes per ``recv`` call and appends
each piece to a growing bytearray, so a 16 KB P-DATA PDU costs four or more system
calls and copies, and a 64 MB object sixteen thousand. :func:`recv` reads straight
into a buffer of the PDU's size, taking whatever each call returns.
"""

from __future__ import annotations

from pynetdicom.transport import AssociationSocket


def recv(self: AssociationSocket, nr_bytes: int) -> bytearray:
    """``nr_bytes`` from the peer, or fewer if the connection closed (as pynetdicom's)."""
    buffer = bytearray(nr_bytes)
    view = memoryview(buffer)
    got = 0
    while got < nr_bytes:
        n = self.socket.recv_into(view[got:], nr_bytes - got)  # type: ignore[union-attr]
        if not n:
            return buffer[:got]
        got += n
    return buffer


def install() -> None:
    """Replace ``AssociationSocket.recv``; calling again is harmless."""
    AssociationSocket.recv = recv  # type: ignore[method-assign]
