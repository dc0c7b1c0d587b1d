"""Foundation acceptance: spoolscp writes what DCMTK storescp writes, for pydicom's test files.

Each option set runs once per sender with one server pair and the whole corpus, so a failure
shows every mismatching file at once (see ``sidebyside.format_report``). The self-check runs
DCMTK against DCMTK and proves the harness reports a difference when there is one.

``SIDEBYSIDE_CANDIDATE=dcmtk pytest tests/test_fidelity.py`` runs the whole suite DCMTK vs DCMTK.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sidebyside import (
    BROKEN_DATA_SET_REFUSED,
    CORPUS_IMPLICIT_VR_AS_EXPLICIT,
    SUCCESS,
    Comparison,
    InputFile,
    NamingScheme,
    VersionDifferences,
    is_success,
    one_per_file,
    parse_storescu_log,
    pydicom_corpus,
    run_side_by_side,
)

OPTION_SETS = {
    "default": [],
    "+xa": ["+xa"],
    "-fe .dcm": ["-fe", ".dcm"],
    "-F": ["-F"],
    "+uf": ["+uf"],
    "-tn": ["-tn"],
}
SENDERS = ["dcmtk", "pynetdicom"]
WRITTEN = {SUCCESS, "0xA900", "0xC000"}  # statuses after which storescp keeps a file (§2.9)
# A few files: explicit/implicit/big endian, deflated, meta UID != data set UID (rtplan), RLE
# (storescu cannot send it by default) and a class storescp 3.6.7 refuses (liver_1frame).
SELFCHECK_FILES = ["CT_small.dcm", "MR_small_bigendian.dcm", "MR_small_expb.dcm",
                   "image_dfl.dcm", "rtplan.dcm", "SC_rgb_rle.dcm", "liver_1frame.dcm"]


@pytest.fixture(scope="session")
def corpus() -> list[InputFile]:
    """pydicom's Part-10 test files (files without a usable meta header are left out)."""
    files = pydicom_corpus()
    assert len(files) > 100, "pydicom's test data looks incomplete"
    return files


def _check_naming_counts(cmp: Comparison) -> list[str]:
    """+uf / -tn: every written object is its own file, on both sides (spec §4.2, §4.3)."""
    if cmp.scheme.mode == "default":
        return []
    problems = []
    refused = {id(r.input) for r in cmp.inputs if r.expected == BROKEN_DATA_SET_REFUSED}
    for side, statuses in (("reference", cmp.reference.statuses),
                           ("candidate", cmp.candidate.statuses)):
        sent = zip((f for step in cmp.plan for f in step), (s for assoc in statuses for s in assoc))
        written = sum(s in WRITTEN and id(f) not in refused for f, s in sent)
        files = sum(1 for p in cmp.pairs if getattr(p, side) is not None)
        if files != written:
            problems.append(f"{side}: {written} objects written but {files} files")
    return problems


@pytest.mark.filterwarnings(CORPUS_IMPLICIT_VR_AS_EXPLICIT)  # +xa accepts its JPEG context
@pytest.mark.parametrize("sender", SENDERS)
@pytest.mark.parametrize("options", OPTION_SETS.values(), ids=OPTION_SETS.keys())
def test_fidelity(options: list[str], sender: str, corpus: list[InputFile], tmp_path: Path,
                  record_property) -> None:
    """Same statuses, same relative paths (by pattern for +uf/-tn), same meta, same data sets."""
    cmp = run_side_by_side(options, one_per_file(corpus), sender, tmp_path)
    stored = sum(is_success(r.reference_status) for r in cmp.inputs)
    record_property("pydicom_files", len(corpus))
    record_property("stored_by_reference", stored)
    print(f"{options} {sender}: {len(corpus)} pydicom files sent, {stored} stored by DCMTK,"
          f" {len(cmp.pairs)} output files compared")
    assert stored > 50, f"too few files stored to mean anything:\n{cmp.report()}"
    assert cmp.ok, cmp.report()
    assert not _check_naming_counts(cmp), _check_naming_counts(cmp)


@pytest.mark.parametrize("options", [[], ["+uf"], ["-tn"], ["-F"]],
                         ids=["default", "+uf", "-tn", "-F"])
def test_sidebyside_selfcheck(options: list[str], corpus: list[InputFile],
                              tmp_path: Path) -> None:
    """DCMTK vs DCMTK matches, and every kind of planted difference is reported."""
    files = [f for f in corpus if f.path.name in SELFCHECK_FILES]
    assert len(files) == len(SELFCHECK_FILES)
    cmp = run_side_by_side(options, one_per_file(files), "dcmtk", tmp_path, candidate="dcmtk")
    assert cmp.ok, cmp.report()
    assert sum(is_success(r.candidate_status) for r in cmp.inputs) >= 4, cmp.report()
    paired = [p for p in cmp.pairs if p.reference and p.candidate]
    assert len(paired) >= 4, cmp.report()

    victim = cmp.candidate.server.outdir / paired[0].candidate.relpath
    data = bytearray(victim.read_bytes())
    data[-1] ^= 0x01  # one bit of the last data set byte
    victim.write_bytes(bytes(data))
    cmp.recompare()
    assert not cmp.ok, "an altered output byte went unnoticed"
    assert paired[0].candidate.relpath in cmp.report()
    assert "bytes differ" in cmp.report()

    victim.unlink()
    cmp.recompare()
    assert "only the reference wrote" in cmp.report()

    cmp.candidate.statuses[1][0] = "0xA700"
    cmp.recompare()
    assert "0xA700" in cmp.report()


