"""Smoke test of ``scripts/bench/compare`` on tiny corpora: it runs both receivers and
prints a well-formed report. Timing is never asserted (it belongs in the benchmark)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
COMPARE = REPO / "scripts" / "bench" / "compare"
SUMMARY_KEYS = {"ack_obj_s", "ack_mb_s", "e2e_obj_s", "e2e_mb_s", "cpu_s", "worker_cpu_s", "peak_rss_mb"}


def test_compare_prints_a_well_formed_report(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(COMPARE), "--tiny", "--corpus", "2KB", "--assocs", "1", "--receiver", "dcmtk",
         "--receiver", "spoolscp", "--setup-seconds", "0.3", "--cache", str(tmp_path), "--json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert [(c["corpus"], c["assocs"], c["receiver"]) for c in report["cases"]] == [
        ("2KB", 1, "dcmtk"), ("2KB", 1, "spoolscp")]
    for case in report["cases"]:
        assert len(case["runs"]) == 1 and set(case["summary"]) == SUMMARY_KEYS
        assert case["summary"]["ack_obj_s"]["median"] > 0 and case["summary"]["peak_rss_mb"] > 0
    assert report["cases"][0]["ratio"] is None and set(report["cases"][1]["ratio"]) == {"vs", "ack", "e2e"}
    assert [(r["receiver"], r["kind"]) for r in report["setup"]] == [
        ("dcmtk", "echo"), ("dcmtk", "store"), ("spoolscp", "echo"), ("spoolscp", "store")]
    assert all(r["summary"]["median"] > 0 for r in report["setup"])
    lines = report["table"].splitlines()
    assert lines[0].split()[:3] == ["corpus", "assocs", "receiver"]
    assert [line.split()[:3] for line in lines[1:3]] == [["2KB", "1", "dcmtk"], ["2KB", "1", "spoolscp"]]
    assert "load_start" in report["meta"] and "load_end" in report["meta"]
