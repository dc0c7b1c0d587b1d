"""Raw DICOM element-stream reader for spooled C-STORE data sets.

The receiver spools every object as ``preamble + DICM + file meta + data set bytes exactly as
received``. This module parses those bytes **the way DCMTK's dcmdata parses a received data
set**, without decoding any value: every element is an ``(offset, length)`` slice of a memory
map, so a 1 GB object costs a few objects, not a gigabyte.

What "the way DCMTK parses" means here (each rule matters for byte-identical re-encoding):

* explicit VR comes from the stream; an unknown VR made of two upper-case letters is a
  "future" VR with a 4-byte length, any other printable VR (and ``??``) has a 2-byte length,
  and both are written back as UN;
* implicit VR comes from the data dictionary (pydicom's, mapped onto DCMTK's conventions):
  group lengths are UL, private creators LO, all other private and unknown tags are unknown
  (DCMTK 3.6.9 is built without its private dictionary by default); a few ambiguous VRs are
  resolved from PixelRepresentation / WaveformBitsAllocated read earlier in the same item;
* undefined length: SQ is a sequence, UN (or an unknown tag) is a sequence whose items are
  implicit VR little endian (CP-246), Pixel Data is an encapsulated pixel sequence; any other
  undefined length is an error, as in DCMTK;
* items are sorted by tag and a repeated tag keeps its first occurrence, because dcmdata keeps
  each item in a tag-sorted list and ignores the second entry;
* a sequence delimiter ends a sequence even when it has an explicit length, an item
  delimiter at the top level ends the data set (the rest is ignored, as DCMTK does), and
  anything else out of place raises :class:`BrokenDataSet`.

Nesting is handled with an explicit stack, so depth is only limited by memory.
"""

from __future__ import annotations

import mmap
import os
import struct
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Union

from pydicom.datadict import dictionary_VR, tag_for_keyword

__all__ = [
    "BrokenDataSet",
    "Element",
    "PixelSequence",
    "Sequence",
    "Spool",
    "SpoolInfo",
    "Syntax",
    "find_first",
    "has_encapsulated_pixels",
    "normalize_string",
    "open_spool",
    "read_dataset",
    "scan_spool",
    "syntax_for",
    "walk",
]