@pytest.mark.parametrize("sender", SENDERS)
def test_sidebyside_multi_file_associations(sender: str, corpus: list[InputFile],
                                            tmp_path: Path) -> None:
    """Several files per association, in order, into study folders: DCMTK vs DCMTK.

    ``-su``, not ``-ss``: under ``-ss`` DCMTK puts two studies that begin in the same
    millisecond into one folder, so two DCMTK runs of the same input differ by timing.
    """
    files = [f for f in corpus if f.path.name in SELFCHECK_FILES]
    plan = [files[:3], files[3:]]
    cmp = run_side_by_side(["-su", "P"], plan, sender, tmp_path, candidate="dcmtk")
    assert cmp.ok, cmp.report()
    assert [len(a) for a in cmp.reference.statuses] == [3, len(files) - 3]
    assert any(p.reference and "/" in p.reference.relpath for p in cmp.pairs), cmp.report()


def test_sidebyside_meta_difference_is_reported(corpus: list[InputFile], tmp_path: Path) -> None:
    """A changed meta element (here the Source AE title) is a mismatch, not ignored."""
    files = [f for f in corpus if f.path.name == "CT_small.dcm"]
    cmp = run_side_by_side([], one_per_file(files), "dcmtk", tmp_path, candidate="dcmtk")
    assert cmp.ok, cmp.report()
    out = cmp.candidate.server.outdir / cmp.pairs[0].candidate.relpath
    out.write_bytes(out.read_bytes().replace(b"STORESCU", b"STORESCX", 1))
    cmp.recompare()
    assert "(0002,0016)" in cmp.report(), cmp.report()


def test_version_differences_from_tsv() -> None:
    """The 3.6.7 → 3.6.9 rules come from the TSV and vanish when both versions are equal."""
    diff = VersionDifferences.load("3.6.7", "3.6.9")
    protocol_approval = "1.2.840.10008.5.1.4.1.1.200.3"
    photoacoustic = "1.2.840.10008.5.1.4.1.1.6.3"
    ct = "1.2.840.10008.5.1.4.1.1.2"
    assert diff.candidate_codes("PA", protocol_approval) == {"PAp"}
    assert diff.candidate_codes("UNKNOWN", photoacoustic) == {"PA"}
    assert diff.candidate_codes("CT", ct) == {"CT"}
    assert diff.only_candidate_accepts(photoacoustic, "1.2.840.10008.1.2.1", [], "dcmtk")
    assert not diff.only_candidate_accepts(ct, "1.2.840.10008.1.2.1", [], "dcmtk")
    assert diff.only_candidate_accepts(ct, "1.2.840.10008.1.2.4.201", ["+xa"], "pynetdicom")
    assert len(diff.accepted["3.6.9"]) == 199 and len(diff.accepted["3.6.7"]) == 186
    same = VersionDifferences.load("3.6.7", "3.6.7")
    assert same.candidate_codes("PA", protocol_approval) == {"PA"}
    assert not same.only_candidate_accepts(photoacoustic, "1.2.840.10008.1.2.1", [], "dcmtk")


def test_naming_scheme_patterns() -> None:
    """Names are parsed by the spec's patterns; a wrong name does not fit."""
    assert NamingScheme.from_options(["+uf", "-fe", ".dcm"]).parse_file(
        "CT.X.1.2.276.0.7230010.3.1.4.8323328.8089.1795609953.280964.dcm")["code"] == "CT"
    time_names = NamingScheme.from_options(["-tn"])
    assert time_names.parse_file("20240305102030000_0001.SRc")["serial"] == "0001"
    assert time_names.parse_file("20241305102030000.CT") is None  # month 13
    assert time_names.parse_file("CT.1.2.3") is None
    assert NamingScheme.from_options([]).parse_file("CT.1.2.3.dcm")["uid"] == "1.2.3.dcm"
    assert NamingScheme.from_options(["-fe", ".dcm"]).parse_file("CT.1.2.3") is None


def test_parse_storescu_log() -> None:
    """Statuses come from -d blocks; files never reached share the association's fate."""
    log = "\n".join([
        "I: Sending file: /a", "D: DIMSE Status                  : 0xa900: Error",
        "I: Sending file: /b", "E: No presentation context for: (SG) 1.2",
        "I: Sending file: /c", "D: DIMSE Status                  : 0x0000: Success",
    ])
    assert parse_storescu_log(log, ["/a", "/b", "/c"]) == ["0xA900", "no-context", SUCCESS]
    rejected = "F: Association Rejected:\nF: Result: Rejected Permanent"
    assert parse_storescu_log(rejected, ["/a", "/b"]) == ["assoc-rejected"] * 2


def test_servers_accept_connections(scp_servers) -> None:
    """The fixture starts DCMTK storescp on an ephemeral port and it accepts associations."""
    from sidebyside import send_dcmtk

    server = scp_servers("dcmtk", ["-v"], name="probe")
    files = [f for f in pydicom_corpus() if f.path.name == "CT_small.dcm"]
    assert send_dcmtk(server.port, files, server.workdir / "send.log") == [SUCCESS]
    assert (server.outdir / f"CT.{files[0].meta_uid}").is_file()
    assert "Received Store Request" in server.stderr_text()
