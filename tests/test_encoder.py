"""The output encoder on hand-made data sets, checked byte for byte against DCMTK.

Each case is raw data set bytes built here (so that odd, nested, private, big-endian and
deflated encodings are exactly what the case says), wrapped as a spool file. DCMTK's own
writer (``/usr/bin/dcmconv``, same dcmdata as storescp) re-encodes the same file with the
same options; the data sets must be identical. The meta header is checked separately
against the bytes spec §10.1 prescribes.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from sidebyside import dcmtk_env, split_meta
from spoolscp.rawdicom import DEFLATED_LE, EXPLICIT_BE, EXPLICIT_LE, IMPLICIT_LE
from workers import encoder
from workers.encoder import CannotWrite, Encoding, conversion_possible, file_meta, write_output

DCMCONV = "/usr/bin/dcmconv"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
CT = "1.2.840.10008.5.1.4.1.1.2"
SHORT_VRS = set("AE AS AT CS DA DS DT FD FL IS LO LT PN SH SL SS ST TM UI UL US".split())
UNDEFINED = 0xFFFFFFFF


# ------------------------------------------------------------------------------ builders

class Enc:
    """How the bytes of a hand-made data set are encoded."""

    def __init__(self, implicit: bool = False, big: bool = False) -> None:
        self.implicit, self.o = implicit, ">" if big else "<"

    def tag(self, tag: int) -> bytes:
        return struct.pack(self.o + "HH", tag >> 16, tag & 0xFFFF)

    def el(self, tag: int, vr: str, value: bytes, length: int | None = None) -> bytes:
        length = len(value) if length is None else length
        if self.implicit:
            return self.tag(tag) + struct.pack(self.o + "I", length) + value
        if vr not in SHORT_VRS and vr.isupper():  # DCMTK: unknown upper-case VRs have 4-byte lengths
            return self.tag(tag) + vr.encode() + struct.pack(self.o + "HI", 0, length) + value
        return self.tag(tag) + vr.encode() + struct.pack(self.o + "H", length) + value

    def item(self, content: bytes, undefined: bool = False) -> bytes:
        if undefined:
            return self.tag(0xFFFEE000) + struct.pack(self.o + "I", UNDEFINED) + content + \
                self.tag(0xFFFEE00D) + bytes(4)
        return self.tag(0xFFFEE000) + struct.pack(self.o + "I", len(content)) + content

    def seq(self, tag: int, items: list[bytes], undefined: bool = False, vr: str = "SQ") -> bytes:
        body = b"".join(items)
        if undefined:
            return self.el(tag, vr, body + self.tag(0xFFFEE0DD) + bytes(4), UNDEFINED)
        return self.el(tag, vr, body)

    def us(self, *values: int) -> bytes:
        return struct.pack(self.o + "H" * len(values), *values)


LE, BE, IMP = Enc(), Enc(big=True), Enc(implicit=True)


def uids(enc: Enc, sop_class: str | None = CT, instance: str | None = "1.2.3.4") -> bytes:
    out = b""
    if sop_class is not None:
        out += enc.el(0x00080016, "UI", pad(sop_class, b"\0"))
    if instance is not None:
        out += enc.el(0x00080018, "UI", pad(instance, b"\0"))
    return out


def pad(text: str, char: bytes = b" ") -> bytes:
    raw = text.encode()
    return raw + char if len(raw) & 1 else raw


def spool_file(path: Path, dataset: bytes, ts: str) -> Path:
    """A spool file as the receiver writes it: preamble, request meta, received bytes."""
    if ts == DEFLATED_LE:
        z = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
        dataset = z.compress(dataset) + z.flush()
    meta = file_meta(CT, "1.2.3.4", ts, "PYNETDICOM_300", "SENDER")
    path.write_bytes(bytes(128) + b"DICM" + meta + dataset)
    return path


def dcmconv_args(e: Encoding) -> list[str]:
    """dcmconv's options for the same encoding (its padding default differs: say -p)."""
    args = {"little": ["+te"], "big": ["+tb"], "implicit": ["+ti"], "deflated": ["+td"]}.get(e.xfer, [])
    args += ["+cl", str(e.compression_level)] if e.xfer == "deflated" else []
    args += [] if e.new_vr else ["-u"]
    args += {"create": ["+g"], "remove": ["-g"]}.get(e.group_length, [])
    args += [] if e.explicit_length else ["-e"]
    args += ["+p", *map(str, e.padding)] if e.padding else ["-p"]
    args += ["+uc"] if e.convert_un else []
    return args + ([] if e.write_file else ["-F"])