class BrokenDataSet(ValueError):
    """The data set bytes cannot be parsed (DCMTK would fail to receive them)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


# --------------------------------------------------------------------------------------------
# Transfer syntaxes


@dataclass(frozen=True)
class Syntax:
    """How a data set is encoded; every syntax not listed below is encapsulated explicit LE."""

    uid: str
    implicit: bool = False
    big: bool = False
    deflated: bool = False
    encapsulated: bool = False


IMPLICIT_LE = "1.2.840.10008.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
EXPLICIT_BE = "1.2.840.10008.1.2.2"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
_JPIP_REFERENCED_DEFLATE = "1.2.840.10008.1.2.4.95"

_NATIVE_SYNTAXES = {
    IMPLICIT_LE: Syntax(IMPLICIT_LE, implicit=True),
    EXPLICIT_LE: Syntax(EXPLICIT_LE),
    EXPLICIT_BE: Syntax(EXPLICIT_BE, big=True),
    DEFLATED_LE: Syntax(DEFLATED_LE, deflated=True),
    _JPIP_REFERENCED_DEFLATE: Syntax(_JPIP_REFERENCED_DEFLATE, deflated=True),
}


def syntax_for(uid: str) -> Syntax:
    """Return the encoding rules of transfer syntax *uid*."""
    return _NATIVE_SYNTAXES.get(uid) or Syntax(uid, encapsulated=True)


# --------------------------------------------------------------------------------------------
# Value representations (DCMTK's conventions)
#
# Internal VR names are the standard two-letter VRs plus DCMTK's ambiguous dictionary VRs
# 'xs' (US or SS), 'ox' (OB or OW), 'lt' (US or OW), 'up' (UL offset), and two unknown VRs:
# '??' (4-byte length, DCMTK's EVR_UNKNOWN) and '?2' (2-byte length, EVR_UNKNOWN2B).

EXTENDED_VRS = frozenset("OB OD OF OL OV OW SQ SV UC UN UR UT UV ox px lt ??".split())
"""VRs whose explicit-VR header has 2 reserved bytes and a 4-byte length."""

STRING_VRS = frozenset("AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT".split())
"""VRs that dcmdata stores as byte strings (trailing padding is normalised on write)."""

VALUE_WIDTH = {
    **dict.fromkeys(("AT", "US", "SS", "OW", "xs", "lt"), 2),
    **dict.fromkeys(("UL", "SL", "FL", "OF", "OL", "up"), 4),
    **dict.fromkeys(("FD", "OD", "SV", "UV", "OV"), 8),
}
"""Byte-swapping unit per VR; VRs not listed are never swapped."""

STANDARD_VRS = frozenset("AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL UN UR US UT UV".split())
"""The VRs of the standard, read from an explicit-VR stream under their own name."""
_EXPLICIT_VRS: dict[bytes, tuple[str, bool] | None] = {
    **{vr.encode(): (vr, vr in EXTENDED_VRS) for vr in STANDARD_VRS},
    # DCMTK also accepts its non-standard, non-internal VR names from the stream ...
    b"ox": ("ox", True),
    b"px": ("px", True),
    b"lt": ("lt", True),
    b"xs": ("xs", False),
    b"up": ("up", False),
    b"??": ("?2", False),
    # ... but cannot create an element for these two, so the data set is unreadable.
    b"na": None,
    b"pi": None,
}

_PYDICOM_TO_DCMTK_VR = {"US or SS": "xs", "OB or OW": "ox", "US or OW": "lt", "US or SS or OW": "lt"}

ITEM = 0xFFFEE000
ITEM_DELIMITER = 0xFFFEE00D
SEQUENCE_DELIMITER = 0xFFFEE0DD
PIXEL_DATA = 0x7FE00010
PADDING = 0xFFFCFFFC
SOP_CLASS_UID = 0x00080016
SOP_INSTANCE_UID = 0x00080018
UNDEFINED = 0xFFFFFFFF

_PIXEL_REPRESENTATION = 0x00280103
_WAVEFORM_BITS_ALLOCATED = 0x54001004
_SIGN_FROM_PIXEL_REPRESENTATION = frozenset(
    tag_for_keyword(k)
    for k in (
        "PixelPaddingValue",
        "PixelPaddingRangeLimit",
        "HistogramFirstBinValue",
        "HistogramLastBinValue",
        "ZeroVelocityPixelValue",
        "SmallestImagePixelValue",
        "LargestImagePixelValue",
        "SmallestPixelValueInSeries",
        "LargestPixelValueInSeries",
        "LUTDescriptor",
        "RealWorldValueLastValueMapped",
        "RealWorldValueFirstValueMapped",
    )
)
_SIZE_FROM_WAVEFORM_BITS = frozenset(
    tag_for_keyword(k)
    for k in ("WaveformData", "WaveformPaddingValue", "ChannelMinimumValue", "ChannelMaximumValue")
)

_dictionary_cache: dict[int, str] = {}


def _is_overlay_data(tag: int) -> bool:
    return tag & 0xFF00FFFF == 0x60003000 and not tag & 0x00010000


def _is_curve_data(tag: int) -> bool:
    return tag & 0xFF00FFFF == 0x50003000 and not tag & 0x00010000


def dictionary_vr(tag: int) -> str:
    """Return the VR dcmdata gives *tag* when it has to look it up (implicit VR, ``+uc``)."""
    vr = _dictionary_cache.get(tag)
    if vr is None:
        element = tag & 0xFFFF
        if element == 0:
            vr = "UL"  # DCMTK's GenericGroupLength covers every group
        elif tag & 0x10000:
            vr = "LO" if 0x10 <= element <= 0xFF else "??"  # private creator / no private dict
        else:
            try:
                vr = dictionary_VR(tag)
            except KeyError:
                vr = "??"
            vr = _PYDICOM_TO_DCMTK_VR.get(vr, vr)
            if vr == "ox" and tag == PIXEL_DATA:
                vr = "px"
        _dictionary_cache[tag] = vr
    return vr


# --------------------------------------------------------------------------------------------
# The element tree


class Element:
    """A value element: its bytes are ``buffer[offset:offset + length]`` in byte order *big*.

    *value* replaces the slice when set (used by the encoder for normalised strings and
    computed group lengths; it must then be in byte order *big* too).
    """

    __slots__ = ("tag", "vr", "offset", "length", "big", "value")

    def __init__(
        self, tag: int, vr: str, offset: int, length: int, big: bool, value: bytes | None = None
    ) -> None:
        self.tag = tag
        self.vr = vr
        self.offset = offset
        self.length = length
        self.big = big
        self.value = value

    def __repr__(self) -> str:
        return f"Element({self.tag:08X} {self.vr} @{self.offset}+{self.length})"


class Sequence:
    """A sequence of items (each item is a tag-sorted list of nodes); always written as SQ."""

    __slots__ = ("tag", "items")

    def __init__(self, tag: int) -> None:
        self.tag = tag
        self.items: list[list[Node]] = []

    def __repr__(self) -> str:
        return f"Sequence({self.tag:08X}, {len(self.items)} items)"


class PixelSequence:
    """Encapsulated pixel data: ``(offset, length)`` of each fragment, offset table first."""

    __slots__ = ("tag", "big", "fragments")

    def __init__(self, tag: int, big: bool) -> None:
        self.tag = tag
        self.big = big
        self.fragments: list[tuple[int, int]] = []

    def __repr__(self) -> str:
        return f"PixelSequence({self.tag:08X}, {len(self.fragments)} fragments)"


Node = Union[Element, Sequence, PixelSequence]


# --------------------------------------------------------------------------------------------
# The parser

_ITEM_FRAME, _SEQUENCE_FRAME, _PIXEL_FRAME = range(3)
_HHI = {False: struct.Struct("<HHI"), True: struct.Struct(">HHI")}
_H = {False: struct.Struct("<H"), True: struct.Struct(">H")}
_I = {False: struct.Struct("<I"), True: struct.Struct(">I")}
_HH2SH = {False: struct.Struct("<HH2sH"), True: struct.Struct(">HH2sH")}
"""An explicit VR element header: group, element, VR code, 2-byte length (or reserved)."""
_DELIMITER_ELEMENTS = frozenset((0xE000, 0xE00D, 0xE0DD))
_AMBIGUOUS_VRS = frozenset(("xs", "ox", "px"))
"""Dictionary VRs that ``_resolve_implicit_vr`` may settle from the current item."""
_SPECIAL_VRS = frozenset(("SQ", "px", "ox"))
"""VRs whose defined-length element is not a plain Element in the frame's encoding (``_add``)."""
_SPECIAL_VRS_CONVERT_UN = _SPECIAL_VRS | {"UN"}


