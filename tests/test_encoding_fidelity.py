"""Issue 3 acceptance: every storescp output option writes DCMTK's bytes (spec §10).

Each option set sends pydicom's whole corpus with DCMTK's storescu (up to 8 files per
association, see :func:`batched`) to DCMTK storescp and to spoolscp, and compares statuses, names, meta and data set
bytes (deflated data sets inflated, see ``sidebyside.read_output``). Both senders are covered
for the issue-2 sets by ``test_fidelity.py``; one sender is enough to show the encoding.

No file is filtered out: a set passes only if every file both sides stored is identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidebyside import (
    CORPUS_IMPLICIT_VR_AS_EXPLICIT,
    InputFile,
    is_success,
    one_per_file,
    pydicom_corpus,
    run_side_by_side,
)
from spoolscp.rawdicom import syntax_for

OPTION_SETS = {
    "default": [],
    "+B": ["+B"],
    "+B -F": ["+B", "-F"],
    "-F": ["-F"],
    "+te": ["+te"],
    "+tb": ["+tb"],
    "+ti": ["+ti"],
    "+td": ["+td"],
    "+td +cl 1": ["+td", "+cl", "1"],
    "+td +cl 9": ["+td", "+cl", "9"],
    "+g": ["+g"],
    "-g": ["-g"],
    "-e": ["-e"],
    "+p 256 16": ["+p", "256", "16"],
    "-u": ["-u"],
    "+uc": ["+uc"],
    "+te -e +g": ["+te", "-e", "+g"],
    # Every stored object in its own file (+uf), so the 10 objects that a later one with the
    # same SOP Instance UID overwrites in the sets above are compared too.
    "+uf +tb -e +g": ["+uf", "+tb", "-e", "+g"],
}


def batched(files: list[InputFile], size: int = 8) -> list[list[InputFile]]:
    """Associations of up to *size* files, in corpus order (5x faster than one per file).

    Files sharing a SOP Instance UID (34 of pydicom's) may share an association: the last
    one received must win on both sides, whatever order spoolscp's workers finish in.
    """
    return [files[i:i + size] for i in range(0, len(files), size)]


@pytest.fixture(scope="module")
def corpus() -> list[InputFile]:
    files = pydicom_corpus()
    assert len(files) > 100, "pydicom's test data looks incomplete"
    return files


@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_encoding_fidelity(options: list[str], corpus: list[InputFile], tmp_path: Path) -> None:
    """Same statuses and names, and byte-identical data sets, for every file both stored."""
    cmp = run_side_by_side(options, batched(corpus), "dcmtk", tmp_path)
    stored = sum(is_success(r.reference_status) for r in cmp.inputs)
    both = [p for p in cmp.pairs if p.reference and p.candidate]
    identical = sum(p.reference.dataset == p.candidate.dataset for p in both)
    print(f"{options}: {len(corpus)} files sent, {stored} stored by DCMTK, {len(both)} files"
          f" written by both, {identical} data sets identical")
    assert stored > 50, f"too few files stored to mean anything:\n{cmp.report()}"
    assert cmp.ok, cmp.report()
    assert identical == len(both), cmp.report()


STORESCP_CFG = "/etc/dcmtk/storescp.cfg"  # Debian's sample profiles; "Default" accepts JPEG & co


@pytest.fixture(scope="module")
def compressed(corpus: list[InputFile]) -> list[InputFile]:
    """pydicom's files in an encapsulated transfer syntax (40)."""
    return [f for f in corpus if syntax_for(f.ts).encapsulated]


@pytest.mark.parametrize("write_xfer", ["+te", "+tb", "+ti", "+td"])
@pytest.mark.filterwarnings(CORPUS_IMPLICIT_VR_AS_EXPLICIT)
def test_compressed_cannot_be_converted(write_xfer: str, compressed: list[InputFile],
                                        tmp_path: Path) -> None:
    """Encapsulated data sets received via -xf cannot be decompressed: 0xA700, no file (§10.2).

    Sent by pynetdicom, which proposes each file's own transfer syntax (storescu would
    decompress them itself).
    """
    options = ["-xf", STORESCP_CFG, "Default", write_xfer]
    cmp = run_side_by_side(options, one_per_file(compressed), "pynetdicom", tmp_path)
    refused = sum(r.reference_status == "0xA700" for r in cmp.inputs)
    print(f"{options}: {len(compressed)} compressed files sent, {refused} refused with 0xA700 by DCMTK")
    assert refused > 10, cmp.report()
    assert cmp.ok, cmp.report()
    assert not cmp.pairs, cmp.report()


@pytest.mark.parametrize("mode", [[], ["+B"]], ids=["+t=", "+B"])
@pytest.mark.filterwarnings(CORPUS_IMPLICIT_VR_AS_EXPLICIT)
def test_compressed_kept_as_received(mode: list[str], compressed: list[InputFile], tmp_path: Path) -> None:
    """Accepted via -xf, encapsulated data sets are re-encoded (or copied) in their own syntax."""
    cmp = run_side_by_side(["-xf", STORESCP_CFG, "Default", *mode], one_per_file(compressed),
                           "pynetdicom", tmp_path)
    both = [p for p in cmp.pairs if p.reference and p.candidate]
    print(f"{mode}: {len(compressed)} compressed files sent, {len(both)} written by both")
    assert len(both) > 10, cmp.report()
    assert cmp.ok, cmp.report()


def test_meta_header_bytes_are_compared(corpus: list[InputFile], tmp_path: Path) -> None:
    """Equal meta values with different bytes (a NUL instead of a space pad) are a mismatch."""
    files = [f for f in corpus if f.path.name == "CT_small.dcm"]
    cmp = run_side_by_side([], one_per_file(files), "dcmtk", tmp_path, candidate="dcmtk")
    assert cmp.ok, cmp.report()
    out = cmp.candidate.server.outdir / cmp.pairs[0].candidate.relpath
    data = out.read_bytes()
    assert b"OFFIS_DCMTK_367 " in data
    out.write_bytes(data.replace(b"OFFIS_DCMTK_367 ", b"OFFIS_DCMTK_367\0", 1))
    cmp.recompare()
    assert "meta header bytes differ" in cmp.report(), cmp.report()
