"""Hostile received values never leave ``-od`` and never run a command (spec §13.5).

Study and SOP Instance UIDs with ``/``, ``..``, ``\\``, shell syntax; ``-su ""`` with a
Study UID of ``..``; patient names with shell metacharacters under ``-sp``; calling AE
titles with backquotes, ``$()``, quotes, ``;`` and a newline. The commands use every
placeholder *unquoted*, the most exposed way to write them. Every injection tries to
create a canary file, which must not exist anywhere afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pynetdicom import _config

from sidebyside import (
    StudySpec,
    exec_log_lines,
    send_pynetdicom,
    synthetic_studies,
    wait_output_complete,
)

CANARY = "canary"
INJECT = f"touch {CANARY}"
XCR = "echo REC #p #f #a #c #r >> exec.log"
XCS = "echo EOS #p #a #c #r >> exec.log"  # an unquoted #f would comment out the rest (§8)
HOSTILE_AES = [f"`{INJECT}`", f"$({INJECT})", f'";{INJECT};"', f"';{INJECT};'", f"A\n{INJECT}"]


@pytest.fixture
def permissive_sender(monkeypatch):
    """Let pynetdicom send AE titles and UIDs that it would refuse to encode."""
    monkeypatch.setitem(_config.VALIDATORS, "AE", lambda value: (True, ""))
    monkeypatch.setitem(_config.VALIDATORS, "UI", lambda value: (True, ""))


def assert_contained(workdir: Path, root: Path) -> None:
    """No canary anywhere; outside ``out/`` only the server's own files."""
    assert not [p for p in root.rglob(CANARY)], "an injected command ran"
    own = {"out", "state", "stdout.log", "stderr.log", "spoolscp.toml", "exec.log"}
    assert {p.name for p in workdir.iterdir()} <= own
    for path in (workdir / "out").rglob("*"):
        assert path.resolve().is_relative_to((workdir / "out").resolve())


# pynetdicom builds its C-STORE request UIDs with pydicom, which warns about each hostile one
@pytest.mark.filterwarnings("ignore:Invalid value for VR UI:UserWarning")
def test_hostile_uids_and_ae_titles_with_su_empty_prefix(scp_servers, permissive_sender, tmp_path):
    server = scp_servers("spoolscp", ["-su", "", "-rns", "-xcr", XCR, "-xcs", XCS, "-xs"])
    specs = [
        StudySpec("..", "A"),  # would be <od>/.. in DCMTK 3.6.9
        StudySpec("..\\1.2.3", "A", instances=("1.2.3.7.1", "1.2.3.7.2")),  # first value ".."
        StudySpec("../../escape", "A", instances=("../../../x1", f"1.2/../../x2;{INJECT}")),
        StudySpec(f"$({INJECT})", "A", instances=(f"`{INJECT}`", f"1.2.3..x3 $({INJECT})")),
        StudySpec("1.2.3.4", "A", count=1),  # sent with a newline in the AE title: refused
        StudySpec("1.2.3.5", "A", count=1),  # a plain sender: ends the study before it
    ]
    studies = synthetic_studies(tmp_path / "in", specs)
    statuses = [send_pynetdicom(server.port, files, tmp_path / "send.log", ae)
                for files, ae in zip(studies, [*HOSTILE_AES, "NORMAL"], strict=True)]
    wait_output_complete(server, timeout=60)
    assert statuses[:2] == [["0xC000"] * 2] * 2  # Study UID "..": refused, nothing written
    # a UID with a space differs from the request once normalised: 0xA900, still stored
    assert all(s in ("0x0000", "0xA900") for s in statuses[2] + statuses[3]), statuses
    # the A-ASSOCIATE-RQ with a newline in the calling AE title is refused before any store
    assert statuses[4] != ["0x0000"] and statuses[5] == ["0x0000"], statuses
    assert_contained(server.workdir, tmp_path)
    folders = sorted(p.name for p in server.outdir.iterdir())
    assert folders == [".._.._escape", "1.2.3.5", "__touchcanary_"]  # the UID's space is dropped
    for ended in (".._.._escape", "__touchcanary_"):
        assert sorted(p.name for p in (server.outdir / ended).iterdir()) == ["CT000001", "MR000002"]
    lines = exec_log_lines(server)
    assert len(lines) == 5 + 2, lines  # -xcr per stored object, -xcs per ended study
    assert not [line for line in lines if "`" in line or "$(" in line or ";" in line], lines


def test_hostile_patient_names_with_sp(scp_servers, permissive_sender, tmp_path):
    server = scp_servers("spoolscp", ["-sp", "-xcr", XCR, "-xcs", XCS])
    names = [f"$({INJECT})", f"`{INJECT}`", f"a;{INJECT};'\"", "../../x^y"]
    studies = synthetic_studies(tmp_path / "in", [StudySpec(f"1.2.9.{n}", name, count=1)
                                                  for n, name in enumerate(names)])
    statuses = [send_pynetdicom(server.port, files, tmp_path / "send.log", HOSTILE_AES[n % 4])
                for n, files in enumerate(studies)]
    assert statuses == [["0x0000"]] * 4
    wait_output_complete(server, timeout=60)
    assert_contained(server.workdir, tmp_path)
    folders = sorted(p.name.rsplit("_", 2)[0] for p in server.outdir.iterdir())
    assert folders == ["______x_y", "__touch_canary_", "_touch_canary_", "a_touch_canary___"]
    assert len(exec_log_lines(server)) == 4 + 3