class _Frame:
    """One open container: an item (or the data set), a sequence or a pixel sequence."""

    __slots__ = ("kind", "nodes", "end", "implicit", "big", "last_tag", "unsorted", "what")

    def __init__(self, kind: int, nodes: list, end: int | None, implicit: bool, big: bool, what: str):
        self.kind = kind
        self.nodes = nodes
        self.end = end  # None: undefined length (ends with a delimiter or the stream)
        self.implicit = implicit
        self.big = big
        self.last_tag = -1
        self.unsorted = False
        self.what = what


def _close_item(frame: _Frame) -> None:
    """Sort the item by tag, keeping the first of repeated tags (dcmdata's sorted insert)."""
    if frame.unsorted:
        first: dict[int, Node] = {}
        for node in frame.nodes:
            first.setdefault(node.tag, node)
        frame.nodes[:] = [first[tag] for tag in sorted(first)]


def _find_us(buf, nodes: list, tag: int) -> int | None:
    """Return the first US value of *tag* among the nodes read so far in this item."""
    for node in nodes:
        if node.tag == tag:
            if isinstance(node, Element) and node.length >= 2:
                return _H[node.big].unpack_from(buf, node.offset)[0]
            return None
    return None


def _resolve_implicit_vr(buf, frame: _Frame, tag: int, vr: str) -> str:
    """DCMTK's checkAndUpdateVR: settle ambiguous dictionary VRs from the current item."""
    if vr == "xs" and tag in _SIGN_FROM_PIXEL_REPRESENTATION:
        sign = _find_us(buf, frame.nodes, _PIXEL_REPRESENTATION)
        if sign is not None:
            return "SS" if sign == 1 else "US"
    elif vr == "ox":
        if tag in _SIZE_FROM_WAVEFORM_BITS:
            bits = _find_us(buf, frame.nodes, _WAVEFORM_BITS_ALLOCATED)
            if bits is not None:
                return "OB" if bits == 8 else "OW"
        elif _is_overlay_data(tag):
            return "OW"
        elif _is_curve_data(tag):
            return "OB"
    elif vr == "px":
        return "OW"
    return vr


