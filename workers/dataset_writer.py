"""Re-encoding a parsed data set the way dcmdata's ``DcmDataset::write`` does.

The input is the node tree of :mod:`spoolscp.rawdicom` (values are slices of a memory map);
the output is written chunk by chunk to a sink, so a 1 GB pixel data element is streamed
from the map (byte-swapped in bounded chunks when the byte order changes), never copied whole.

Two passes, as in dcmdata:

1. :meth:`Layout.item` edits every item like ``computeGroupLengthAndPadding`` (drop or add
   group lengths, drop trailing padding, add padding with ``+p``), normalises string values
   and computes every encoded length bottom-up (needed for explicit-length sequences and
   items, group length values and file padding);
2. :meth:`Layout.emit` writes headers and values in tag order.

Both passes use explicit stacks, so nesting depth is limited only by memory (as in the
parser).
"""

from __future__ import annotations

import array
import struct
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol

from spoolscp.rawdicom import (
    EXTENDED_VRS,
    ITEM,
    ITEM_DELIMITER,
    PADDING,
    SEQUENCE_DELIMITER,
    STANDARD_VRS,
    STRING_VRS,
    UNDEFINED,
    VALUE_WIDTH,
    Element,
    Node,
    PixelSequence,
    Sequence,
    Syntax,
    normalize_string,
)

__all__ = ["Layout", "Sink", "Target", "writes_verbatim"]

# dcmdata's getValidEVR: internal VRs become standard ones on write.
_WRITTEN_VR = {"xs": "US", "lt": "OW", "ox": "OB", "px": "OB", "up": "UL", "??": "UN", "?2": "UN"}
# VRs that --disable-new-vr turns into OB (dcmDisableGenerationOfNewVRs).
_NEW_VRS = frozenset("UN UT OF OD OL UC UR OV SV UV".split())
_SWAP_TYPE = {2: "H", 4: "I", 8: "Q"}
_SWAP_CHUNK = 1 << 20  # a multiple of every value width


class Sink(Protocol):
    def write(self, data, /) -> object: ...


@dataclass(frozen=True)
class Target:
    """How the output data set is encoded (independent of how it was received)."""

    implicit: bool
    big: bool
    explicit_length: bool = True  # +e / -e
    group_length: str = "recalc"  # recalc|create|remove (+g= / +g / -g)
    new_vr: bool = True  # +u / -u
    item_padding: int = 0  # the i of +p f i


class _ItemFrame:
    """An item being measured: how far, how long so far, and per-group sums."""

    __slots__ = ("nodes", "index", "total", "group_sums")

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.index = 0
        self.total = 0
        self.group_sums: dict[int, int] = {}

    def add(self, node: Node, size: int) -> None:
        self.total += size
        if node.tag & 0xFFFF:  # group lengths count what follows them in their group
            group = node.tag >> 16
            self.group_sums[group] = self.group_sums.get(group, 0) + size


class _SequenceFrame:
    """A sequence being measured: the next item and the length of the items so far."""

    __slots__ = ("seq", "index", "total")

    def __init__(self, seq: Sequence) -> None:
        self.seq = seq
        self.index = 0
        self.total = 0


