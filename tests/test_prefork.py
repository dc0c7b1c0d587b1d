"""``--fork``: pre-forked receivers sharing one port (receiver.prefork).

Four DCMTK senders at once against ``spoolscp --fork`` and ``storescp --fork``: same
statuses, same output tree. The supervisor stops its children on SIGTERM and takes
them with it when it is SIGKILLed, so no process is left serving the port.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from pydicom.data import get_testdata_file

from sidebyside import (
    SUCCESS,
    part10_inputs,
    read_tree,
    scp_server,
    send_dcmtk,
    wait_for,
    wait_output_complete,
)

# Eight different instances (one output file each): explicit and implicit VR, deflated.
NAMES = ["CT_small.dcm", "MR_small.dcm", "rtplan.dcm", "waveform_ecg.dcm", "image_dfl.dcm", "rtdose.dcm",
         "rtstruct.dcm", "examples_palette.dcm"]


def send_concurrently(port: int, groups: list, log: Path) -> list[list[str]]:
    statuses: list[list[str]] = [[] for _ in groups]

    def send(i: int) -> None:
        statuses[i] = send_dcmtk(port, groups[i], log.with_suffix(f".{i}.log"))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(groups))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return statuses


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_fork_serves_four_concurrent_senders_like_dcmtk_fork(tmp_path: Path) -> None:
    files = part10_inputs([get_testdata_file(n) for n in NAMES])
    groups = [files[i::4] for i in range(4)]
    with scp_server("dcmtk", ["--fork"], tmp_path / "dcmtk") as reference:
        expected = send_concurrently(reference.port, groups, tmp_path / "ref")
    assert expected == [[SUCCESS] * len(g) for g in groups]
    with scp_server("spoolscp", ["--fork"], tmp_path / "spool") as server:
        assert send_concurrently(server.port, groups, tmp_path / "cand") == expected
        done = wait_output_complete(server, timeout=120)
        assert done["done"] >= len(files) and done["failed"] == 0
    assert server.exit_code == 0 and server.stop_problems == []
    ours = {f.relpath: f.digest for f in read_tree(server.outdir)}
    assert ours == {f.relpath: f.digest for f in read_tree(reference.outdir)} and len(ours) == len(files)


def test_a_killed_supervisor_takes_its_receivers_with_it(tmp_path: Path) -> None:
    files = part10_inputs([get_testdata_file(NAMES[0])])
    with scp_server("spoolscp", ["--fork"], tmp_path / "spool", receiver_only=True) as server:
        assert send_dcmtk(server.port, files, tmp_path / "send.log") == [SUCCESS]
        children = [int(p) for p in Path(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children")
                    .read_text().split()]
        assert len(children) >= 2
        os.kill(server.proc.pid, signal.SIGKILL)
        server.proc.wait(10)
        wait_for(lambda: not group_alive(server.proc.pid), "the receivers to die with their supervisor", 10)
    assert server.stop_problems == []
