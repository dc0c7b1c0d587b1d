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

The runs are interleaved: every receiver of a (corpus, assocs) group is started once,
then round i sends the corpus to each receiver in turn, the order rotated every round
(A,B,C; B,C,A; ...) so that none is always first. Only one receiver is busy at a time:
a run ends when its output is durable (spoolscp's workers drained), then what it left
dirty in the page cache is written back (untimed) before the next one starts, and its
output folder is emptied but deleted only when the bench ends (``trash``: deletes make
the next minutes' file creates slower on this file system). Only the tree of the
receiver being measured is sampled; the idle ones cost < 0.01 CPU s/s here.
On a machine whose load drifts within minutes (DCMTK alone varied 2,157-3,523 obj/s
across three back-to-back runs), the runs of one round see the same machine.

The large corpora swing most, with the memory state of the virtual machine rather than
with the receivers: here a write into page-cache pages the guest had not used lately
cost 0.8-1.4 ms per 512 KB, into the pages of files deleted a moment before 0.11-0.13
ms (``os.writev`` of 32 x 16 KB, no fsync, 300-2,000 files; 2026-12-02). DCMTK, which
never waits for the disk, runs at that speed: 195-552 MB/s on 64 MB objects within one
group, and spoolscp's 64 MB ratio was 0.72 in one full run and 1.26 half an hour later.
Touching anonymous memory first did not make it steady (once it did, once not), so
the bench does not try; read those min-max ranges as the machine's, not the code's.

Medians of ``--runs`` runs with min and max, the association set-up rate measured with
a raw-socket client (``rawclient``: A-ASSOCIATE, C-ECHO or one small C-STORE of a new
SOP Instance UID each time, A-RELEASE; the rounds of DCMTK's default, spoolscp and
``spoolscp --fork`` alternate, all servers up), and the machine load
(``/proc/loadavg``) before and after every group, since other work may share it.

The ratio to DCMTK (``--fork`` for four associations) is *paired*: per round, the
receiver's MB/s over DCMTK's MB/s in the same round, then median (min-max) over the
rounds; likewise for the set-up rate. It replaces the ratio of the medians in the table
because that one mixes the drift between rounds into the comparison, and the min-max of
the pairs shows how far one comparison can be trusted; ``--json`` keeps both
(``ratio``: of the medians, ``paired_ratio``: over the rounds).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator, TypeVar

import corpus
import procstats
import rawclient
from trash import Trash, deleted_now, wait_quiet

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import sidebyside as sbs  # noqa: E402  (the shared harness: ports, processes, queue stats)

MB = 1e6
SEND_TIMEOUT = 900
T = TypeVar("T")


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
BY_OPTION = {"dcmtk": DCMTK, "dcmtk-fork": DCMTK_FORK, "spoolscp": SPOOLSCP, "spoolscp-fork": SPOOLSCP_FORK}
FORKING = (DCMTK_FORK, SPOOLSCP_FORK)  # run for concurrent associations only


@dataclass
class Run:
    ack_s: float
    e2e_s: float
    cpu_s: float
    worker_cpu_s: float | None
    peak_rss: int
    t_start: float  # time.time() when the senders started: shows the interleaving


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


def one_run(server: Server, files: list[Path], assocs: int, expected: int, workdir: Path, trash: Trash) -> Run:
    """Send the corpus once; check that every object arrived in the output folder."""
    trash.discard(server.outdir)
    server.outdir.mkdir()
    cpu0 = procstats.tree_cpu(server.proc.pid)
    wcpu0 = procstats.tree_cpu(server.workers.pid) if server.workers else 0.0
    with procstats.PeakRSS(server.proc.pid) as peak:
        t_start, t0 = time.time(), time.perf_counter()
        send(server.port, corpus.split(files, assocs), workdir)
        t_ack = time.perf_counter()
        cpu = procstats.tree_cpu(server.proc.pid) - cpu0
    t_e2e = wait_durable(server, expected, timeout=600)
    found = count_outputs(server.outdir)
    if found != len(files):
        raise RuntimeError(f"{server.receiver.name}: {found} output files for {len(files)} objects")
    wcpu = procstats.tree_cpu(server.workers.pid) - wcpu0 if server.workers else None
    return Run(t_ack - t0, t_e2e - t0, cpu, wcpu, peak.bytes, t_start)


def rotations(items: list[T], runs: int) -> list[list[T]]:
    """The order of each round: ``items`` rotated by the round's index (A,B,C; B,C,A; ...),
    so no receiver always runs first, or always right after the same other one."""
    return [items[i % len(items):] + items[:i % len(items)] for i in range(runs)]


def settle() -> None:
    """Write back what the last run left dirty (DCMTK does not fsync: 252 MB dirty after
    500 x 512 KB, 0.13-0.16 s of ``sync`` here), so the kernel's writeback of one receiver's
    output, due up to 30 s later, does not fall into the next receiver's run."""
    os.sync()


def start_all(stack: ExitStack, receivers: list[Receiver], workdir: Path) -> dict[Receiver, Server]:
    """Every receiver started in its own folder (own port, state, output) until ``stack`` closes."""
    return {rec: stack.enter_context(started(rec, workdir / f"rx{k}")) for k, rec in enumerate(receivers)}


def run_group(receivers: list[Receiver], name: str, files: list[Path], assocs: int, runs: int,
              workdir: Path, trash: Trash) -> list[Case]:
    """One case per receiver, their runs interleaved: round i runs each receiver once, in
    turn (see :func:`rotations`), so run i of every case saw the machine of the same minute."""
    size, load = corpus.total_bytes(files), loadavg()
    cases = {rec: Case(name, len(files), size, assocs, rec.name, load_before=load) for rec in receivers}
    with ExitStack() as stack:
        servers = start_all(stack, receivers, workdir)
        for i, order in enumerate(rotations(receivers, runs)):
            for rec in order:
                print(f"# {name} x{len(files)}, {assocs} assoc, run {i + 1}/{runs}: {rec.name} (load {loadavg()})",
                      file=sys.stderr)
                server = servers[rec]
                trash.make_room(2 * size)  # outputs, and spool files where they are copies
                cases[rec].runs.append(one_run(server, files, assocs, len(files) * (i + 1), server.outdir.parent,
                                               trash))
                settle()
    for case in cases.values():
        case.load_after = loadavg()
    return list(cases.values())


@dataclass
class SetupRate:
    receiver: str
    kind: str  # "echo" | "store"
    rates: list[float]


def setup_rates(receivers: list[Receiver], small: Path, runs: int, seconds: float, workdir: Path) -> list[SetupRate]:
    """Associations/s with one C-ECHO each, then with one small C-STORE each: round i of
    every receiver in turn (rotated), all servers up. After a store round, spoolscp's workers
    drain what it received before the next receiver's round, so that one is measured alone."""
    found = {(rec, kind): SetupRate(rec.name, kind, []) for rec in receivers for kind in ("echo", "store")}
    stored = dict.fromkeys(receivers, 0)
    with ExitStack() as stack:
        servers = start_all(stack, receivers, workdir)
        for kind, rnd in (("echo", rawclient.echo_round()), ("store", rawclient.store_round(small, unique=True))):
            for order in rotations(receivers, runs):
                for rec in order:
                    rate, done = rawclient.rate(servers[rec].port, rnd, seconds, 20000)
                    found[(rec, kind)].rates.append(rate)
                    stored[rec] += done if kind == "store" else 0
                    wait_durable(servers[rec], stored[rec], timeout=600)
                    settle()
    return list(found.values())


# ------------------------------------------------------------------------------------------
# Summaries and the table


def spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def mb_s(case: Case, phase: str) -> list[float]:
    """MB/s of each run, to its last response (``phase`` "ack") or to durable output ("e2e")."""
    return [case.bytes / MB / getattr(r, f"{phase}_s") for r in case.runs]


def summary(case: Case) -> dict:
    """Per case: objects/s and MB/s to ack and to durable output, CPU, peak RSS."""
    return {
        "ack_obj_s": spread([case.objects / r.ack_s for r in case.runs]),
        "ack_mb_s": spread(mb_s(case, "ack")),
        "e2e_obj_s": spread([case.objects / r.e2e_s for r in case.runs]),
        "e2e_mb_s": spread(mb_s(case, "e2e")),
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


def paired(mine: list[float], theirs: list[float]) -> dict[str, float]:
    """Median (min-max) over the rounds of mine[i] / theirs[i], both measured in round i."""
    return spread([a / b for a, b in zip(mine, theirs, strict=True)])


def paired_ratios(case: Case, cases: list[Case]) -> dict | None:
    """MB/s over DCMTK's (see :func:`reference_for`) run by run, to ack and to durable output."""
    ref = reference_for(case, cases)
    if ref is None or ref is case:
        return None
    return {"vs": ref.receiver, "ack": paired(mb_s(case, "ack"), mb_s(ref, "ack")),
            "e2e": paired(mb_s(case, "e2e"), mb_s(ref, "e2e"))}


def setup_ratio(rate: SetupRate, rates: list[SetupRate]) -> dict[str, float] | None:
    """Associations/s over DCMTK's of the same kind, round by round."""
    for ref in rates:
        if ref.receiver == "dcmtk" and ref.kind == rate.kind and ref is not rate:
            return paired(rate.rates, ref.rates)
    return None


def _fmt(s: dict[str, float], digits: int = 0) -> str:
    return f"{s['median']:.{digits}f} ({s['min']:.{digits}f}-{s['max']:.{digits}f})"


def table(cases: list[Case], rates: list[SetupRate]) -> str:
    head = ("corpus", "assocs", "receiver", "ack obj/s", "ack MB/s", "e2e obj/s", "e2e MB/s", "ack ratio",
            "e2e ratio", "rx CPU s", "wk CPU s", "peak RSS MB")
    rows = [head]
    for case in cases:
        s, r = summary(case), paired_ratios(case, cases)
        rows.append((case.corpus, str(case.assocs), case.receiver, _fmt(s["ack_obj_s"]), _fmt(s["ack_mb_s"]),
                     _fmt(s["e2e_obj_s"]), _fmt(s["e2e_mb_s"]), _fmt(r["ack"], 2) if r else "-",
                     _fmt(r["e2e"], 2) if r else "-",
                     _fmt(s["cpu_s"], 2), _fmt(s["worker_cpu_s"], 2) if s["worker_cpu_s"] else "-",
                     f"{s['peak_rss_mb']:.0f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)) for row in rows]
    lines.append("ratio: MB/s over DCMTK's in the same round (4 assocs: over dcmtk --fork), "
                 "median (min-max) of the rounds")
    if not rates:
        return "\n".join(lines)
    lines.append("")
    lines.append("association set-up (raw-socket client, one after another): associations/s, "
                 "ratio over DCMTK's default (not --fork) in the same round")
    for r in rates:
        ratio = setup_ratio(r, rates)
        paired_text = f"  ratio {_fmt(ratio, 3)}" if ratio else ""
        lines.append(f"  {r.receiver:16} {r.kind:5} {_fmt(spread(r.rates))}{paired_text}")
    return "\n".join(lines)


def report_json(cases: list[Case], rates: list[SetupRate], meta: dict) -> dict:
    return {
        "meta": meta,
        "table": table(cases, rates),
        "cases": [asdict(c) | {"summary": summary(c), "ratio": ratios(c, cases),
                               "paired_ratio": paired_ratios(c, cases)} for c in cases],
        "setup": [asdict(r) | {"summary": spread(r.rates), "paired_ratio": setup_ratio(r, rates)} for r in rates],
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
    p.add_argument("--cache", default=str(corpus.DEFAULT_CACHE), help="corpus cache folder")
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the table")
    return p.parse_args(argv)


def selected(args: argparse.Namespace) -> list[Receiver]:
    """The receivers ``--receiver`` names (all by default)."""
    return [BY_OPTION[r] for r in args.receiver or BY_OPTION]


def setup_receivers(args: argparse.Namespace) -> list[Receiver]:
    """Whose set-up rate is measured: DCMTK's default (the reference), spoolscp's, and
    ``spoolscp --fork`` (what an operator facing one association per object can run)."""
    return [rec for rec in (DCMTK, SPOOLSCP, SPOOLSCP_FORK) if rec in selected(args)]


def plan(args: argparse.Namespace) -> list[tuple[str, corpus.CorpusSpec, int, list[Receiver]]]:
    """The (corpus, assocs) groups, each with the receivers whose runs it interleaves."""
    specs = corpus.TINY if args.tiny else corpus.QUICK if args.quick else corpus.FULL
    receivers = selected(args)
    single = [rec for rec in receivers if rec not in FORKING]
    groups = [(name, specs[name], assocs, single if assocs == 1 else receivers)
              for name in args.corpus or specs for assocs in args.assocs or (1, 4)]
    if args.big:
        groups.append(("1GB", corpus.BIG, 1, single))
    return [group for group in groups if group[3]]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    runs = args.runs or (1 if args.quick or args.tiny else 3)
    cache = Path(args.cache)
    meta = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "cpus": os.cpu_count(),
            "load_start": loadavg(), "dcmtk": sbs.dcmtk_version(), "runs": runs,
            "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                                     capture_output=True, text=True, check=False).stdout.strip()}
    cases, rates = [], []
    wait_quiet(cache)  # a previous bench's clean-up
    with tempfile.TemporaryDirectory(prefix="spoolscp-bench-") as tmp:
        trash = Trash(Path(tmp) / "trash", cache)
        for i, (name, spec, assocs, receivers) in enumerate(plan(args)):
            cases += run_group(receivers, name, corpus.ensure(spec, cache), assocs, runs, Path(tmp) / f"group{i}",
                               trash)
        setup = setup_receivers(args)
        if setup and not args.no_setup:
            small = corpus.ensure((corpus.TINY if args.tiny else corpus.QUICK)["2KB"], cache)[0]
            seconds = args.setup_seconds or (0.5 if args.tiny else 2.0)
            print(f"# set-up rate, {', '.join(r.name for r in setup)} (load {loadavg()})", file=sys.stderr)
            rates = setup_rates(setup, small, runs, seconds, Path(tmp) / "setup")
    deleted_now(cache)
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
