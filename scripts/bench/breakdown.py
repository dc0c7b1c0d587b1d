"""Where the receiver's time goes: a corpus over one association, or association set-ups.

``compare`` says how far spoolscp is from DCMTK; this says why, in figures that a
closing note can carry and the next engineer can reproduce. The receiver runs alone
(no workers: their CPU is ``compare``'s ``worker_cpu_s``), a fresh one for each pass,
given one of ``compare``'s corpora over one ``storescu`` association, or ``compare``'s
set-up associations (raw client: one C-ECHO, or one small C-STORE, each):

* ``rate``: objects (associations) per second and the receiver's CPU per object
  (association), user and system (/proc);
* ``syscalls``: ``strace -f -c`` (Debian package ``strace``): calls per object, most
  frequent first. strace slows every call, so this pass says what, not how long;
* ``python``: ``py-spy record --gil`` (``pip install py-spy``): samples of the thread
  holding the GIL, i.e. Python time. Each sample is charged to the innermost frame
  that is not the standard library (``json`` called by ``spoolscp/jobs.py`` is
  ``spoolscp``'s time) and summed per layer (pynetdicom, receiver, spoolscp, pydicom,
  huey ...) and per function, largest first. A sample with no such frame at all is
  charged to its innermost frame, in the ``stdlib`` layer.

Usage::

    scripts/bench/breakdown --corpus 2KB                # 2,000 x 2 KB, all three passes
    scripts/bench/breakdown --corpus 512KB --quick --pass rate --pass python --json
    scripts/bench/breakdown --setup store               # 1,000 associations, one C-STORE each
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import compare
import corpus
import procstats
import rawclient

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import sidebyside as sbs  # noqa: E402  (the shared harness: ports, configs, processes)

PASSES = ("rate", "syscalls", "python")
LAYERS = {"pynetdicom", "pydicom", "huey", "receiver", "spoolscp", "workers"}  # the rest is stdlib
FRAME = re.compile(r"(?P<func>\S+) \((?P<path>[^:()]+):\d+\)$")
TRACER_SETTLE = 0.5  # seconds for strace or py-spy to attach before the sender starts
TRACER_TIMEOUT = 60.0


def layer(path: str) -> str:
    """The layer of a py-spy frame's path (py-spy shortens it to the import path)."""
    top = path.split("/", 1)[0]
    return top if top in LAYERS else "stdlib"


def python_time(raw: str, top: int = 15) -> dict:
    """Shares of py-spy ``--format raw`` samples (``frame;frame;... count`` per line), per
    layer and per function, each sample charged to its innermost frame outside the
    standard library (the function's own time and that of the stdlib it calls).

    >>> python_time("f (spoolscp/jobs.py:3);encode (json/encoder.py:9) 3\\nf (spoolscp/jobs.py:4);g (receiver/a.py:1) 1\\n")
    {'samples': 4, 'layers': {'spoolscp': 0.75, 'receiver': 0.25}, 'charged': [['f spoolscp/jobs.py', 0.75], ['g receiver/a.py', 0.25]]}
    """
    layers: Counter[str] = Counter()
    charged: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        frames = [m for m in map(FRAME.match, stack.split(";")) if m]
        if not frames or not count.isdigit():
            continue
        owner = next((m for m in reversed(frames) if layer(m["path"]) != "stdlib"), frames[-1])
        layers[layer(owner["path"])] += int(count)
        charged[f"{owner['func']} {owner['path']}"] += int(count)
    total = sum(layers.values())
    return {"samples": total, "layers": {k: round(v / total, 4) for k, v in layers.most_common()},
            "charged": [[k, round(v / total, 4)] for k, v in charged.most_common(top)]}


def syscall_counts(summary: str) -> dict[str, int]:
    """Calls per system call from the table ``strace -c`` writes.

    >>> syscall_counts("% time  seconds usecs/call calls errors syscall\\n------\\n"
    ...                " 42.58 3.519895 17086 206 104 futex\\n  6.23 0.515347 11 44625 pwrite64\\n"
    ...                "------\\n100.00 8.3 38 90000 4000 total\\n")
    {'futex': 206, 'pwrite64': 44625}
    """
    counts = {}
    for line in summary.splitlines():
        cells = line.split()
        if len(cells) in (5, 6) and cells[-1] != "total" and cells[3].isdigit():
            counts[cells[-1]] = int(cells[3])
    return counts


def tool(name: str, hint: str) -> str:
    """The path of an external tool (the project's .venv first), or exit with how to get it."""
    found = shutil.which(name, path=f"{REPO / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}")
    if found is None:
        sys.exit(f"breakdown: {name} not found: {hint}")
    return found


@dataclass(frozen=True)
class Workload:
    """What every pass gives the receiver: ``run(port, workdir)`` sends it and returns
    how many ``unit``s it did."""

    name: str
    unit: str  # "object" | "association"
    run: Callable[[int, Path], int]


def corpus_workload(name: str, files: list[Path]) -> Workload:
    """Every file of a corpus over one ``storescu`` association."""
    def run(port: int, workdir: Path) -> int:
        compare.send(port, [files], workdir)
        return len(files)
    return Workload(f"{name} x{len(files)}, one association", "object", run)


