"""DCMTK ``storescp`` against spoolscp in the same run: throughput, memory, CPU, set-up rate.

Run through ``scripts/bench/compare`` (it uses the project's .venv). For each corpus
(2,000 x 2 KB, 500 x 512 KB CT, 8 x 64 MB multi-frame) and each sending mode (one
``storescu`` association; four concurrent ones) every receiver gets the same files
from DCMTK's ``/usr/bin/storescu``:

* **ack**: wall time from starting the senders until the last one has its last
  response and exits (objects/s and MB/s);
* **e2e**: until the last output file is durable on disk. DCMTK writes the file before
  it answers (without fsync), so its e2e is its ack time; spoolscp's workers write it
  later, so ``spoolscp queue stats --json`` is polled until every object is done;
* peak RSS (summed over the receiver's process tree, sampled from /proc) and CPU
  seconds of the receiver (spoolscp's workers are reported separately).

Medians of ``--runs`` runs with min and max, the ratio to DCMTK (``--fork`` for four
associations), the association set-up rate measured with a raw-socket client
(``rawclient``: A-ASSOCIATE, C-ECHO or one small C-STORE, A-RELEASE), and the machine
load (``/proc/loadavg``) before and after every case, since other work may share it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import corpus
import procstats
import rawclient

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import sidebyside as sbs  # noqa: E402  (the shared harness: ports, processes, queue stats)

MB = 1e6
SEND_TIMEOUT = 900


@dataclass(frozen=True)
class Receiver:
    """A receiver set-up: DCMTK storescp (optionally ``--fork``) or spoolscp."""

    name: str
    kind: str  # "dcmtk" | "spoolscp"
    options: tuple[str, ...] = ()


DCMTK = Receiver("dcmtk", "dcmtk")
DCMTK_FORK = Receiver("dcmtk --fork", "dcmtk", ("--fork",))
SPOOLSCP = Receiver("spoolscp", "spoolscp")
SPOOLSCP_FORK = Receiver("spoolscp --fork", "spoolscp", ("--fork",))
FORKING = (DCMTK_FORK, SPOOLSCP_FORK)  # run for concurrent associations only


@dataclass
class Run:
    ack_s: float
    e2e_s: float
    cpu_s: float
    worker_cpu_s: float | None
    peak_rss: int


@dataclass
class Case:
    corpus: str
    objects: int
    bytes: int
    assocs: int
    receiver: str
    runs: list[Run] = field(default_factory=list)
    load_before: str = ""
    load_after: str = ""


def loadavg() -> str:
    return Path("/proc/loadavg").read_text().strip()


@dataclass
class Server:
    """A started receiver: its main process, its workers (spoolscp) and its output folder."""

    receiver: Receiver
    port: int
    proc: subprocess.Popen
    outdir: Path
    config: Path | None = None
    workers: subprocess.Popen | None = None

    def objects_done(self) -> int:
        """Objects whose output is durable (spoolscp: done jobs of kind store)."""
        stats = sbs.spoolscp_queue_stats(self.config)
        if stats["pending"] + stats["running"] + stats["scheduled"]:
            return -1
        return stats["received"]


def _popen(argv: list[str], workdir: Path, log: str) -> subprocess.Popen:
    with (workdir / log).open("ab") as out:
        return subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                env=sbs.dcmtk_env(), start_new_session=True)


@contextmanager
def started(receiver: Receiver, workdir: Path) -> Iterator[Server]:
    """Start ``receiver`` on an ephemeral loopback port with ``-od out``; stop it after."""
    workdir.mkdir(parents=True, exist_ok=True)
    outdir = workdir / "out"
    outdir.mkdir(exist_ok=True)
    port = sbs.free_port()
    tail = [*receiver.options, "-od", "out", str(port)]
    with ExitStack() as stack:
        if receiver.kind == "dcmtk":
            server = Server(receiver, port, _popen([sbs.DCMTK_STORESCP, *tail], workdir, "receiver.log"), outdir)
        else:
            config = sbs.write_spoolscp_config(workdir)
            proc = _popen([sbs.SPOOLSCP, "receiver", "--config", str(config), *tail], workdir, "receiver.log")
            server = Server(receiver, port, proc, outdir, config)
            server.workers = _popen([sbs.SPOOLSCP, "worker", "--config", str(config)], workdir, "worker.log")
            stack.callback(sbs.stop_process, server.workers)
        stack.callback(sbs.stop_process, server.proc)
        sbs.wait_accepting(port, server.proc)
        yield server


def send(port: int, groups: list[list[Path]], workdir: Path) -> None:
    """One ``storescu`` per group, all at once; raise if any failed."""
    procs = []
    for i, files in enumerate(groups):
        argv = [sbs.DCMTK_STORESCU, "-aec", "ANY-SCP", sbs.HOST, str(port), *map(str, files)]
        procs.append(_popen(argv, workdir, f"storescu-{i}.log"))
    for p in procs:
        if p.wait(SEND_TIMEOUT) != 0:
            raise RuntimeError(f"storescu exited with {p.returncode}; see {workdir}/storescu-*.log")


def wait_durable(server: Server, expected: int, timeout: float) -> float:
    """Time at which every one of ``expected`` objects (cumulative) has its output durable."""
    if server.receiver.kind == "dcmtk":
        return time.perf_counter()
    deadline = time.monotonic() + timeout
    while server.objects_done() < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"spoolscp output incomplete after {timeout}s")
        time.sleep(0.05)
    return time.perf_counter()


def count_outputs(outdir: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(outdir))


def one_run(server: Server, files: list[Path], assocs: int, expected: int, workdir: Path) -> Run:
    """Send the corpus once; check that every object arrived in the output folder."""
    shutil.rmtree(server.outdir)
    server.outdir.mkdir()
    cpu0 = procstats.tree_cpu(server.proc.pid)
    wcpu0 = procstats.tree_cpu(server.workers.pid) if server.workers else 0.0
    with procstats.PeakRSS(server.proc.pid) as peak:
        t0 = time.perf_counter()
        send(server.port, corpus.split(files, assocs), workdir)
        t_ack = time.perf_counter()
        cpu = procstats.tree_cpu(server.proc.pid) - cpu0
    t_e2e = wait_durable(server, expected, timeout=600)
    found = count_outputs(server.outdir)
    if found != len(files):
        raise RuntimeError(f"{server.receiver.name}: {found} output files for {len(files)} objects")
    wcpu = procstats.tree_cpu(server.workers.pid) - wcpu0 if server.workers else None
    return Run(t_ack - t0, t_e2e - t0, cpu, wcpu, peak.bytes)


def run_case(receiver: Receiver, name: str, files: list[Path], assocs: int, runs: int, workdir: Path) -> Case:
    case = Case(name, len(files), corpus.total_bytes(files), assocs, receiver.name, load_before=loadavg())
    with started(receiver, workdir) as server:
        for i in range(runs):
            case.runs.append(one_run(server, files, assocs, len(files) * (i + 1), workdir))
    case.load_after = loadavg()
    return case


@dataclass
class SetupRate:
    receiver: str
    kind: str  # "echo" | "store"
    rates: list[float]


def setup_rates(receiver: Receiver, small: Path, runs: int, seconds: float, workdir: Path) -> list[SetupRate]:
    """Associations/s with one C-ECHO each, then with one small C-STORE each."""
    found = []
    with started(receiver, workdir) as server:
        for kind, rnd in (("echo", rawclient.echo_round()), ("store", rawclient.store_round(small))):
            rates = [rawclient.rate(server.port, rnd, seconds, 20000)[0] for _ in range(runs)]
            found.append(SetupRate(receiver.name, kind, rates))
    return found


# ------------------------------------------------------------------------------------------
# Summaries and the table


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def summary(case: Case) -> dict:
    """Per case: objects/s and MB/s to ack and to durable output, CPU, peak RSS."""
    return {
        "ack_obj_s": spread([case.objects / r.ack_s for r in case.runs]),
        "ack_mb_s": spread([case.bytes / MB / r.ack_s for r in case.runs]),
        "e2e_obj_s": spread([case.objects / r.e2e_s for r in case.runs]),
        "e2e_mb_s": spread([case.bytes / MB / r.e2e_s for r in case.runs]),
        "cpu_s": spread([r.cpu_s for r in case.runs]),
        "worker_cpu_s": spread([r.worker_cpu_s for r in case.runs]) if case.runs[0].worker_cpu_s is not None else None,
        "peak_rss_mb": max(r.peak_rss for r in case.runs) / MB,
    }


def reference_for(case: Case, cases: list[Case]) -> Case | None:
    """DCMTK's matching case: ``--fork`` for concurrent associations when it was run."""
    wanted = ("dcmtk --fork", "dcmtk") if case.assocs > 1 else ("dcmtk",)
    for name in wanted:
        for other in cases:
            if (other.corpus, other.assocs, other.receiver) == (case.corpus, case.assocs, name):
                return other
    return None


