"""Smoke test of ``scripts/bench/compare`` on tiny corpora: it runs both receivers, their
runs interleaved, and prints a well-formed report with ratios paired run by run; unit
tests of the pairing, the rotation and the process-tree sampling. Timing is never
asserted (it belongs in the benchmark)."""

from __future__ import annotations

import json
import os
import statistics
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.filebase import DicomBytesIO

REPO = Path(__file__).resolve().parent.parent
COMPARE = REPO / "scripts" / "bench" / "compare"
BREAKDOWN = REPO / "scripts" / "bench" / "breakdown"
sys.path.insert(0, str(REPO / "scripts" / "bench"))
import breakdown  # noqa: E402
import compare  # noqa: E402
import instructions  # noqa: E402
import procstats  # noqa: E402
import rawclient  # noqa: E402
import trash  # noqa: E402

SUMMARY_KEYS = {"ack_obj_s", "ack_mb_s", "e2e_obj_s", "e2e_mb_s", "cpu_s", "worker_cpu_s", "peak_rss_mb"}


def test_compare_prints_a_well_formed_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(COMPARE), "--tiny", "--runs", "2", "--corpus", "2KB", "--assocs", "1", "--receiver", "dcmtk",
         "--receiver", "spoolscp", "--setup-seconds", "0.3", "--cache", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    cases = report["cases"]
    assert [(c["corpus"], c["assocs"], c["receiver"]) for c in cases] == [("2KB", 1, "dcmtk"), ("2KB", 1, "spoolscp")]
    for case in cases:
        assert len(case["runs"]) == 2 and set(case["summary"]) == SUMMARY_KEYS
        assert case["summary"]["ack_obj_s"]["median"] > 0 and case["summary"]["peak_rss_mb"] > 0
    assert cases[0]["ratio"] is None and set(cases[1]["ratio"]) == {"vs", "ack", "e2e"}
    assert cases[0]["paired_ratio"] is None and cases[1]["paired_ratio"]["vs"] == "dcmtk"
    for phase in ("ack", "e2e"):
        pairs = [d[f"{phase}_s"] / s[f"{phase}_s"] for s, d in zip(cases[1]["runs"], cases[0]["runs"])]
        assert cases[1]["paired_ratio"][phase] == pytest.approx(
            {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)})
    starts = sorted((run["t_start"], case["receiver"]) for case in cases for run in case["runs"])
    assert [name for _, name in starts] == ["dcmtk", "spoolscp", "spoolscp", "dcmtk"]  # interleaved, rotated
    setup = report["setup"]
    assert [(r["receiver"], r["kind"]) for r in setup] == [
        ("dcmtk", "echo"), ("dcmtk", "store"), ("spoolscp", "echo"), ("spoolscp", "store")]
    assert all(len(r["rates"]) == 2 and r["summary"]["median"] > 0 for r in setup)
    for mine, ref in ((setup[2], setup[0]), (setup[3], setup[1])):
        pairs = [a / b for a, b in zip(mine["rates"], ref["rates"])]
        assert mine["paired_ratio"] == pytest.approx(
            {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs)})
    assert setup[0]["paired_ratio"] is None and setup[1]["paired_ratio"] is None
    lines = report["table"].splitlines()
    assert lines[0].split()[:3] == ["corpus", "assocs", "receiver"] and "ack ratio" in lines[0]
    assert [line.split()[:3] for line in lines[1:3]] == [["2KB", "1", "dcmtk"], ["2KB", "1", "spoolscp"]]
    assert compare._fmt(cases[1]["paired_ratio"]["ack"], 2) in lines[2]
    assert "load_start" in report["meta"] and "load_end" in report["meta"]


def run(ack_s: float, e2e_s: float) -> compare.Run:
    return compare.Run(ack_s, e2e_s, cpu_s=0.0, worker_cpu_s=None, peak_rss=0, t_start=0.0)


def case(receiver: str, assocs: int, times: list[tuple[float, float]]) -> compare.Case:
    return compare.Case("2KB", 10, 2_000_000, assocs, receiver, [run(a, e) for a, e in times])