def ours(spool: Path, e: Encoding, calling_ae: str | None = None) -> bytes:
    """Our output; no calling AE by default because dcmconv writes no Source AE."""
    out = io.BytesIO()
    write_output(spool, out, e, calling_ae)
    return out.getvalue()


def dcmtk(spool: Path, e: Encoding, tmp_path: Path) -> bytes:
    out = tmp_path / "dcmconv.dcm"
    subprocess.run([DCMCONV, *dcmconv_args(e), str(spool), str(out)], check=True, timeout=60,
                   env=dcmtk_env(), capture_output=True)
    return out.read_bytes()


def dataset_of(data: bytes) -> bytes:
    split = split_meta(data)
    dataset = split[1] if split else data
    if split and split[0].get(0x00020010) == DEFLATED_LE:
        dataset = zlib.decompress(dataset, -zlib.MAX_WBITS)
    return dataset


def assert_same_as_dcmtk(tmp_path: Path, dataset: bytes, ts: str, **options) -> bytes:
    """Our data set bytes equal dcmconv's for the same input and options; returns them."""
    e = Encoding(**options)
    spool = spool_file(tmp_path / "spool.dcm", dataset, ts)
    mine, theirs = dataset_of(ours(spool, e)), dataset_of(dcmtk(spool, e, tmp_path))
    assert mine == theirs, f"first difference at {next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))}: ours {mine.hex()} dcmtk {theirs.hex()}"
    return mine


# ------------------------------------------------------------------------------ cases

def nested(enc: Enc, undefined: bool) -> bytes:
    inner = enc.seq(0x00081115, [enc.item(enc.el(0x00081150, "UI", pad("1.2", b"\0")), undefined)],
                    undefined)
    outer_item = enc.el(0x00080100, "SH", b"ABC ") + enc.el(0x00080104, "LO", b"x") + inner
    return (enc.el(0x00080005, "CS", b"ISO_IR 100") + uids(enc)
            + enc.seq(0x00081110, [enc.item(outer_item, undefined), enc.item(b"", undefined)], undefined)
            + enc.el(0x00100010, "PN", b"Doe^J"))


def private_and_un(enc: Enc) -> bytes:
    return (uids(enc) + enc.el(0x00090010, "LO", b"ACME") + enc.el(0x00091001, "UN", b"\1\2\3")
            + enc.el(0x00091002, "LO", b"odd") + enc.el(0x00100020, "UN", b"PATID ")
            + enc.el(0x00101010, "UN", b"042Y"))


def deep(levels: int) -> bytes:
    """Sequences nested *levels* deep (both passes of the writer use explicit stacks)."""
    content = LE.el(0x00100010, "PN", b"A^B ")
    for _ in range(levels):
        content = LE.seq(0x00081110, [LE.item(content, True)], True)
    return uids(LE) + content


def plain(enc: Enc) -> bytes:
    """What modalities usually send: flat, sorted, even lengths, strings already normalised."""
    return (enc.el(0x00080005, "CS", b"ISO_IR 100") + uids(enc) + enc.el(0x00080060, "CS", b"OT")
            + enc.el(0x00100010, "PN", b"Doe^J ") + enc.el(0x00280010, "US", enc.us(24))
            + enc.el(0x7FE00010, "OW", enc.us(*range(64))))