def _explicit_vr(code: bytes, tag: int) -> tuple[str, bool]:
    """DCMTK's rules for a VR it does not know or cannot use: guess the length field size or give up."""
    if code in _EXPLICIT_VRS:
        raise BrokenDataSet(f"unusable VR {code!r} in ({tag >> 16:04X},{tag & 0xFFFF:04X})")
    first, second = code[0], code[1]
    if 0x41 <= first <= 0x5A and 0x41 <= second <= 0x5A:
        if code == b"OX" and tag == PIXEL_DATA:
            return "OW", True  # DCMTK's workaround for a known writer bug
        return "??", True
    if 32 <= first <= 127 and 32 <= second <= 127:
        return "?2", False
    raise BrokenDataSet(f"invalid VR {code!r} in element ({tag >> 16:04X},{tag & 0xFFFF:04X})")


class _Reader:
    """Iterative DCMTK-compatible parser over ``buf[start:end]``."""

    def __init__(self, buf, start: int, end: int, syntax: Syntax, convert_un: bool) -> None:
        self.buf = buf
        self.pos = start
        self.end = end
        self.convert_un = convert_un
        self.special = _SPECIAL_VRS_CONVERT_UN if convert_un else _SPECIAL_VRS
        self.root: list[Node] = []
        self.stack = [_Frame(_ITEM_FRAME, self.root, None, syntax.implicit, syntax.big, "data set")]

    def run(self) -> list[Node]:
        stack = self.stack
        top = stack[0]
        while True:
            frame = stack[-1]
            if frame.end is not None and self.pos >= frame.end:
                self._pop()
            elif self.pos >= self.end:
                if frame is not top:
                    raise BrokenDataSet(f"data set ends inside {frame.what}")
                break
            elif frame.kind == _ITEM_FRAME:
                if self._elements(frame):
                    break  # item delimiter at the top level: DCMTK stops reading there
            else:
                self._item_header(frame)
        _close_item(top)
        return self.root

    def _pop(self) -> None:
        frame = self.stack.pop()
        if frame.unsorted:  # only items are ever unsorted
            _close_item(frame)

    def _need(self, count: int, what: str) -> None:
        if self.pos + count > self.end:
            raise BrokenDataSet(f"data set ends inside {what} at offset {self.pos}")

    def _elements(self, frame: _Frame) -> bool:
        """Read elements of item *frame* until it ends or opens a container; True ends the data set.

        A scan spends its time here, so the common element (defined length, a VR that makes a
        plain Element) is read inline with locals; containers, delimiters and odd VRs go to
        ``_add`` / ``_delimiter``, which hold the rules.
        """
        buf, end, stack, nodes, big, implicit = self.buf, self.end, self.stack, frame.nodes, frame.big, frame.implicit
        item_end, special = frame.end, self.special
        stop = end if item_end is None or item_end > end else item_end
        header = (_HHI if implicit else _HH2SH)[big].unpack_from
        unpack_length = _I[big].unpack_from
        last_tag, unsorted, pos = frame.last_tag, frame.unsorted, self.pos
        while pos < stop:
            if pos + 8 > end:
                raise BrokenDataSet(f"data set ends inside an element header at offset {pos}")
            fields = header(buf, pos)
            group, elem = fields[0], fields[1]
            tag = group << 16 | elem
            if group == 0xFFFE and elem in _DELIMITER_ELEMENTS:
                frame.last_tag, frame.unsorted = last_tag, unsorted
                return self._delimiter(frame, pos, tag)
            if implicit:
                vr = _dictionary_cache.get(tag) or dictionary_vr(tag)
                if vr in _AMBIGUOUS_VRS:
                    vr = _resolve_implicit_vr(buf, frame, tag, vr)
                length = fields[2]
                pos += 8
            else:
                vr, extended = _EXPLICIT_VRS.get(fields[2], False) or _explicit_vr(fields[2], tag)
                if extended:
                    if pos + 12 > end:
                        raise BrokenDataSet(f"data set ends inside an element header at offset {pos}")
                    length = unpack_length(buf, pos + 8)[0]
                    pos += 12
                else:
                    length = fields[3]
                    pos += 8
            if item_end is not None and length != UNDEFINED and 0 <= item_end - pos < length:
                raise BrokenDataSet(f"({group:04X},{elem:04X}) is longer than its item")
            if tag <= last_tag:
                unsorted = True
            last_tag = tag
            if length == UNDEFINED or vr in special:
                self.pos, frame.last_tag, frame.unsorted = pos, last_tag, unsorted
                self._add(frame, tag, vr, length)
                if stack[-1] is not frame:
                    return False
                pos = self.pos
            elif pos + length > end:
                raise BrokenDataSet(f"data set ends inside the value of ({group:04X},{elem:04X}) at offset {pos}")
            else:
                nodes.append(Element(tag, vr, pos, length, big))
                pos += length
        self.pos, frame.last_tag, frame.unsorted = pos, last_tag, unsorted
        return False

    def _delimiter(self, frame: _Frame, pos: int, tag: int) -> bool:
        """An item or sequence delimiter (or item) where an element was expected."""
        self.pos = pos + 8
        if tag != ITEM_DELIMITER:
            raise BrokenDataSet(f"unexpected ({tag >> 16:04X},{tag & 0xFFFF:04X}) in {frame.what}")
        if len(self.stack) == 1:
            return True
        self._pop()
        return False

    def _add(self, frame: _Frame, tag: int, vr: str, length: int) -> None:
        """Create the node for an element whose header has just been read."""
        implicit, big = frame.implicit, frame.big
        if self.convert_un and vr == "UN" and length != UNDEFINED:
            known = dictionary_vr(tag)
            if known != "??":
                vr, implicit, big = known, True, False  # UN values are implicit VR LE
        if vr == "SQ" or (length == UNDEFINED and vr in ("UN", "??", "?2")):
            if length == UNDEFINED and vr != "SQ":
                implicit, big = True, False  # CP-246: undefined-length UN is an implicit LE SQ
            sequence = Sequence(tag)
            frame.nodes.append(sequence)
            end = None if length == UNDEFINED else self.pos + length
            self.stack.append(_Frame(_SEQUENCE_FRAME, sequence.items, end, implicit, big, "a sequence"))
            return
        pixel = vr == "px" or (tag == PIXEL_DATA and vr in ("OB", "OW", "ox"))
        if length == UNDEFINED:
            if not pixel:
                raise BrokenDataSet(f"undefined length for ({tag >> 16:04X},{tag & 0xFFFF:04X}) {vr}")
            pixels = PixelSequence(tag, big)
            frame.nodes.append(pixels)
            self.stack.append(_Frame(_PIXEL_FRAME, pixels.fragments, None, implicit, big, "pixel data"))
            return
        if vr == "px" or (vr == "ox" and (tag == PIXEL_DATA or _is_overlay_data(tag))):
            vr = "OW"  # DcmPixelData / DcmOverlayData turn an ambiguous VR into OW
        self._need(length, f"the value of ({tag >> 16:04X},{tag & 0xFFFF:04X})")
        frame.nodes.append(Element(tag, vr, self.pos, length, big))
        self.pos += length

    def _item_header(self, frame: _Frame) -> None:
        """Read one item or delimiter header inside a sequence or pixel sequence."""
        pos = self.pos
        if pos + 8 > self.end:
            raise BrokenDataSet(f"data set ends inside an item header at offset {pos}")
        group, elem, length = _HHI[frame.big].unpack_from(self.buf, pos)
        self.pos = pos = pos + 8
        if group != 0xFFFE or elem != 0xE000:
            if group != 0xFFFE or elem != 0xE0DD:
                raise BrokenDataSet(f"({group:04X},{elem:04X}) found instead of an item in {frame.what}")
            self.stack.pop()
        elif frame.kind == _PIXEL_FRAME:
            if length == UNDEFINED:
                raise BrokenDataSet("pixel data fragment with undefined length")
            self._need(length, "a pixel data fragment")
            frame.nodes.append((pos, length))
            self.pos = pos + length
        else:
            item: list[Node] = []
            frame.nodes.append(item)
            end = None if length == UNDEFINED else pos + length
            self.stack.append(_Frame(_ITEM_FRAME, item, end, frame.implicit, frame.big, "an item"))