def ratios(case: Case, cases: list[Case]) -> dict[str, float] | None:
    ref = reference_for(case, cases)
    if ref is None or ref is case:
        return None
    mine, theirs = summary(case), summary(ref)
    return {"vs": ref.receiver, "ack": mine["ack_mb_s"]["median"] / theirs["ack_mb_s"]["median"],
            "e2e": mine["e2e_mb_s"]["median"] / theirs["e2e_mb_s"]["median"]}


def _fmt(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def table(cases: list[Case], rates: list[SetupRate]) -> str:
    head = ("corpus", "assocs", "receiver", "ack obj/s", "ack MB/s", "e2e obj/s", "e2e MB/s", "ratio ack",
            "ratio e2e", "rx CPU s", "wk CPU s", "peak RSS MB")
    rows = [head]
    for case in cases:
        s, r = summary(case), ratios(case, cases)
        rows.append((case.corpus, str(case.assocs), case.receiver, _fmt(s["ack_obj_s"]), _fmt(s["ack_mb_s"]),
                     _fmt(s["e2e_obj_s"]), _fmt(s["e2e_mb_s"]), f"{r['ack']:.2f}" if r else "-", f"{r['e2e']:.2f}" if r else "-",
                     _fmt(s["cpu_s"], 2), _fmt(s["worker_cpu_s"], 2) if s["worker_cpu_s"] else "-",
                     f"{s['peak_rss_mb']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append("ratio: median MB/s over DCMTK's in the same run (4 assocs: over dcmtk --fork)")
    if not rates:
        return "\n".join(lines)
    lines.append("")
    lines.append("association set-up (raw-socket client, one after another): associations/s")
    dcmtk = {r.kind: statistics.median(r.rates) for r in rates if r.receiver == "dcmtk"}
    for r in rates:
        ratio = statistics.median(r.rates) / dcmtk[r.kind] if r.receiver != "dcmtk" and r.kind in dcmtk else None
        lines.append(f"  {r.receiver:10} {r.kind:5} {_fmt(spread(r.rates))}" + (f"  ratio {ratio:.3f}" if ratio else ""))
    return "\n".join(lines)


def report_json(cases: list[Case], rates: list[SetupRate], meta: dict) -> dict:
    return {
        "meta": meta,
        "table": table(cases, rates),
        "cases": [asdict(c) | {"summary": summary(c), "ratio": ratios(c, cases)} for c in cases],
        "setup": [asdict(r) | {"summary": spread(r.rates)} for r in rates],
    }


# ------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="scripts/bench/compare", description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="smaller corpora, 1 run (development)")
    p.add_argument("--tiny", action="store_true", help="tiny corpora (the smoke test)")
    p.add_argument("--runs", type=int, help="runs per case (default 3; 1 with --quick/--tiny)")
    p.add_argument("--corpus", action="append", choices=sorted(corpus.FULL), help="only this corpus (repeatable)")
    p.add_argument("--assocs", action="append", type=int, choices=(1, 4), help="only this mode (repeatable)")
    p.add_argument("--receiver", action="append", choices=("dcmtk", "dcmtk-fork", "spoolscp", "spoolscp-fork"),
                   help="only this receiver (repeatable)")
    p.add_argument("--big", action="store_true", help="also one 1 GB object, one association (peak RSS)")
    p.add_argument("--no-setup", action="store_true", help="skip the association set-up rate")
    p.add_argument("--setup-seconds", type=float, help="seconds per set-up measurement (default 2)")
    p.add_argument("--cache", default=str(Path.home() / ".cache" / "spoolscp-bench"), help="corpus cache folder")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    return p.parse_args(argv)


def plan(args: argparse.Namespace) -> list[tuple[str, corpus.CorpusSpec, int, Receiver]]:
    specs = corpus.TINY if args.tiny else corpus.QUICK if args.quick else corpus.FULL
    chosen = {"dcmtk": DCMTK, "dcmtk-fork": DCMTK_FORK, "spoolscp": SPOOLSCP, "spoolscp-fork": SPOOLSCP_FORK}
    receivers = [chosen[r] for r in args.receiver or chosen]
    steps = []
    for name in args.corpus or specs:
        for assocs in args.assocs or (1, 4):
            for rec in receivers:
                if not (rec in FORKING and assocs == 1):
                    steps.append((name, specs[name], assocs, rec))
    if args.big:
        steps += [("1GB", corpus.BIG, 1, rec) for rec in receivers if rec not in FORKING]
    return steps


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.runs or (1 if args.quick or args.tiny else 3)
    cache = Path(args.cache)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "load_start": loadavg(), "dcmtk": sbs.dcmtk_version(), "runs": runs,
            "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, check=False).stdout.strip()}
    cases, rates = [], []
    with tempfile.TemporaryDirectory(prefix="spoolscp-bench-") as tmp:
        for i, (name, spec, assocs, rec) in enumerate(plan(args)):
            files = corpus.ensure(spec, cache)
            print(f"# {name} x{len(files)}, {assocs} assoc, {rec.name} (load {loadavg()})", file=sys.stderr)
            cases.append(run_case(rec, name, files, assocs, runs, Path(tmp) / f"case{i}"))
        if not args.no_setup:
            small = corpus.ensure((corpus.TINY if args.tiny else corpus.QUICK)["2KB"], cache)[0]
            seconds = args.setup_seconds or (0.5 if args.tiny else 2.0)
            for rec in (DCMTK, SPOOLSCP):
                if args.receiver is None or rec.name in args.receiver:
                    print(f"# set-up rate, {rec.name} (load {loadavg()})", file=sys.stderr)
                    rates += setup_rates(rec, small, runs, seconds, Path(tmp) / f"setup-{rec.kind}")
    meta["load_end"] = loadavg()
    if args.json:
        print(json.dumps(report_json(cases, rates, meta), indent=1))
    else:
        print(f"# {meta['date']}  {meta['cpus']} CPUs  DCMTK {meta['dcmtk']}  commit {meta['commit']}  "
              f"runs {runs}  load start {meta['load_start']}  end {meta['load_end']}")
        print(table(cases, rates))
    return 0


if __name__ == "__main__":
    sys.exit(main())