CASES = {
    "plain data set": (plain(LE), EXPLICIT_LE),
    "plain data set, big endian": (plain(BE), EXPLICIT_BE),
    "plain data set, implicit VR": (plain(IMP), IMPLICIT_LE),
    "plain data set, deflated": (plain(LE), DEFLATED_LE),
    "nested explicit-length sequences": (nested(LE, False), EXPLICIT_LE),
    "nested undefined-length sequences": (nested(LE, True), EXPLICIT_LE),
    "nested, implicit VR": (nested(IMP, True), IMPLICIT_LE),
    "empty sequences and items": (uids(LE) + LE.seq(0x00081110, []) + LE.seq(0x00081111, [], True)
                                  + LE.seq(0x00081115, [LE.item(b""), LE.item(b"", True)]), EXPLICIT_LE),
    "odd-length values": (LE.el(0x00080005, "CS", b"ISO_IR 100 ") + uids(LE) + LE.el(0x00080020, "DA", b"2024")
                          + LE.el(0x00081030, "LO", b"abc") + LE.el(0x00091001, "OB", b"\1\2\3")
                          + LE.el(0x00100010, "PN", b"Doe  ") + LE.el(0x00200013, "IS", b" 7 "), EXPLICIT_LE),
    "uid with spaces and padding": (LE.el(0x00080016, "UI", b" 1.2.840.10008.5.1.4.1.1.2 \0")
                                    + LE.el(0x00080018, "UI", b"1.2.3.4\0\0"), EXPLICIT_LE),
    "private and UN elements": (private_and_un(LE), EXPLICIT_LE),
    "private elements, implicit VR": (private_and_un(IMP), IMPLICIT_LE),
    "UN with undefined length (CP-246)": (uids(LE) + LE.seq(0x00091010, [LE.item(IMP.el(0x00100010, "PN", b"A^B"), True)],
                                                           True, vr="UN") + LE.el(0x00090010, "LO", b"ACME"), EXPLICIT_LE),
    "big endian input": (BE.el(0x00080005, "CS", b"ISO_IR 100") + uids(BE) + BE.el(0x00181310, "US", BE.us(1, 2, 3, 4))
                         + BE.el(0x00209113, "SQ", b"") + BE.el(0x00280009, "AT", BE.tag(0x00181063))
                         + BE.el(0x00280010, "US", BE.us(2)) + BE.el(0x00281052, "DS", b"-1024")
                         + BE.el(0x00189089, "FD", struct.pack(">3d", 1.0, 0.5, -2.0))
                         + BE.el(0x7FE00010, "OW", BE.us(1, 2, 0x0304, 0xFFFE)), EXPLICIT_BE),
    "deflated input": (nested(LE, False) + LE.el(0x7FE00010, "OB", bytes(range(200))), DEFLATED_LE),
    "group lengths in data set and items": (LE.el(0x00080000, "UL", struct.pack("<I", 99)) + uids(LE)
                                            + LE.seq(0x00081110, [LE.item(LE.el(0x00080000, "UL", bytes(4))
                                                                          + LE.el(0x00081150, "UI", pad("1.2", b"\0")))])
                                            + LE.el(0x00100000, "UL", bytes(4)) + LE.el(0x00100010, "PN", b"A"),
                                            EXPLICIT_LE),
    "trailing padding in data set and item": (uids(LE) + LE.seq(0x00081110, [LE.item(LE.el(0x00081150, "UI", b"1.2\0")
                                                                                     + LE.el(0xFFFCFFFC, "OB", bytes(6)))])
                                              + LE.el(0xFFFCFFFC, "OB", bytes(10)), EXPLICIT_LE),
    "new VRs": (uids(LE) + LE.el(0x00081030, "UT", b"text ") + LE.el(0x00091001, "UN", b"ab")
                + LE.el(0x0040A160, "UT", b"long text") + LE.el(0x00687001, "SV", struct.pack("<q", -5)), EXPLICIT_LE),
    "value too long for a 2-byte length": (uids(IMP) + IMP.el(0x00081030, "LO", b"x" * 70000), IMPLICIT_LE),
    "long US array, big endian out": (uids(IMP) + IMP.el(0x00181310, "US", IMP.us(*range(40000))), IMPLICIT_LE),
    "unknown VRs in the stream": (uids(LE) + LE.el(0x00091001, "XY", b"abcd") + LE.el(0x00091002, "ab", b"ef")
                                  + LE.el(0x00090010, "LO", b"ACME"), EXPLICIT_LE),
    "odd binary values": (uids(LE) + LE.el(0x00181310, "US", b"\1\2\3") + LE.el(0x00091001, "UN", b"\1")
                          + LE.el(0x00090010, "LO", b"ACME") + LE.el(0x7FE00010, "OW", b"\1\2\3"), EXPLICIT_LE),
    "ambiguous VRs, implicit": (uids(IMP) + IMP.el(0x00280103, "US", IMP.us(1)) + IMP.el(0x00280106, "SS", IMP.us(0xFFFE))
                                + IMP.el(0x00283006, "OW", IMP.us(1, 2)) + IMP.el(0x60003000, "OW", IMP.us(7))
                                + IMP.el(0x7FE00010, "OW", IMP.us(5, 6)), IMPLICIT_LE),
    "floats and AT, big endian": (uids(BE) + BE.el(0x00209165, "AT", BE.tag(0x00209056) + BE.tag(0x00209057))
                                  + BE.el(0x00660016, "OF", struct.pack(">2f", 1.5, -2.0))
                                  + BE.el(0x00660040, "OL", struct.pack(">2I", 1, 2))
                                  + BE.el(0x00701003, "OD", struct.pack(">d", 3.25))
                                  + BE.el(0x00280106, "SS", BE.us(0xFFFE)), EXPLICIT_BE),
    "sequence delimiter inside explicit length": (uids(LE) + LE.el(0x00081110, "SQ", LE.item(LE.el(0x00081150, "UI", b"1.2\0"))
                                                                   + LE.tag(0xFFFEE0DD) + bytes(4))
                                                  + LE.el(0x00100010, "PN", b"A^B "), EXPLICIT_LE),
    "odd pixel fragment": (uids(LE) + LE.el(0x7FE00010, "OB", LE.item(b"") + LE.item(b"\xff\xd8\xff")
                                            + LE.tag(0xFFFEE0DD) + bytes(4), UNDEFINED), JPEG_BASELINE),
    "string padding variants": (LE.el(0x00080005, "CS", b"ISO_IR 100\0\0") + uids(LE) + LE.el(0x00080050, "SH", b"  ")
                                + LE.el(0x00081030, "LO", b"abc\0") + LE.el(0x00081040, "LO", b"")
                                + LE.el(0x00084000, "LT", b"text  \0 ") + LE.el(0x00100010, "PN", b"A^B\\C^D ")
                                + LE.el(0x00180015, "CS", b"HEAD \\ ") + LE.el(0x00204000, "LT", b" lead")
                                + LE.el(0x00321060, "LO", b"a\0b ") + LE.el(0x0040A160, "UT", b"long   ")
                                + LE.el(0x00404072, "UR", b"http://x  ") + LE.el(0x00120021, "UC", b"uc  ")
                                + LE.el(0x00080301, "US", b"") + LE.el(0x00200052, "UI", b"1.2 \\ 3.4\0"), EXPLICIT_LE),
    "UN of known tags, big endian": (uids(BE) + BE.el(0x00280010, "UN", b"\x00\x02") + BE.el(0x00280030, "UN", b"0.5\\0.5 ")
                                     + BE.el(0x00081110, "UN", IMP.item(IMP.el(0x00081150, "UI", b"1.2\0"), True)
                                             + IMP.tag(0xFFFEE0DD) + bytes(4), UNDEFINED),
                                     EXPLICIT_BE),
    "sequences nested 600 deep": (deep(600), EXPLICIT_LE),
    "encapsulated pixel data": (uids(LE) + LE.el(0x7FE00010, "OB", LE.item(b"") + LE.item(b"\xff\xd8\xff")
                                                 + LE.tag(0xFFFEE0DD) + bytes(4), UNDEFINED), JPEG_BASELINE),
}
OPTION_SETS = {
    "default": {},
    "+te": {"xfer": "little"}, "+tb": {"xfer": "big"}, "+ti": {"xfer": "implicit"},
    "+td +cl 9": {"xfer": "deflated", "compression_level": 9},
    "+g": {"group_length": "create"}, "-g": {"group_length": "remove"},
    "-e": {"explicit_length": False}, "+p 64 16": {"padding": (64, 16)},
    "-u": {"new_vr": False}, "+uc": {"convert_un": True}, "-F": {"write_file": False},
}