def read_dataset(buf, start: int, end: int, syntax: Syntax, convert_un: bool = False) -> list[Node]:
    """Parse ``buf[start:end]`` (not deflated) and return the top-level nodes.

    *convert_un* is storescp's ``+uc``: defined-length UN elements of a known tag take the
    dictionary VR and are parsed as implicit VR little endian.
    """
    nodes = _Reader(buf, start, end, syntax, convert_un).run()
    if syntax.encapsulated:
        for node in nodes:
            if node.tag == PIXEL_DATA:
                if isinstance(node, Element):
                    raise BrokenDataSet("explicit-length Pixel Data in an encapsulated transfer syntax")
                break
    return nodes


def walk(nodes: list[Node]) -> Iterator[Node]:
    """Every node, however deep, in dcmdata's deep search order (depth first, by tag)."""
    pending: list[Iterator[Node]] = [iter(nodes)]
    while pending:
        node = next(pending[-1], None)
        if node is None:
            pending.pop()
            continue
        yield node
        if isinstance(node, Sequence):
            pending.append(node for item in node.items for node in item)


def find_first(nodes: list[Node], tag: int) -> Node | None:
    """Return the first *tag* in dcmdata's deep search order."""
    return next((node for node in walk(nodes) if node.tag == tag), None)


def has_encapsulated_pixels(nodes: list[Node]) -> bool:
    """True if any item, however deep, holds encapsulated pixel data.

    Without codecs dcmdata can write such a data set only in the transfer syntax it came in.
    """
    pending = [nodes]  # any order will do: no generators, unlike walk()
    while pending:
        for node in pending.pop():
            if isinstance(node, PixelSequence):
                return True
            if isinstance(node, Sequence):
                pending.extend(node.items)
    return False


