"""Beyond DCMTK: studies sent over concurrent associations stay apart and end once each.

DCMTK tracks one open study per process and forbids ``--fork`` with end-of-study options.
spoolscp keeps one open study per sender side by side (README "Differences"): here four
associations send four studies at the same time, strictly interleaved, and every study
ends by ``-tos`` once its sender has gone quiet.
"""

from __future__ import annotations

import threading

import pydicom

from sidebyside import (
    StudySpec,
    exec_log_lines,
    send_pynetdicom,
    synthetic_study,
    wait_exec_lines,
    wait_output_complete,
)

UID = "1.2.826.0.1.3680043.9.7003."
EOS = 'echo "#p: $(ls #p | tr "\\n" " ")" >> exec.log'
PER_STUDY = 4


def test_four_concurrent_associations_four_complete_studies(scp_servers, tmp_path):
    server = scp_servers("spoolscp", ["-ss", "PRE", "-tos", "2", "-rns", "-xcs", EOS])
    studies = [synthetic_study(tmp_path / str(n), StudySpec(f"{UID}{n}", f"P{n}", count=PER_STUDY))
               for n in range(4)]
    turn = threading.Barrier(4)  # object i of every study goes out before object i+1 of any
    statuses: dict[int, list[str]] = {}

    def sender(n: int) -> None:
        statuses[n] = send_pynetdicom(server.port, studies[n], tmp_path / f"send{n}.log",
                                      f"SCU{n}", after_each=lambda i: turn.wait(30))

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == {n: ["0x0000"] * PER_STUDY for n in range(4)}
    wait_exec_lines(server, 4)
    stats = wait_output_complete(server, timeout=60)
    assert stats["failed"] == 0, stats

    renamed = ["CT000001", "MR000002", "CT000003", "MR000004"]
    folders = sorted(server.outdir.iterdir())
    assert len(folders) == 4
    found_studies = set()
    for folder in folders:
        assert sorted(p.name for p in folder.iterdir()) == sorted(renamed)
        uids = {str(pydicom.dcmread(p, stop_before_pixels=True).StudyInstanceUID) for p in folder.iterdir()}
        assert len(uids) == 1, f"{folder.name} mixes studies {uids}"
        found_studies |= uids
    assert found_studies == {f"{UID}{n}" for n in range(4)}
    ends = exec_log_lines(server)
    # each end ran once, after its study's last object was written and renamed
    assert sorted(e.split(":")[0] for e in ends) == sorted(f"out/{f.name}" for f in folders), ends
    assert all(e.endswith(": " + " ".join(sorted(renamed)) + " ") for e in ends), ends