# Not paired: encapsulated data with a conversion (refused, test_encapsulated_not_converted),
# and deep nesting with +g, where dcmconv's time grows ~1.6x per level (0.5 s at 20 levels).
PAIRS = [(case, name) for case in CASES for name in OPTION_SETS
         if not (CASES[case][1] == JPEG_BASELINE and "xfer" in OPTION_SETS[name])
         and not (case.startswith("sequences nested") and name == "+g")]


@pytest.mark.parametrize(("case", "options"), PAIRS, ids=[f"{c}|{o}" for c, o in PAIRS])
def test_same_bytes_as_dcmtk(case: str, options: str, tmp_path: Path) -> None:
    dataset, ts = CASES[case]
    assert_same_as_dcmtk(tmp_path, dataset, ts, **OPTION_SETS[options])


# ------------------------------------------------------------------------------ copy, not re-encode

def reencoded(spool: Path, e: Encoding, monkeypatch) -> bytes:
    """Our output with the verbatim copy turned off: every data set through the Layout."""
    with monkeypatch.context() as m:
        m.setattr(encoder, "writes_verbatim", lambda *args: False)
        return ours(spool, e)


def copied_or_not(monkeypatch) -> list[bool]:
    """Record what each write_output decided (True: the received bytes were copied)."""
    decisions: list[bool] = []
    decide = encoder.writes_verbatim
    monkeypatch.setattr(encoder, "writes_verbatim", lambda *args: decisions.append(decide(*args)) or decisions[-1])
    return decisions


