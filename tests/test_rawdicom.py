"""The raw parser (``spoolscp.rawdicom``) against an independent reading, and on broken input.

Every file of pydicom's test data that both can read is parsed by ``read_dataset`` and by
pydicom's own low-level reader (``pydicom.filereader.read_dataset``, raw elements, no value
conversion); tags, value offsets, value bytes, nesting, fragments and explicit VRs must agree.
Truncated files must fail with :class:`BrokenDataSet` except where a cut falls between two
top-level elements, and corrupted headers must fail the same way, never with another error.
"""

from __future__ import annotations

import io
import random
import struct
from pathlib import Path

import pydicom
import pytest
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.filereader import read_dataset as pydicom_read_dataset

from spoolscp import rawdicom
from spoolscp.rawdicom import (
    BrokenDataSet,
    Element,
    PixelSequence,
    Sequence,
    read_dataset,
)

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"


def dump(nodes: list) -> list:
    """A canonical, comparable form of a parse: every field of every node, nested."""
    out = []
    for node in nodes:
        if isinstance(node, Element):
            out.append(("E", node.tag, node.vr, node.offset, node.length, node.big, node.value))
        elif isinstance(node, Sequence):
            out.append(("S", node.tag, [dump(item) for item in node.items]))
        else:
            assert isinstance(node, PixelSequence)
            out.append(("P", node.tag, node.big, list(node.fragments)))
    return out


def outcome(buf: bytes, start: int, syntax: rawdicom.Syntax, convert_un: bool = False) -> tuple:
    """What parsing gives: the dump and the encapsulated-pixels flag, or the error message."""
    try:
        nodes = read_dataset(buf, start, len(buf), syntax, convert_un)
    except BrokenDataSet as exc:
        return ("broken", exc.reason)
    return ("ok", dump(nodes), rawdicom.has_encapsulated_pixels(nodes))


def spool_parts(path: Path) -> tuple[bytes, int, rawdicom.Syntax] | None:
    """The file's bytes, data set offset and syntax, if it is a file rawdicom reads natively."""
    buf = path.read_bytes()
    try:
        meta, offset = rawdicom._read_meta(buf)
    except BrokenDataSet:
        return None
    syntax = rawdicom.syntax_for(meta[0x0010].rstrip(b"\0 ").decode("ascii", "replace"))
    return None if syntax.deflated else (buf, offset, syntax)


def readable_files() -> list[Path]:
    """pydicom test files with a file meta that both readers parse without error."""
    files = []
    for path in sorted(TEST_FILES.rglob("*")):
        parts = path.is_file() and spool_parts(path)
        if parts and outcome(*parts)[0] == "ok":
            files.append(path)
    return files


READABLE = readable_files()


# ------------------------------------------------------------------------------ pydicom's reading

FRAGMENT = struct.Struct("<HHI"), struct.Struct(">HHI")


def fragments_as_stream(buf: bytes, node: PixelSequence) -> bytes:
    """The item stream the fragments were read from (what pydicom keeps as the value)."""
    header = FRAGMENT[node.big]
    return b"".join(header.pack(0xFFFE, 0xE000, n) + buf[o : o + n] for o, n in node.fragments)


def compare_with_pydicom(buf: bytes, nodes: list, dataset, implicit: bool, where: str, base: int = 0) -> int:
    """Assert that *nodes* hold what pydicom read into *dataset*; return the elements compared.

    pydicom's value offsets are relative to *base*: the value of a defined-length sequence
    it converts lazily, else the start of the file.
    """
    ours = {node.tag: node for node in nodes}
    theirs = {int(tag): dataset.get_item(tag) for tag in dataset._dict}
    assert sorted(ours) == sorted(theirs), where
    compared = 0
    for tag, node in ours.items():
        raw, at = theirs[tag], f"{where} ({tag:08X})"
        sequence_vr = raw.VR == "SQ" or (raw.VR is None and tag & 0x10000 == 0 and _dict_vr(tag) == "SQ")
        if isinstance(node, Sequence):
            lazy = isinstance(raw, RawDataElement) and sequence_vr
            value = dataset[tag].value if lazy else raw.value
            assert isinstance(value, pydicom.Sequence), at
            assert len(node.items) == len(value), at
            inner = base + raw.value_tell if lazy else base
            for index, (item, their_item) in enumerate(zip(node.items, value)):
                compared += compare_with_pydicom(buf, item, their_item, implicit, f"{at}[{index}]", inner)
        elif isinstance(node, PixelSequence):
            assert fragments_as_stream(buf, node) == raw.value, at
        elif not isinstance(raw, RawDataElement):  # pydicom converts empty values at once
            assert node.length == 0 and raw.is_empty, at
        else:
            assert (node.offset, node.length) == (base + raw.value_tell, raw.length), at
            assert buf[node.offset : node.offset + node.length] == raw.value, at
            if not implicit and raw.VR in rawdicom.STANDARD_VRS:
                assert node.vr == raw.VR, at
        compared += 1
    return compared


