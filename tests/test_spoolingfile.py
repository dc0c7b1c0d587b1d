"""The chunked-receive spool file (receiver.diskfull.SpoolingFile) and the small-file scan.

pynetdicom writes a data set into it fragment by fragment, flushing after every PDU;
what ends up in the file must be exactly what was written, whatever the fragment sizes,
with a write-behind only for complete chunks. Names must never collide, also between
processes writing into one ``incoming/`` folder (``--fork``). A small object is handed
over whole and never becomes a file. ``scan_spool`` reads a small file instead of
mapping it, or takes the bytes themselves: every way must give the same result.
"""

from __future__ import annotations

import gc
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from receiver import diskfull, writebehind
from spoolscp import rawdicom, spool
from spoolscp.rawdicom import BrokenDataSet, scan_spool


@pytest.fixture
def incoming(tmp_path: Path, monkeypatch) -> Path:
    folder = tmp_path / "incoming"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def receive(pieces: list[bytes]) -> diskfull.SpoolingFile:
    """What pynetdicom does: create, write each fragment and flush, then the handler's check."""
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")
    for piece in pieces:
        f.write(piece)
        f.file.flush()
    assert f.write_error() is None
    return f


@pytest.mark.parametrize("size", [0, 1, 2000, writebehind.CHUNK - 1, writebehind.CHUNK, 3 * writebehind.CHUNK + 5])
def test_the_file_holds_exactly_what_was_written_and_only_whole_chunks_are_written_behind(
        incoming: Path, size: int, monkeypatch) -> None:
    started: list[tuple[int, int]] = []
    monkeypatch.setattr(writebehind, "_start_writing", lambda fd, off, n, flags: started.append((off, n)))
    data = random.Random(size).randbytes(size)
    cuts = sorted(random.Random(size + 1).sample(range(size + 1), min(size, 40)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, size])]
    f = receive(pieces)
    assert Path(f.name).read_bytes() == data  # readable before close: the handler scans it then
    f.close()
    assert Path(f.name).read_bytes() == data
    assert all(n >= writebehind.CHUNK for _, n in started) and sum(n for _, n in started) <= size
    assert (started != []) == (size >= writebehind.CHUNK)


def test_names_are_spool_names_unique_across_processes(incoming: Path) -> None:
    children = []
    for k in range(4):
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            try:
                for i in range(100):
                    receive([f"{k}-{i}".encode()]).close()
            finally:
                os._exit(0)
        children.append(pid)
    for pid in children:
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    files = list(incoming.iterdir())
    assert len(files) == 400
    assert sorted(p.read_bytes() for p in files) == sorted(f"{k}-{i}".encode() for k in range(4) for i in range(100))
    assert len({spool.writer_pid(p.name) for p in files}) == 4


def test_a_taken_name_is_skipped(incoming: Path, monkeypatch) -> None:
    names = iter(["1-2-0.dcm", "1-2-0.dcm", "1-2-1.dcm"])
    monkeypatch.setattr(spool, "new_spool_name", lambda: next(names))
    (incoming / "1-2-0.dcm").write_bytes(b"leftover")
    f = receive([b"new"])
    f.close()
    assert (Path(f.name).name, Path(f.name).read_bytes()) == ("1-2-1.dcm", b"new")
    assert (incoming / "1-2-0.dcm").read_bytes() == b"leftover"


def test_a_write_error_is_remembered_the_file_emptied_and_the_rest_swallowed(incoming: Path, monkeypatch) -> None:
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")
    f.write(b"x" * 100)
    monkeypatch.setattr(diskfull.os, "writev", lambda fd, data: (_ for _ in ()).throw(OSError(28, "No space left")))
    f.write(b"y" * 100)
    error = f.write_error()
    assert isinstance(error, OSError) and error.errno == 28
    f.write(b"z")  # swallowed
    f.close()
    assert Path(f.name).stat().st_size == 0
    assert f.write_error() is None  # reported once


def spool_files() -> list[str]:
    """pydicom's test files: every transfer syntax it has, deflated included, and broken ones."""
    names = ["CT_small.dcm", "MR_small.dcm", "MR_small_bigendian.dcm", "MR_small_implicit.dcm",
             "MR_small_RLE.dcm", "MR_small_padded.dcm", "image_dfl.dcm", "rtplan.dcm", "JPEG2000.dcm",
             "no_meta.dcm", "no_meta_group_length.dcm", "SC_rgb_small_odd.dcm", "ExplVR_BigEnd.dcm",
             "ExplVR_BigEndNoMeta.dcm", "meta_missing_tsyntax.dcm", "empty_charset_LEI.dcm"]
    return [get_testdata_file(name) for name in names]  # all shipped with pydicom: no download