@pytest.mark.parametrize(("case", "options"), PAIRS, ids=[f"{c}|{o}" for c, o in PAIRS])
def test_a_copied_data_set_is_what_reencoding_writes(case: str, options: str, tmp_path: Path, monkeypatch) -> None:
    dataset, ts = CASES[case]
    e = Encoding(**OPTION_SETS[options])
    spool = spool_file(tmp_path / "spool.dcm", dataset, ts)
    decisions = copied_or_not(monkeypatch)
    assert ours(spool, e) == reencoded(spool, e, monkeypatch)
    if case.startswith("plain") and options in ("default", "-F", "-g"):
        assert decisions == [True]  # the fast path is taken where it applies


def random_flat_data_set(rng: random.Random, enc: Enc) -> bytes:
    """A flat data set mixing normalised values with everything that re-encoding changes:
    odd lengths, extra padding, spaces in UIDs, group lengths, trailing padding, unsorted
    and repeated tags, renamed and unknown VR codes, a top-level item delimiter."""
    pool = [
        (0x00080005, "CS", [b"ISO_IR 100", b"ISO_IR 100  ", b"ISO_IR 6"]),
        (0x00080016, "UI", [pad(CT, b"\0"), b" " + pad(CT, b"\0"), CT.encode()]),
        (0x00080018, "UI", [b"1.2.3.4\0"]),  # kept: without it the meta gets a fresh UID each time
        (0x00080020, "DA", [b"20240101", b"2024010 "]),
        (0x00081030, "LO", [b"abcd", b"abc", b"ab  ", b""]),
        (0x00090010, "LO", [b"ACME"]),
        (0x00091001, "UN", [b"\1\2", b"\1"]),
        (0x00100010, "PN", [b"A^B ", b"A^B", b"A^B   "]),
        (0x00181310, "US", [enc.us(1, 2), b"\1\2\3"]),
        (0x00189089, "FD", [struct.pack(enc.o + "d", 0.5)]),
        (0x00280030, "DS", [b"0.5\\0.5 ", b"0.5"]),
        (0x7FE00010, "OW", [enc.us(*range(8)), b"\1\2\3"]),
    ]
    elements = [(tag, vr, rng.choice(values) if rng.random() < 0.1 else values[0])
                for tag, vr, values in pool if tag in (0x00080018, 0x7FE00010) or rng.random() < 0.8]
    change = rng.choice([None] * 4 + ["group length", "padding", "swap", "repeat", "VR code", "OX", "delimiter"])
    if change == "group length":
        elements.insert(0, (0x00080000, "UL", struct.pack(enc.o + "I", 20)))
    elif change == "padding":
        elements.append((0xFFFCFFFC, "OB", bytes(6)))
    elif change == "swap":
        i = rng.randrange(len(elements) - 1)
        elements[i], elements[i + 1] = elements[i + 1], elements[i]
    elif change == "repeat":
        elements.insert(0, elements[0])
    elif change in ("VR code", "OX"):  # OX: DCMTK reads it as OW on pixel data (and writes OW)
        tag, _, value = elements[-1]
        elements[-1] = (tag, "OX" if change == "OX" else rng.choice(["ox", "xs", "XY", "??"]), value)
    data = b"".join(enc.el(tag, vr, value) for tag, vr, value in elements)
    if change == "delimiter":  # dcmdata stops reading there
        data += enc.tag(0xFFFEE00D) + bytes(4) + enc.el(0x7FE10010, "OB", b"ID")
    return data