class Layout:
    """One data set prepared for writing; ``item(root)`` first, then ``emit(root, sink)``."""

    def __init__(self, buf, target: Target) -> None:
        self.buf = buf
        self.t = target
        self.sizes: dict[int, int] = {}  # id(node or item) -> encoded value length
        order = ">" if target.big else "<"
        self._hh = struct.Struct(order + "HH")
        self._hhi = struct.Struct(order + "HHI")
        self._vr2 = struct.Struct(order + "HH2sH")
        self._vr4 = struct.Struct(order + "HH2sHI")
        self._ul = struct.Struct(order + "I")

    # ---------------------------------------------------------------- pass 1: lengths

    def item(self, nodes: list[Node]) -> int:
        """Edit the data set (and every item in it) in place; return its encoded length.

        Post-order over an explicit stack: an item's length is known once its last node is,
        a sequence's once its last item is, however deep the nesting.
        """
        self._edit_group_lengths(nodes)
        stack: list[_ItemFrame | _SequenceFrame] = [_ItemFrame(nodes)]
        while True:
            frame = stack[-1]
            if isinstance(frame, _SequenceFrame):
                if frame.index < len(frame.seq.items):
                    item = frame.seq.items[frame.index]
                    frame.index += 1
                    self._edit_group_lengths(item)
                    stack.append(_ItemFrame(item))
                    continue
                stack.pop()
                total = frame.total + (0 if self.t.explicit_length else 8)
                self.sizes[id(frame.seq)] = total
                stack[-1].add(frame.seq, self._header_size("SQ") + total)
            elif frame.index < len(frame.nodes):
                node = frame.nodes[frame.index]
                frame.index += 1
                if isinstance(node, Sequence):
                    stack.append(_SequenceFrame(node))
                else:
                    frame.add(node, self._element_size(node))
            else:
                stack.pop()
                size = self._close_item(frame)
                if not stack:
                    return size
                if self.t.item_padding:  # +p f i: each item padded to a multiple of i
                    size += self.add_padding(frame.nodes, size, self.t.item_padding)
                self.sizes[id(frame.nodes)] = size
                stack[-1].total += 8 + size + (0 if self.t.explicit_length else 8)

    def _close_item(self, frame: _ItemFrame) -> int:
        """Fill in the item's group lengths; return its length."""
        for node in frame.nodes:
            if isinstance(node, Element) and not node.tag & 0xFFFF:
                node.value = self._ul.pack(frame.group_sums.get(node.tag >> 16, 0))
                node.big = self.t.big
        return frame.total

    def _edit_group_lengths(self, nodes: list[Node]) -> None:
        """Drop padding and group lengths, or add missing group lengths, as ``+g``/``-g`` say."""
        mode = self.t.group_length
        kept: list[Node] = []
        for node in nodes:
            if node.tag == PADDING:
                continue  # -p removes it, +p adds a new one
            group = node.tag >> 16
            if not node.tag & 0xFFFF:
                if mode != "remove":  # a fresh UL, whatever the VR read (dcmdata does the same)
                    kept.append(Element(node.tag, "UL", 0, 4, self.t.big, bytes(4)))
                continue
            if mode == "create" and (not kept or kept[-1].tag >> 16 != group):
                kept.append(Element(group << 16, "UL", 0, 4, self.t.big, bytes(4)))
            kept.append(node)
        nodes[:] = kept

    def add_padding(self, nodes: list[Node], length: int, pad_to: int) -> int:
        """Append a DataSetTrailingPadding so that *length* grows to a multiple of *pad_to*;
        return the bytes added (dcmdata's computeGroupLengthAndPadding)."""
        padding = pad_to - length % pad_to
        if padding == pad_to:
            return 0
        header = self._header_size("OB")
        while header > padding:
            padding += pad_to
        length = padding - header + ((padding - header) & 1)  # an OB value is kept even-length
        element = Element(PADDING, "OB", 0, length, self.t.big, bytes(length))
        nodes.append(element)
        return self._element_size(element)

    def _element_size(self, node: Element | PixelSequence) -> int:
        if isinstance(node, PixelSequence):
            total = sum(8 + length + (length & 1) for _, length in node.fragments) + 8
            self.sizes[id(node)] = total
            return self._header_size("OB") + total
        if node.value is None and node.vr in STRING_VRS:
            node.value = normalize_string(bytes(self.buf[node.offset : node.offset + node.length]), node.vr)
        length = len(node.value) if node.value is not None else node.length + _pad_byte(node)
        self.sizes[id(node)] = length
        return self._header_size(self.written_vr(node.vr, length)) + length

    def written_vr(self, vr: str, length: int = 0) -> str:
        """The VR dcmdata puts in an explicit-VR header for an element read as *vr*."""
        vr = _WRITTEN_VR.get(vr, vr)
        if vr not in EXTENDED_VRS and length > 0xFFFF:
            vr = "UN"  # a value too long for a 2-byte length field
        if not self.t.new_vr and vr in _NEW_VRS:
            vr = "OB"
        return vr

    def _header_size(self, vr: str) -> int:
        return 8 if self.t.implicit or vr not in EXTENDED_VRS else 12

    # ---------------------------------------------------------------- pass 2: bytes

    def emit(self, nodes: list[Node], sink: Sink) -> None:
        """Write the data set (after :meth:`item`) to *sink*, in order, with an explicit stack.

        The stack holds iterators of parts: nodes, item node lists, or ready header bytes.
        """
        stack: list[Iterator] = [iter(nodes)]
        while stack:
            part = next(stack[-1], None)
            if part is None:
                stack.pop()
            elif isinstance(part, bytes):
                sink.write(part)
            elif isinstance(part, list):
                stack.append(iter(part))
            elif isinstance(part, Sequence):
                stack.append(self._sequence_parts(part))
            elif isinstance(part, PixelSequence):
                self._emit_pixels(part, sink)
            else:
                length = self.sizes[id(part)]
                vr = self.written_vr(part.vr, length)
                sink.write(self._header(part.tag, vr, length))
                self._emit_value(part, vr, sink)

    def _sequence_parts(self, seq: Sequence) -> Iterator[bytes | list[Node]]:
        """A sequence as header bytes and item node lists, delimiters with ``-e``."""
        explicit = self.t.explicit_length
        yield self._header(seq.tag, "SQ", self.sizes[id(seq)] if explicit else UNDEFINED)
        for item in seq.items:
            yield self._item_tag(ITEM, self.sizes[id(item)] if explicit else UNDEFINED)
            yield item
            if not explicit:
                yield self._item_tag(ITEM_DELIMITER, 0)
        if not explicit:
            yield self._item_tag(SEQUENCE_DELIMITER, 0)

    def _emit_pixels(self, pixels: PixelSequence, sink: Sink) -> None:
        sink.write(self._header(pixels.tag, "OB", UNDEFINED))
        view = memoryview(self.buf)
        try:
            for offset, length in pixels.fragments:
                sink.write(self._item_tag(ITEM, length + (length & 1)))
                sink.write(view[offset : offset + length])
                if length & 1:
                    sink.write(b"\0")
        finally:
            view.release()
        sink.write(self._item_tag(SEQUENCE_DELIMITER, 0))

    def _emit_value(self, node: Element, written_vr: str, sink: Sink) -> None:
        """The value in the output byte order, as dcmdata swaps it.

        dcmdata holds a value in the machine's order (little endian here) and swaps it on
        write by the width of the VR it writes; a VR written as OB/UN (``-u``, too long
        for its length field) therefore keeps little-endian values even in big endian.
        """
        if node.value is not None:
            sink.write(node.value)
            return
        width = VALUE_WIDTH.get(node.vr, 1)
        big = self.t.big if VALUE_WIDTH.get(_WRITTEN_VR.get(written_vr, written_vr), 1) == width else False
        width = width if node.big != big else 1
        if _pad_byte(node):  # padded when read, so before any swap
            _copy(memoryview(bytes(self.buf[node.offset : node.offset + node.length]) + b"\0"), width, sink.write)
            return
        view = memoryview(self.buf)
        try:
            _copy(view[node.offset : node.offset + node.length], width, sink.write)
        finally:
            view.release()

    def _header(self, tag: int, vr: str, length: int) -> bytes:
        group, elem = tag >> 16, tag & 0xFFFF
        if self.t.implicit:
            return self._hhi.pack(group, elem, length)
        if vr in EXTENDED_VRS:
            return self._vr4.pack(group, elem, vr.encode(), 0, length)
        return self._vr2.pack(group, elem, vr.encode(), length)

    def _item_tag(self, tag: int, length: int) -> bytes:
        return self._hhi.pack(tag >> 16, tag & 0xFFFF, length)