def _dict_vr(tag: int) -> str | None:
    try:
        return dictionary_VR(tag)
    except KeyError:
        return None


@pytest.mark.parametrize("path", READABLE, ids=[p.name for p in READABLE])
def test_same_elements_offsets_and_values_as_pydicom(path: Path) -> None:
    buf, offset, syntax = spool_parts(path)
    nodes = read_dataset(buf, offset, len(buf), syntax)
    fp = io.BytesIO(buf)
    fp.seek(offset)
    dataset = pydicom_read_dataset(fp, syntax.implicit, not syntax.big)
    assert compare_with_pydicom(buf, nodes, dataset, syntax.implicit, path.name) > 0


def test_most_test_files_are_compared() -> None:
    assert len(READABLE) >= 100  # the comparison above is not vacuous


# ------------------------------------------------------------------------------ broken input

SMALL = [p for p in READABLE if p.stat().st_size <= 8000]
IMPLICIT = rawdicom.syntax_for(rawdicom.IMPLICIT_LE)


@pytest.mark.parametrize("path", SMALL[:40], ids=[p.name for p in SMALL[:40]])
def test_a_cut_is_broken_unless_it_falls_between_top_level_elements(path: Path) -> None:
    """Every cut of the data set: exactly one success per top-level node, each a prefix."""
    buf, offset, syntax = spool_parts(path)
    full = outcome(buf, offset, syntax)[1]
    successes = 0
    for cut in range(offset, len(buf)):
        result = outcome(buf[:cut], offset, syntax)
        if result[0] == "ok":
            successes += 1
            assert result[1] == full[: len(result[1])], cut
        else:
            assert result[1].startswith(("data set ends inside", "(")), result
    top_level_ends = len(full) - 1  # the last node ends at the end of the file, not cut
    assert successes == top_level_ends + 1  # ... and the cut at the very start is empty


def test_a_corrupt_header_is_broken(path: Path = TEST_FILES / "test-SR.dcm") -> None:
    """A non-printable VR and an overlong length, in every element header read in explicit VR."""
    buf, offset, syntax = spool_parts(path)
    assert not syntax.implicit and len(buf) < 0xFFFF
    headers = [n for n in _all_elements(read_dataset(buf, offset, len(buf), syntax)) if n.vr in SHORT]
    assert len(headers) > 100
    for node in headers:
        bad_vr = buf[: node.offset - 4] + b"\x01\x02" + buf[node.offset - 2 :]
        assert outcome(bad_vr, offset, syntax)[1].startswith("invalid VR b'\\x01\\x02' in element")
        too_long = buf[: node.offset - 2] + b"\xff\xff" + buf[node.offset :]
        result = outcome(too_long, offset, syntax)
        assert result[0] == "broken" and result[1].startswith(("data set ends inside the value", "(")), result


SHORT = {"AE", "AS", "AT", "CS", "DA", "DS", "DT", "FD", "FL", "IS", "LO", "LT", "PN", "SH", "SL", "SS", "ST",
         "TM", "UI", "UL", "US"}