@pytest.mark.parametrize("options", ["default", "-F", "-g", "+td +cl 9", "-u", "+g"])
def test_random_flat_data_sets_copied_or_reencoded_alike(options: str, tmp_path: Path, monkeypatch) -> None:
    """Whatever writes_verbatim decides, the output is what the Layout writes (and the
    Layout's own output is dcmconv's, test_same_bytes_as_dcmtk); both decisions occur."""
    rng = random.Random(7)
    e = Encoding(**OPTION_SETS[options])
    decisions = copied_or_not(monkeypatch)
    for i in range(300):
        enc, ts = rng.choice([(LE, EXPLICIT_LE), (BE, EXPLICIT_BE), (IMP, IMPLICIT_LE), (LE, DEFLATED_LE)])
        spool = spool_file(tmp_path / f"{i}.dcm", random_flat_data_set(rng, enc), ts)
        try:
            mine = ours(spool, e)
        except Exception as exc:  # a data set that cannot be read must fail the same way
            with pytest.raises(type(exc)):
                reencoded(spool, e, monkeypatch)
            continue
        assert mine == reencoded(spool, e, monkeypatch), f"data set {i}"
    copied = decisions.count(True)
    if options not in ("-u", "+g"):  # these two rewrite every data set here (UN as OB, new group lengths)
        assert 20 < copied < len(decisions) - 20, copied


@pytest.mark.parametrize("level", [1, 6, 9])
def test_deflated_stream_is_dcmtks(level: int, tmp_path: Path) -> None:
    """+td +cl N: the compressed bytes themselves are dcmconv's (same zlib, raw deflate)."""
    dataset, ts = CASES["deflated input"]
    spool = spool_file(tmp_path / "s.dcm", dataset + LE.el(0x7FE10010, "OB", bytes(5000)), EXPLICIT_LE)
    e = Encoding(xfer="deflated", compression_level=level)
    assert split_meta(ours(spool, e))[1] == split_meta(dcmtk(spool, e, tmp_path))[1]


# ------------------------------------------------------------------------------ meta header

def test_meta_header_is_storescp_369s(tmp_path: Path) -> None:
    """Spec §10.1, byte for byte: UIDs from the data set (not the request), Source AE."""
    dataset = uids(LE, "1.2.840.10008.5.1.4.1.1.7", "9.8.7") + LE.el(0x00100010, "PN", b"A^B ")
    out = ours(spool_file(tmp_path / "s.dcm", dataset, EXPLICIT_LE), Encoding(), "SENDER")
    group = (b"\2\0\1\0OB\0\0\2\0\0\0\0\1"
             b"\2\0\2\0UI\x1a\x001.2.840.10008.5.1.4.1.1.7\0"
             b"\2\0\3\0UI\x06\x009.8.7\0"
             b"\2\0\x10\0UI\x14\x001.2.840.10008.1.2.1\0"
             b"\2\0\x12\0UI\x1c\x001.2.276.0.7230010.3.0.3.6.9\0"
             b"\2\0\x13\0SH\x10\x00OFFIS_DCMTK_369 "
             b"\2\0\x16\0AE\x06\x00SENDER")
    header = bytes(128) + b"DICM" + b"\2\0\0\0UL\4\0" + struct.pack("<I", len(group)) + group
    assert out[: len(header)] == header
    assert out[len(header):] == dataset