def normalize_string(raw: bytes, vr: str) -> bytes:
    """Return the even-length bytes dcmdata writes for a string value read as *raw*.

    dcmdata pads an odd value with NUL when loading it, strips trailing padding characters
    (NUL for UI, after deleting all whitespace; space otherwise) and pads back to even length
    with the padding character.
    """
    if len(raw) & 1:
        raw += b"\0"
    if vr == "UI":
        raw = raw.translate(None, b" \t\n\v\f\r").rstrip(b"\0")
        return raw + b"\0" if len(raw) & 1 else raw
    raw = raw.rstrip(b" ")
    return raw + b" " if len(raw) & 1 else raw


# --------------------------------------------------------------------------------------------
# Spool files


@dataclass
class Spool:
    """An open spool file: the data set is ``data[start:end]`` encoded as *syntax*.

    For a deflated data set, *data* is an inflated copy (in a temporary file) and *syntax*
    is explicit VR little endian; *raw* is always the spool file's own bytes (mapped, read,
    or as the job table holds them).
    """

    raw: mmap.mmap | bytes | bytearray
    meta: dict[int, bytes]
    dataset_offset: int
    transfer_syntax: str
    data: mmap.mmap | bytes | bytearray
    start: int
    end: int
    syntax: Syntax
    fileno: int | None = None
    """The descriptor of the file *data* holds while the block runs (the spool file, or
    the inflated copy; None: bytes from the job table), for a copy of *data* that the
    kernel makes without mapping it in (``workers.encoder``)."""

    def meta_uid(self, tag: int) -> str:
        """Return a file meta UID as text, without padding."""
        return self.meta.get(tag, b"").rstrip(b"\0 ").decode("ascii", "replace")