def setup_workload(kind: str, associations: int, small: Path) -> Workload:
    """``associations`` raw-client associations, one C-ECHO or one small C-STORE each
    (``compare``'s set-up rate, counted instead of timed)."""
    rnd = rawclient.echo_round() if kind == "echo" else rawclient.store_round(small, unique=True)
    return Workload(f"set-up {kind} x{associations}", "association",
                    lambda port, _: rawclient.rate(port, rnd, float("inf"), associations)[1])


@contextmanager
def traced(argv: list[str]) -> Iterator[None]:
    """Run a tracer that attaches to a process around the block; SIGINT makes it write its output."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(TRACER_SETTLE)
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=TRACER_TIMEOUT)
    if proc.returncode not in (0, -signal.SIGINT):
        raise RuntimeError(f"{argv[0]} exited with {proc.returncode}: {err.decode(errors='replace')}")


def run_traced(work: Workload, workdir: Path, tracer: Callable[[int], list[str]]) -> int:
    """Run ``work`` on a fresh receiver (no workers) with ``tracer(pid)`` attached to it;
    the count of units done."""
    with sbs.scp_server("spoolscp", [], workdir, receiver_only=True) as server:
        with traced(tracer(server.proc.pid)):
            return work.run(server.port, workdir)


def rate_pass(work: Workload, workdir: Path) -> dict:
    with sbs.scp_server("spoolscp", [], workdir, receiver_only=True) as server:
        user0, sys0 = procstats.tree_cpu_times(server.proc.pid)
        t0 = time.perf_counter()
        n = work.run(server.port, workdir)
        seconds = time.perf_counter() - t0
        user1, sys1 = procstats.tree_cpu_times(server.proc.pid)
    return {"per_s": round(n / seconds, 1), "cpu_user_ms": round((user1 - user0) / n * 1e3, 3),
            "cpu_sys_ms": round((sys1 - sys0) / n * 1e3, 3)}


def syscalls_pass(work: Workload, workdir: Path) -> dict:
    strace, out = tool("strace", "apt-get install strace"), workdir / "strace.txt"
    n = run_traced(work, workdir, lambda pid: [strace, "-f", "-c", "-o", str(out), "-p", str(pid)])
    counts = syscall_counts(out.read_text())
    return {name: round(calls / n, 2) for name, calls in sorted(counts.items(), key=lambda c: -c[1])}


def python_pass(work: Workload, workdir: Path) -> dict:
    pyspy, out = tool("py-spy", f"{REPO / '.venv' / 'bin' / 'pip'} install py-spy"), workdir / "py-spy.txt"
    run_traced(work, workdir, lambda pid: [pyspy, "record", "--gil", "--nonblocking", "--rate", "1000",
                                            "--format", "raw", "--output", str(out), "--pid", str(pid)])
    return python_time(out.read_text())


RUN = {"rate": rate_pass, "syscalls": syscalls_pass, "python": python_pass}


def report(work: Workload, results: dict) -> str:
    """The passes' results as lines of text."""
    lines = [f"{work.name}, receiver alone"]
    if "rate" in results:
        r = results["rate"]
        lines.append(f"rate: {r['per_s']:.0f} {work.unit}s/s; CPU per {work.unit} {r['cpu_user_ms']:.3f} ms user, "
                     f"{r['cpu_sys_ms']:.3f} ms system")
    if "syscalls" in results:
        lines.append(f"syscalls per {work.unit}: "
                     + ", ".join(f"{k} {v:g}" for k, v in list(results["syscalls"].items())[:12]))
    if "python" in results:
        p = results["python"]
        lines.append(f"Python time by layer ({p['samples']} GIL samples): "
                     + ", ".join(f"{k} {v:.0%}" for k, v in p["layers"].items()))
        lines += [f"  {share:6.1%}  {func}" for func, share in p["charged"]]
    return "\n".join(lines)


def workload(args: argparse.Namespace) -> Workload:
    specs = corpus.TINY if args.tiny else corpus.QUICK if args.quick else corpus.FULL
    if args.setup:
        small = corpus.ensure((corpus.TINY if args.tiny else corpus.QUICK)["2KB"], args.cache)[0]  # as compare
        return setup_workload(args.setup, 50 if args.tiny else 300 if args.quick else 1000, small)
    return corpus_workload(args.corpus, corpus.ensure(specs[args.corpus], args.cache))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = p.add_mutually_exclusive_group()
    what.add_argument("--corpus", choices=sorted(corpus.FULL), default="2KB", help="a corpus over one association")
    what.add_argument("--setup", choices=("echo", "store"), help="associations of one C-ECHO or one small C-STORE")
    p.add_argument("--quick", action="store_true", help="the smaller corpus of compare --quick (300 associations)")
    p.add_argument("--tiny", action="store_true", help="the tiny corpus (50 associations): the smoke test")
    p.add_argument("--pass", dest="passes", action="append", choices=PASSES, help="only this pass (repeatable)")
    p.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, help="corpus cache folder")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = p.parse_args(argv)
    work = workload(args)
    with tempfile.TemporaryDirectory() as tmp:
        results = {name: RUN[name](work, Path(tmp) / name) for name in args.passes or PASSES}
    print(json.dumps({"workload": work.name, "unit": work.unit, **results}, indent=1) if args.json
          else report(work, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