def test_meta_when_sop_uids_are_absent_or_empty(tmp_path: Path) -> None:
    """As dcmdata: absent class -> PrivateGenericFileSOPClass, absent instance -> a fresh UID
    (a new one each time); present but empty stays empty (checked with dcmconv)."""
    absent = spool_file(tmp_path / "a.dcm", LE.el(0x00100010, "PN", b"A^B "), EXPLICIT_LE)
    first, second = (split_meta(ours(absent, Encoding()))[0] for _ in range(2))
    assert first[0x00020002] == "1.2.276.0.7230010.3.1.0.1"
    assert first[0x00020003].startswith("1.2.276.0.7230010.3.1.4.")
    assert len(first[0x00020003]) <= 64 and first[0x00020003] != second[0x00020003]
    empty = spool_file(tmp_path / "e.dcm", LE.el(0x00080016, "UI", b"") + LE.el(0x00080018, "UI", b""), EXPLICIT_LE)
    meta = split_meta(ours(empty, Encoding()))[0]
    assert (meta[0x00020002], meta[0x00020003]) == ("", "")
    assert meta == split_meta(dcmtk(empty, Encoding(), tmp_path))[0] | {
        0x00020012: "1.2.276.0.7230010.3.0.3.6.9", 0x00020013: "OFFIS_DCMTK_369"}


# ------------------------------------------------------------------------------ +B, -F

@pytest.mark.parametrize("ts", [EXPLICIT_BE, DEFLATED_LE, IMPLICIT_LE])
def test_bit_preserving_copies_the_received_bytes(ts: str, tmp_path: Path) -> None:
    """+B: the spooled bytes verbatim (padding kept, deflate not redone), meta from the request."""
    enc = BE if ts == EXPLICIT_BE else IMP if ts == IMPLICIT_LE else LE
    dataset = uids(enc, "1.2.840.10008.5.1.4.1.1.7", "9.8.7") + enc.el(0x00100010, "PN", b"x") \
        + enc.el(0xFFFCFFFC, "OB", bytes(8))
    spool = spool_file(tmp_path / "s.dcm", dataset, ts)
    received = spool.read_bytes()[132 + len(file_meta(CT, "1.2.3.4", ts, "PYNETDICOM_300", "SENDER")):]
    with_meta = ours(spool, Encoding(bit_preserving=True), "SENDER")
    meta = file_meta(CT, "1.2.3.4", ts, "OFFIS_DCMBP_369", "SENDER")  # request UIDs, not 9.8.7
    assert with_meta == bytes(128) + b"DICM" + meta + received
    assert ours(spool, Encoding(bit_preserving=True, write_file=False)) == received


def test_bare_data_set_with_minus_F(tmp_path: Path) -> None:
    spool = spool_file(tmp_path / "s.dcm", nested(LE, True), EXPLICIT_LE)
    assert ours(spool, Encoding(write_file=False)) == split_meta(ours(spool, Encoding()))[1]


# ------------------------------------------------------------------------------ conversions

@pytest.mark.parametrize("xfer", ["little", "big", "implicit", "deflated"])
def test_encapsulated_not_converted(xfer: str, tmp_path: Path) -> None:
    """No codecs, as in storescp: encapsulated pixel data stays in its syntax or fails."""
    dataset, ts = CASES["encapsulated pixel data"]
    spool = spool_file(tmp_path / "s.dcm", dataset, ts)
    with pytest.raises(CannotWrite):
        ours(spool, Encoding(xfer=xfer))
    assert not conversion_possible(ts, Encoding(xfer=xfer), encapsulated_pixels=True)
    assert conversion_possible(ts, Encoding(xfer="same"), encapsulated_pixels=True)
    assert conversion_possible(ts, Encoding(xfer=xfer, bit_preserving=True), encapsulated_pixels=True)
    assert conversion_possible(EXPLICIT_LE, Encoding(xfer=xfer), encapsulated_pixels=False)


def test_encapsulated_syntax_without_pixel_data_converts(tmp_path: Path) -> None:
    """Only pixel data needs a codec: dcmconv converts such a data set, and so do we."""
    dataset = uids(LE) + LE.el(0x00100010, "PN", b"A^B ")
    assert conversion_possible(JPEG_BASELINE, Encoding(xfer="little"), encapsulated_pixels=False)
    assert assert_same_as_dcmtk(tmp_path, dataset, JPEG_BASELINE, xfer="little") == dataset


