"""Instructions per association of the spoolscp receiver, counted by valgrind's callgrind.

Wall-clock rates on a shared 2-core VM swing by a third from one minute to the next
(DCMTK's own 2 KB rate ran 837-2603 obj/s within an hour), which hides a 5-10% change.
Instruction counts do not: callgrind counts the same for the same code and input
whatever the machine is doing. This A/B tool counts them for one checkout or several.

Per checkout (its code on ``PYTHONPATH``, this checkout's ``.venv``), the receiver
alone (no workers) runs under callgrind twice, serving ``--short`` and then ``--long``
associations of the raw client (:mod:`rawclient`: one C-ECHO, or one small C-STORE,
each); the slope between the two totals is the count per association, without the
start-up. Usage::

    scripts/bench/instructions --kind echo --repo /path/to/old/checkout --repo .
    # echo   /path/to/old/checkout  3.17 M instructions per association
    # echo   .                       2.86 M instructions per association  (0.90 of the first)

A run of 400 associations takes about a minute (the receiver runs some 50 times slower
under callgrind). Needs valgrind (Debian package ``valgrind``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import corpus
import rawclient

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests"))
import sidebyside as sbs  # noqa: E402  (the shared harness: ports, configs, processes)

START_TIMEOUT = 300.0  # importing pydicom and pynetdicom under callgrind takes a while
DUMP_TIMEOUT = 60.0


def total_instructions(callgrind_out: str) -> int:
    """The ``summary:`` (or ``totals:``) count of a callgrind output file."""
    found = re.search(r"^(?:summary|totals): (\d+)", callgrind_out, re.MULTILINE)
    if found is None:
        raise ValueError("no summary line in the callgrind output")
    return int(found.group(1))


def per_association(short: tuple[int, int], long: tuple[int, int]) -> float:
    """Instructions per association from two runs of (associations, total instructions)."""
    (n1, total1), (n2, total2) = short, long
    if n2 <= n1:
        raise ValueError("the long run must serve more associations than the short one")
    return (total2 - total1) / (n2 - n1)


def counted_run(checkout: Path, rnd: rawclient.Round, associations: int, workdir: Path) -> int:
    """Total instructions of a receiver from ``checkout`` until it served ``associations``.

    The count is dumped on request (``callgrind_control -d``), then the receiver is
    killed: a graceful stop under valgrind sometimes never ended (cause not traced)."""
    workdir.mkdir(parents=True)
    (workdir / "out").mkdir()
    port, out = sbs.free_port(), workdir / "callgrind.out"
    argv = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m", "spoolscp",
            "receiver", "--config", str(sbs.write_spoolscp_config(workdir)), "-od", "out", str(port)]
    env = dict(os.environ, PYTHONPATH=str(checkout))
    with (workdir / "receiver.log").open("wb") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
    try:
        sbs.wait_accepting(port, proc, START_TIMEOUT)
        for _ in range(associations):
            rawclient.one_round(port, rnd)
        subprocess.run(["callgrind_control", "--dump", str(proc.pid)], check=True, capture_output=True,
                       timeout=DUMP_TIMEOUT)
    finally:
        proc.kill()
        proc.wait()
    return total_instructions(Path(f"{out}.1").read_text(errors="replace"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kind", choices=("echo", "store"), default="echo", help="one C-ECHO or one small C-STORE")
    p.add_argument("--repo", action="append", type=Path, help="checkout to count (repeatable; default: this one)")
    p.add_argument("--short", type=int, default=100, help="associations of the short run")
    p.add_argument("--long", type=int, default=400, help="associations of the long run")
    p.add_argument("--cache", type=Path, default=corpus.DEFAULT_CACHE, help="corpus cache folder")
    args = p.parse_args(argv)
    small = corpus.ensure(corpus.QUICK["2KB"], args.cache)[0]
    rnd = rawclient.echo_round() if args.kind == "echo" else rawclient.store_round(small)
    first = None
    with tempfile.TemporaryDirectory() as tmp:
        for k, checkout in enumerate(args.repo or [REPO]):
            short, long = ((n, counted_run(checkout.resolve(), rnd, n, Path(tmp) / f"{k}-{n}"))
                           for n in (args.short, args.long))
            count = per_association(short, long)
            first = first or count
            share = f"  ({count / first:.2f} of the first)" if k else ""
            print(f"{args.kind}  {checkout}  {count / 1e6:.2f} M instructions per association{share}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