_META_EXTENDED_VRS = frozenset(
    (b"OB", b"OW", b"OF", b"SQ", b"UT", b"UN", b"UC", b"UR", b"OD", b"OL", b"OV", b"SV", b"UV")
)


def _read_meta(buf) -> tuple[dict[int, bytes], int]:
    """Parse the explicit VR LE file meta group; return its values and the data set offset."""
    if len(buf) < 132 or buf[128:132] != b"DICM":
        raise BrokenDataSet("not a DICOM file (no DICM prefix)")
    meta: dict[int, bytes] = {}
    pos, end = 132, len(buf)
    group_end = None
    while pos + 8 <= end and (group_end is None or pos < group_end):
        group, elem, code, length = _HH2SH[False].unpack_from(buf, pos)
        if group != 2:
            break
        if code in _META_EXTENDED_VRS:
            if pos + 12 > end:
                raise BrokenDataSet("file meta ends inside an element header")
            length = _I[False].unpack_from(buf, pos + 8)[0]
            pos += 12
        else:
            pos += 8
        if pos + length > end:
            raise BrokenDataSet("file meta element value past the end of the file")
        meta[elem] = bytes(buf[pos : pos + length])
        if elem == 0 and length == 4:
            group_end = pos + 4 + _I[False].unpack_from(buf, pos)[0]
        pos += length
    if 0x0010 not in meta:
        raise BrokenDataSet("file meta has no transfer syntax")
    return meta, pos


# Smaller files are read rather than mapped: for a 2 KB object open+read costs 12 us,
# open+mmap+munmap 20 us; larger ones are mapped so that skipped values are never read.
READ_BELOW = 64 * 1024


def _map(fileobj) -> mmap.mmap | bytes:
    """Map a whole file read-only (a small one is read instead); an empty file is ``b''``."""
    size = os.fstat(fileobj.fileno()).st_size
    if size < READ_BELOW:
        fileobj.seek(0)  # an inflated data set was just written
        return fileobj.read()
    return mmap.mmap(fileobj.fileno(), 0, access=mmap.ACCESS_READ)


def _inflate(buf, start: int, end: int, directory: str):
    """Inflate a raw deflate stream into an unlinked temporary file, chunk by chunk."""
    out = tempfile.TemporaryFile(dir=directory or None)
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    chunk = 1 << 20
    view = memoryview(buf)
    try:
        for offset in range(start, end, chunk):
            data = view[offset : min(offset + chunk, end)]
            while data and not inflater.eof:
                out.write(inflater.decompress(data, 1 << 24))
                data = inflater.unconsumed_tail
            if inflater.eof:
                break
        out.write(inflater.flush())
    except zlib.error as exc:
        out.close()
        raise BrokenDataSet(f"deflated data set cannot be inflated: {exc}") from None
    finally:
        view.release()
    out.flush()
    return out


SpoolSource = str | os.PathLike | bytes | bytearray
"""A spool file's path, or the same bytes held in the job table (``spoolscp.spool``)."""


@contextmanager
def _raw(source: SpoolSource) -> Iterator[tuple[mmap.mmap | bytes | bytearray, int | None]]:
    """The bytes of a spool file (mapped or read, ``_map``) and its descriptor, or the
    bytes themselves (no descriptor)."""
    if isinstance(source, (bytes, bytearray)):
        yield source, None
        return
    with open(source, "rb") as fileobj:
        raw = _map(fileobj)
        try:
            yield raw, fileobj.fileno()
        finally:
            _unmap(raw)