def test_large_values_are_streamed(tmp_path: Path) -> None:
    """A 48 MB pixel data element, byte-swapped, costs bounded memory (mmap slices, 1 MB chunks)."""
    import tracemalloc

    size = 48 << 20
    spool = spool_file(tmp_path / "s.dcm", uids(BE) + BE.el(0x7FE00010, "OW", bytes(range(256)) * (size // 256)),
                       EXPLICIT_BE)
    out = tmp_path / "out.dcm"
    tracemalloc.start()
    try:
        with out.open("wb") as f:
            write_output(spool, f, Encoding(xfer="little"), "SENDER")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak} bytes"
    with out.open("rb") as f:
        f.seek(-4, 2)
        assert f.read() == bytes([0xFD, 0xFC, 0xFF, 0xFE])  # last two words swapped


# ------------------------------------------------------------------------------ kernel copy

def kernel_copies(monkeypatch, fail_with: int | None = None, after: int = 0) -> list[int]:
    """Record the byte counts ``copy_file_range`` copied; ``fail_with`` an errno raised once
    ``after`` calls have copied (0: at once)."""
    copied: list[int] = []
    real = encoder.os.copy_file_range

    def copy(src: int, dst: int, count: int, offset_src: int | None = None) -> int:
        if fail_with is not None and len(copied) >= after:
            raise OSError(fail_with, "refused by the test")
        n = real(src, dst, min(count, 4096), offset_src)  # small steps: the loop must resume right
        copied.append(n)
        return n

    monkeypatch.setattr(encoder.os, "copy_file_range", copy)
    return copied


def file_output(spool: Path, e: Encoding, out: Path) -> bytes:
    with out.open("wb") as f:
        write_output(spool, f, e, "SENDER")
    return out.read_bytes()


@pytest.mark.parametrize(("e", "ts"), [(Encoding(), EXPLICIT_LE), (Encoding(bit_preserving=True), EXPLICIT_LE),
                                       (Encoding(xfer="little"), DEFLATED_LE)], ids=["copied", "+B", "inflated"])
def test_a_verbatim_copy_to_a_file_is_made_by_the_kernel(e: Encoding, ts: str, tmp_path: Path, monkeypatch) -> None:
    """To a real file the received (or inflated) bytes go by ``copy_file_range`` (nothing
    through Python), behind the header written first, with the same result as the copy
    through memory."""
    spool = spool_file(tmp_path / "s.dcm", uids(LE) + LE.el(0x7FE00010, "OW", bytes(range(256)) * 80), ts)
    expected = ours(spool, e, "SENDER")  # a BytesIO has no descriptor: the copy through memory
    copied = kernel_copies(monkeypatch)
    assert file_output(spool, e, tmp_path / "out.dcm") == expected
    assert sum(copied) == len(expected) - 132 - meta_length(expected)  # the whole data set
    assert len(copied) > 1


def meta_length(output: bytes) -> int:
    """The length of the file meta group after ``DICM`` (its group length plus 12)."""
    return 12 + struct.unpack_from("<I", output, 132 + 8)[0]


def test_a_file_system_that_cannot_copy_gets_the_copy_through_memory(tmp_path: Path, monkeypatch) -> None:
    spool = spool_file(tmp_path / "s.dcm", uids(LE) + LE.el(0x7FE00010, "OW", bytes(9000)), EXPLICIT_LE)
    expected = ours(spool, Encoding(), "SENDER")
    kernel_copies(monkeypatch, fail_with=encoder.errno.EXDEV)
    assert file_output(spool, Encoding(), tmp_path / "out.dcm") == expected


def test_an_error_after_part_of_the_copy_is_the_writes_own(tmp_path: Path, monkeypatch) -> None:
    """An error once part of the data set is copied (a full disk, say) is raised: the job
    fails and is retried. Even an errno that means "cannot copy" at the start does not
    append a second copy through memory behind the first part."""
    spool = spool_file(tmp_path / "s.dcm", uids(LE) + LE.el(0x7FE00010, "OW", bytes(9000)), EXPLICIT_LE)
    kernel_copies(monkeypatch, fail_with=encoder.errno.EXDEV, after=1)
    with pytest.raises(OSError) as raised:
        file_output(spool, Encoding(), tmp_path / "out.dcm")
    assert raised.value.errno == encoder.errno.EXDEV