def scan(source):
    try:
        return scan_spool(source)
    except BrokenDataSet as exc:
        return f"BrokenDataSet: {exc}"


def test_reading_a_small_file_scans_like_mapping_it(tmp_path: Path, monkeypatch) -> None:
    files = spool_files()
    truncated = tmp_path / "truncated.dcm"
    truncated.write_bytes(Path(files[0]).read_bytes()[:1000])
    files += [str(truncated)]
    monkeypatch.setattr(rawdicom, "READ_BELOW", 0)
    mapped = [scan(f) for f in files]
    monkeypatch.setattr(rawdicom, "READ_BELOW", 1 << 30)
    read = [scan(f) for f in files]
    held = [scan(bytearray(Path(f).read_bytes())) for f in files]
    assert read == mapped == held
    assert sum(isinstance(r, str) for r in read) < len(read) - 5  # most files are valid, some are not
    assert any(isinstance(r, rawdicom.SpoolInfo) and r.transfer_syntax == rawdicom.DEFLATED_LE for r in read)


def test_a_file_that_cannot_be_created_is_a_write_error_and_leaves_nothing_to_close(tmp_path: Path,
                                                                                     monkeypatch) -> None:
    unraisable: list = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    f = diskfull.SpoolingFile(dir=str(tmp_path / "gone"), delete=False, mode="wb", suffix=".dcm")
    f.write(b"x" * 100)
    assert isinstance(f.write_error(), FileNotFoundError)  # the handler answers 0xA700
    f.close()
    del f
    gc.collect()
    assert unraisable == []  # and its finaliser has nothing to close


@pytest.mark.parametrize("size", [0, 2000, writebehind.CHUNK - 1])
def test_a_small_object_is_handed_over_whole_and_never_becomes_a_file(incoming: Path, size: int) -> None:
    data = random.Random(size).randbytes(size)
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")
    for at in range(0, size, 16378):  # pynetdicom's fragments of a 16 KB PDU
        f.write(data[at:at + 16378])
        f.file.flush()
    assert f.held(size - 1 if size else -1) is None  # larger than the limit: not handed over
    assert f.held(size) == data
    f.close()
    assert list(incoming.iterdir()) == []


def test_an_object_already_partly_on_disk_is_not_handed_over(incoming: Path) -> None:
    size = writebehind.CHUNK + 10
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")
    f.write(bytes(size))
    f.file.flush()  # a whole chunk: written to the file at once
    assert f.held(1 << 30) is None
    assert f.write_error() is None
    f.close()
    assert Path(f.name).stat().st_size == size


def test_an_object_nobody_asked_for_never_reaches_the_disk(incoming: Path) -> None:
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")  # --ignore, or a refused object
    f.write(b"x" * 5000)
    f.file.flush()
    f.close()
    assert list(incoming.iterdir()) == []


def test_fragments_are_kept_without_a_copy_but_mutable_buffers_are_copied(incoming: Path) -> None:
    f = diskfull.SpoolingFile(delete=False, mode="wb", suffix=".dcm")
    reused = bytearray(b"a" * 10)
    f.write(reused)
    reused[:] = b"b" * 10  # pynetdicom never reuses a buffer, but a caller might
    f.write(memoryview(bytearray(b"c" * 5)))
    f.write(memoryview(b"0123456789")[2:])
    f.write(b"")
    assert f.held(1 << 20) == b"a" * 10 + b"c" * 5 + b"23456789"


def test_more_fragments_than_one_writev_takes_and_short_writes_lose_nothing(incoming: Path, monkeypatch) -> None:
    pieces = [bytes([i % 251]) * (1 + i % 7) for i in range(3 * diskfull._IOV_MAX + 5)]
    real = os.writev

    def short_writev(fd: int, buffers: list) -> int:
        assert len(buffers) <= diskfull._IOV_MAX
        head = b"".join(buffers[:3])
        return real(fd, [head[:-1] if len(head) > 1 else head])

    monkeypatch.setattr(diskfull.os, "writev", short_writev)
    f = receive(pieces)  # every writev is short: 3 buffers at most, minus one byte
    f.close()
    assert Path(f.name).read_bytes() == b"".join(pieces)