def _all_elements(nodes: list) -> list[Element]:
    out = []
    for node in rawdicom.walk(nodes):
        if isinstance(node, Element):
            out.append(node)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_random_corruption_parses_or_is_broken_never_another_error(seed: int) -> None:
    rng = random.Random(seed)
    for path in rng.sample(SMALL, 10):
        buf, offset, syntax = spool_parts(path)
        for _ in range(200):
            data = bytearray(buf)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(offset, len(data))] = rng.choice((0, 0xFF, 0xFE, 0xE0, rng.randrange(256)))
            for other in (syntax, IMPLICIT, rawdicom.syntax_for(rawdicom.EXPLICIT_BE)):
                outcome(bytes(data), offset, other, convert_un=rng.random() < 0.5)  # BrokenDataSet at most


# ------------------------------------------------------------------------------ dcmdata's quirks

LE = struct.Struct("<HH2sH")


def el(tag: int, vr: bytes, value: bytes) -> bytes:
    return LE.pack(tag >> 16, tag & 0xFFFF, vr, len(value)) + value


def test_items_are_sorted_and_the_first_of_repeated_tags_is_kept() -> None:
    data = el(0x00100020, b"LO", b"ID") + el(0x00100010, b"PN", b"A^B ") + el(0x00100020, b"LO", b"XX")
    nodes = read_dataset(data, 0, len(data), rawdicom.syntax_for(rawdicom.EXPLICIT_LE))
    assert [(n.tag, n.offset) for n in nodes] == [(0x00100010, 18), (0x00100020, 8)]


def test_an_item_delimiter_at_the_top_level_ends_the_data_set() -> None:
    data = el(0x00100010, b"PN", b"A^B ") + struct.pack("<HHI", 0xFFFE, 0xE00D, 0) + b"\x01garbage"
    result = outcome(data, 0, rawdicom.syntax_for(rawdicom.EXPLICIT_LE))
    assert result == ("ok", [("E", 0x00100010, "PN", 8, 4, False, None)], False)


def test_encapsulated_pixels_are_found_however_deep() -> None:
    pixels = struct.pack("<HH2sHI", 0x7FE0, 0x0010, b"OB", 0, 0xFFFFFFFF) + struct.pack("<HHI", 0xFFFE, 0xE000, 0)
    pixels += struct.pack("<HHI", 0xFFFE, 0xE0DD, 0)
    item = struct.pack("<HHI", 0xFFFE, 0xE000, len(pixels)) + pixels
    data = struct.pack("<HH2sHI", 0x0040, 0xA730, b"SQ", 0, len(item)) + item
    result = outcome(data, 0, rawdicom.syntax_for("1.2.840.10008.1.2.4.50"))
    assert result == ("ok", [("S", 0x0040A730, [[("P", 0x7FE00010, False, [(40, 0)])]])], True)
    assert outcome(el(0x00100010, b"PN", b"A^B "), 0, rawdicom.syntax_for(rawdicom.EXPLICIT_LE))[2] is False


def implicit_el(tag: int, value: bytes) -> bytes:
    return struct.pack("<HHI", tag >> 16, tag & 0xFFFF, len(value)) + value


@pytest.mark.parametrize(("context", "tag", "vr"), [
    (implicit_el(0x00280103, b"\1\0"), 0x00280106, "SS"),  # PixelRepresentation 1: signed
    (implicit_el(0x00280103, b"\0\0"), 0x00280106, "US"),
    (b"", 0x00280106, "xs"),  # nothing to settle it from
    (implicit_el(0x54001004, b"\x08\0"), 0x54001010, "OB"),  # WaveformBitsAllocated 8
    (implicit_el(0x54001004, b"\x10\0"), 0x54001010, "OW"),
    (b"", 0x50003000, "OB"),  # curve data
    (b"", 0x60003000, "OW"),  # overlay data
    (b"", 0x7FE00010, "OW"),  # pixel data
    (b"", 0x00091001, "??"),  # private, no private dictionary
    (b"", 0x00090010, "LO"),  # private creator
    (b"", 0x00100000, "UL"),  # group length
])
def test_implicit_vr_comes_from_the_dictionary_and_the_item(context: bytes, tag: int, vr: str) -> None:
    data = context + implicit_el(tag, b"\0\0")
    nodes = read_dataset(data, 0, len(data), IMPLICIT)
    assert [n.vr for n in nodes if n.tag == tag] == [vr]