def test_a_discarded_output_keeps_its_inodes_and_frees_its_bytes(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    for name in ("a", "sub/b"):
        (out / name).write_bytes(b"x" * 5000)
    inodes = {name: (out / name).stat().st_ino for name in ("a", "sub/b")}
    bin_ = trash.Trash(tmp_path / "trash", tmp_path / "cache")
    bin_.discard(out)
    assert not out.exists() and bin_.count == 1
    for name, inode in inodes.items():
        kept = (tmp_path / "trash" / "1" / name).stat()
        assert (kept.st_ino, kept.st_size) == (inode, 0)


def test_the_trash_is_deleted_only_when_the_disk_is_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    bin_ = trash.Trash(tmp_path / "trash", tmp_path / "cache")
    bin_.discard(out)
    slept: list[float] = []
    monkeypatch.setattr(trash.time, "sleep", slept.append)
    free = trash.shutil.disk_usage(tmp_path).free
    bin_.make_room(free - trash.DISK_RESERVE - 1)
    assert (tmp_path / "trash" / "1").is_dir() and not slept
    bin_.make_room(free - trash.DISK_RESERVE + (1 << 30))
    assert not (tmp_path / "trash").exists() and bin_.count == 0
    assert (tmp_path / "cache" / trash.STAMP).exists() and slept and slept[0] > trash.QUIET_S - 5


def test_a_bench_waits_out_the_last_ones_deletes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(trash.time, "sleep", slept.append)
    trash.wait_quiet(tmp_path)  # no bench ran here yet
    trash.deleted_now(tmp_path)
    trash.wait_quiet(tmp_path)
    stamp = tmp_path / trash.STAMP
    old = time.time() - trash.QUIET_S - 1
    os.utime(stamp, (old, old))
    trash.wait_quiet(tmp_path)
    assert len(slept) == 1 and trash.QUIET_S - 5 < slept[0] <= trash.QUIET_S


def _sent(request: bytes) -> tuple[str, str]:
    """(Affected SOP Instance UID of the command, SOP Instance UID of the data set)."""
    command_len = struct.unpack_from(">I", request, 2)[0]
    command, data = request[12:6 + command_len], request[6 + command_len + 12:]
    cmd = dcmread(DicomBytesIO(command), force=True)
    ds = dcmread(DicomBytesIO(data), force=True)
    return cmd.AffectedSOPInstanceUID, ds.SOPInstanceUID


def test_the_set_up_store_sends_a_new_instance_every_association() -> None:
    path = Path(get_testdata_file("CT_small.dcm"))
    same = rawclient.store_round(path)
    assert same.next_request() == same.next_request()
    rnd = rawclient.store_round(path, unique=True)
    sent = [_sent(rnd.next_request()) for _ in range(3)]
    original = dcmread(path).SOPInstanceUID
    assert [cmd for cmd, _ in sent] == [ds for _, ds in sent]
    assert [cmd for cmd, _ in sent] == [f"{original}.1000000{i}" for i in range(3)]
    assert len({len(rnd.next_request()), len(rnd.request)}) == 1


def test_paired_ratio_divides_run_i_by_the_reference_run_i() -> None:
    dcmtk = case("dcmtk", 1, [(1, 1), (3, 3), (2, 2)])
    mine = case("spoolscp", 1, [(2, 4), (2, 4), (8, 4)])
    cases = [dcmtk, mine]
    # MB/s over DCMTK's, round by round: ack 0.5, 1.5, 0.25; e2e 0.25, 0.75, 0.5
    assert compare.paired_ratios(mine, cases) == {"vs": "dcmtk", "ack": {"median": 0.5, "min": 0.25, "max": 1.5},
                                                  "e2e": {"median": 0.5, "min": 0.25, "max": 0.75}}
    assert compare.ratios(mine, cases)["ack"] == pytest.approx(1.0)  # the medians alone: both 1 MB/s
    assert compare.paired_ratios(dcmtk, cases) is None


def test_paired_ratio_for_concurrent_associations_is_against_dcmtk_fork() -> None:
    plain, fork = case("dcmtk", 4, [(1, 1), (1, 1)]), case("dcmtk --fork", 4, [(2, 2), (4, 4)])
    mine = case("spoolscp --fork", 4, [(1, 1), (2, 2)])
    single = case("spoolscp", 1, [(1, 1), (1, 1)])
    cases = [plain, fork, mine, single]
    assert compare.paired_ratios(mine, cases)["vs"] == "dcmtk --fork"
    assert compare.paired_ratios(mine, cases)["ack"] == {"median": 2.0, "min": 2.0, "max": 2.0}
    assert compare.paired_ratios(plain, cases)["vs"] == "dcmtk --fork"
    assert compare.paired_ratios(single, cases) is None  # no DCMTK case with one association


def test_paired_needs_as_many_runs_on_both_sides() -> None:
    with pytest.raises(ValueError):
        compare.paired([1.0, 2.0], [1.0])


def test_setup_ratio_pairs_rounds_of_the_same_kind() -> None:
    rates = [compare.SetupRate("dcmtk", "echo", [100, 400]), compare.SetupRate("dcmtk", "store", [50, 50]),
             compare.SetupRate("spoolscp", "echo", [50, 100]), compare.SetupRate("spoolscp", "store", [10, 20])]
    assert compare.setup_ratio(rates[2], rates) == {"median": 0.375, "min": 0.25, "max": 0.5}
    assert compare.setup_ratio(rates[3], rates) == {"median": pytest.approx(0.3), "min": 0.2, "max": 0.4}
    assert compare.setup_ratio(rates[0], rates) is None


def test_set_up_is_measured_for_dcmtk_spoolscp_and_spoolscp_fork_when_chosen() -> None:
    everyone = compare.parse_args([])
    assert compare.setup_receivers(everyone) == [compare.DCMTK, compare.SPOOLSCP, compare.SPOOLSCP_FORK]
    some = compare.parse_args(["--receiver", "spoolscp-fork", "--receiver", "dcmtk-fork"])
    assert compare.setup_receivers(some) == [compare.SPOOLSCP_FORK]  # DCMTK's --fork forks per association


def test_rotations_start_each_round_one_receiver_later() -> None:
    assert compare.rotations(["a", "b", "c"], 4) == [["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert compare.rotations(["a"], 2) == [["a"], ["a"]]


def test_a_process_tree_holds_its_children_and_not_its_siblings() -> None:
    """Every server is up during each run: sampling one (RSS and CPU sum over ``members``)
    must count its forked children and no other server's processes."""
    measured = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
    sibling = subprocess.Popen(["sleep", "30"])
    try:
        for _ in range(100):  # until sh has forked its child
            pids = [pid for pid, _ in procstats.members(measured.pid)]
            if len(pids) == 2:
                break
            time.sleep(0.05)
        assert len(pids) == 2 and pids[0] == measured.pid and sibling.pid not in pids
        assert [pid for pid, _ in procstats.members(sibling.pid)] == [sibling.pid]
    finally:
        for proc in (measured, sibling):
            proc.kill()
            proc.wait()


def test_instruction_counts_are_read_and_taken_per_association() -> None:
    """``scripts/bench/instructions``: the total of a callgrind file, and the slope between a
    short and a long run (start-up cancels out)."""
    out = "# callgrind format\nevents: Ir\nsummary: 2324721157\nfn=main\n0 5\ntotals: 2324721157\n"
    assert instructions.total_instructions(out) == 2324721157
    assert instructions.total_instructions("events: Ir\ntotals: 17\n") == 17
    with pytest.raises(ValueError):
        instructions.total_instructions("events: Ir\n")
    assert instructions.per_association((100, 2_324_721_157), (500, 3_592_543_554)) == pytest.approx(3_169_555.6, rel=1e-6)
    with pytest.raises(ValueError):
        instructions.per_association((400, 10), (100, 5))


def run_breakdown(tmp_path: Path, *args: str) -> dict:
    result = subprocess.run([str(BREAKDOWN), "--tiny", "--cache", str(tmp_path), "--json", *args],
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_breakdown_shows_the_set_up_store_fsyncs_and_whose_python_time_it_is(tmp_path: Path) -> None:
    """All three passes on a real receiver: 50 associations of one small C-STORE each."""
    report = run_breakdown(tmp_path, "--setup", "store")
    assert report["workload"] == "set-up store x50" and report["unit"] == "association"
    assert report["rate"]["per_s"] > 0 and report["rate"]["cpu_user_ms"] > 0
    calls = report["syscalls"]
    assert calls.get("fdatasync", 0) + calls.get("fsync", 0) >= 1  # each store is durable before its answer
    assert calls["accept4"] >= 1 and calls["sendto"] >= 3  # A-ASSOCIATE-AC, C-STORE-RSP, A-RELEASE-RP
    python = report["python"]
    assert python["samples"] > 0 and sum(python["layers"].values()) == pytest.approx(1, abs=0.01)
    assert {"pynetdicom", "receiver"} <= set(python["layers"])
    assert all(share > 0 for _, share in python["charged"])


def test_breakdown_of_a_corpus_counts_per_object(tmp_path: Path) -> None:
    report = run_breakdown(tmp_path, "--corpus", "2KB", "--pass", "rate")
    assert report["workload"] == "2KB x12, one association" and report["unit"] == "object"
    assert set(report) == {"workload", "unit", "rate"} and report["rate"]["per_s"] > 0


def test_python_time_is_charged_to_the_innermost_frame_outside_the_stdlib() -> None:
    raw = ("thread (7): Association-1;run (threading.py:9);SCP (pynetdicom/service_class.py:1550);"
           "insert (spoolscp/jobs.py:343);dumps (json/__init__.py:231) 6\n"
           "run (threading.py:9);SCP (pynetdicom/service_class.py:1560) 3\n"
           "wait (threading.py:320) 1\n"
           "a line py-spy did not write\n")
    found = breakdown.python_time(raw)
    assert found["samples"] == 10
    assert found["layers"] == {"spoolscp": 0.6, "pynetdicom": 0.3, "stdlib": 0.1}
    assert found["charged"] == [["insert spoolscp/jobs.py", 0.6], ["SCP pynetdicom/service_class.py", 0.3],
                                ["wait threading.py", 0.1]]
    assert breakdown.python_time("") == {"samples": 0, "layers": {}, "charged": []}


def test_syscall_counts_read_strace_summaries_with_and_without_errors() -> None:
    summary = ("% time     seconds  usecs/call     calls    errors syscall\n"
               "------ ----------- ----------- --------- --------- ----------------\n"
               " 42.58    3.519895       17086       206       104 futex\n"
               "  6.23    0.515347          11     44625           pwrite64\n"
               "  0.30    0.024697          12      2000      2000 unlink\n"
               "------ ----------- ----------- --------- --------- ----------------\n"
               "100.00    8.266000          90     91742      4208 total\n")
    assert breakdown.syscall_counts(summary) == {"futex": 206, "pwrite64": 44625, "unlink": 2000}