# Explicit VRs that Layout writes back under the code they were read with (SQ: no sequences).
_VERBATIM_VRS = {vr: vr.encode() for vr in STANDARD_VRS - {"SQ"}}


def writes_verbatim(buf, nodes: list[Node], start: int, end: int, read: Syntax, target: Target) -> bool:
    """Would :class:`Layout` write ``nodes`` as exactly ``buf[start:end]``? Then copy, do not encode.

    True for the usual flat data set written in the syntax it came in: every top-level
    node an element with an even length, already-normalised string value, header as
    Layout writes it (in explicit VR: the VR code read is the one written), no group
    length or trailing padding (both are rewritten), and the nodes, in order, cover the
    whole range (no sorted or repeated tags, nothing after a top-level item delimiter).
    Sequences and encapsulated pixel data always take Layout's path. Anything unsure is
    False, which costs only the re-encoding.
    """
    if (read.implicit, read.big) != (target.implicit, target.big) or target.group_length == "create" \
            or not target.new_vr:  # (item padding: no items here)
        return False
    pos = start
    for node in nodes:
        if type(node) is not Element or node.length & 1 or not node.tag & 0xFFFF or node.tag == PADDING:
            return False
        if read.implicit:
            header = 8
        else:
            code = _VERBATIM_VRS.get(node.vr)
            header = 12 if node.vr in EXTENDED_VRS else 8
            if code is None or buf[pos + 4 : pos + 6] != code:
                return False  # an internal VR, or one that dcmdata renames (OX read as OW)
        if node.offset != pos + header or node.value is not None:
            return False
        pos = node.offset + node.length
        if node.vr in STRING_VRS:
            raw = bytes(buf[node.offset : pos])
            if normalize_string(raw, node.vr) != raw:
                return False
    return pos == end


def _pad_byte(node: Element) -> int:
    """1 if dcmdata pads the odd-length value with a NUL: every VR except OW (alignValue)."""
    return node.length & 1 if node.vr not in ("OW", "lt") else 0


def _copy(value: memoryview, width: int, write: Callable) -> None:
    """Write *value*, byte-swapped in units of *width*, in bounded chunks."""
    if width == 1:
        write(value)
        return
    whole = len(value) - len(value) % width
    for start in range(0, whole, _SWAP_CHUNK):
        chunk = array.array(_SWAP_TYPE[width])
        chunk.frombytes(value[start : min(start + _SWAP_CHUNK, whole)])
        chunk.byteswap()
        write(chunk.tobytes())
    if whole < len(value):
        write(value[whole:])