@contextmanager
def open_spool(source: SpoolSource, inflate: bool = True) -> Iterator[Spool]:
    """Map a spool file (inflating a deflated data set) for the duration of the block.

    ``source`` is the file's path or its bytes. ``inflate=False`` is for readers of the
    raw bytes only (``+B``): *data* is then the deflated stream as received.
    """
    with _raw(source) as (raw, fileno):
        inflated = None
        try:
            meta, offset = _read_meta(raw)
            uid = meta[0x0010].rstrip(b"\0 ").decode("ascii", "replace")
            syntax = syntax_for(uid)
            data, start, end = raw, offset, len(raw)
            if syntax.deflated and inflate:
                folder = "" if isinstance(source, (bytes, bytearray)) else os.path.dirname(os.fspath(source))
                inflated = _inflate(raw, offset, len(raw), folder)
                data, start, fileno = _map(inflated), 0, inflated.fileno()
                end = len(data)
                syntax = syntax_for(EXPLICIT_LE)
            yield Spool(raw, meta, offset, uid, data, start, end, syntax, fileno)
        finally:
            if inflated is not None:
                if data is not raw:
                    _unmap(data)
                inflated.close()


def _unmap(buf) -> None:
    """Close a mapping, unless views of it are still alive.

    When the block fails (say, ENOSPC while writing the output), the exception's
    traceback still holds memoryviews of the mapping; ``close()`` would then raise
    BufferError and hide the real error. The mapping goes when the views do.
    """
    if isinstance(buf, mmap.mmap):
        try:
            buf.close()
        except BufferError:
            pass


@dataclass(frozen=True)
class SpoolInfo:
    """What the receiver needs from a spooled object, without decoding pixel data.

    UIDs are normalised the way dcmdata returns them (no whitespace, no padding); the person
    name and character set are the raw value bytes. Absent elements are ``None``.
    """

    transfer_syntax: str
    dataset_offset: int
    affected_sop_class_uid: str
    affected_sop_instance_uid: str
    sop_class_uid: str | None
    sop_instance_uid: str | None
    study_instance_uid: str | None
    patient_name: bytes | None
    specific_character_set: bytes | None
    encapsulated_pixels: bool = False


_SCANNED_TAGS = (0x00080005, SOP_CLASS_UID, SOP_INSTANCE_UID, 0x00100010, 0x0020000D)


def _top_level(buf, nodes: list[Node], tags: tuple[int, ...]) -> dict[int, bytes | None]:
    """Return the raw values of top-level elements (dcmdata's findAndGet*, no deep search).

    One pass: the top level is sorted by tag and holds each tag once. A sequence is ``None``.
    """
    values: dict[int, bytes | None] = dict.fromkeys(tags)
    last = max(tags)
    for node in nodes:
        tag = node.tag
        if tag > last:
            break
        if tag in values and isinstance(node, Element):
            values[tag] = bytes(buf[node.offset : node.offset + node.length])
    return values


def _uid_text(value: bytes | None) -> str | None:
    """A UI value as dcmdata's getString returns it: whitespace removed, up to the first NUL."""
    if value is None:
        return None
    return normalize_string(value, "UI").split(b"\0", 1)[0].decode("ascii", "replace")


def scan_spool(source: SpoolSource, convert_un: bool = False) -> SpoolInfo:
    """Validate the whole element structure of a spool file (path or bytes) and return its
    key values.

    Values are skipped, not read, so this costs a few microseconds per element; a deflated
    data set is inflated to a temporary file first.
    """
    with open_spool(source) as spool:
        nodes = read_dataset(spool.data, spool.start, spool.end, spool.syntax, convert_un)
        values = _top_level(spool.data, nodes, _SCANNED_TAGS)
        return SpoolInfo(
            transfer_syntax=spool.transfer_syntax,
            dataset_offset=spool.dataset_offset,
            affected_sop_class_uid=spool.meta_uid(0x0002),
            affected_sop_instance_uid=spool.meta_uid(0x0003),
            sop_class_uid=_uid_text(values[SOP_CLASS_UID]),
            sop_instance_uid=_uid_text(values[SOP_INSTANCE_UID]),
            study_instance_uid=_uid_text(values[0x0020000D]),
            patient_name=values[0x00100010],
            specific_character_set=values[0x00080005],
            encapsulated_pixels=has_encapsulated_pixels(nodes),
        )
