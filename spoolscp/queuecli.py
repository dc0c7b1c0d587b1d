"""``spoolscp queue``: what the pipeline holds, and the operator's levers on it.

::

    spoolscp queue stats                                counts per state
    spoolscp queue list [--state S]... [--study UID] [--limit N]
    spoolscp queue show JOB                             every column of one job
    spoolscp queue failed                               the dead letters, with their errors
    spoolscp queue retry JOB... | --all-failed          run failed jobs again
    spoolscp queue purge --done --older-than D          forget finished jobs (D: 30s 15m 12h 7d)
    spoolscp queue recover                              run the reconciler now

Every action takes ``--json`` (one JSON document on stdout, for scripts), ``--config``
and ``--state-dir``. Human output is a table. The exit codes are part of the interface:
0 done (an empty list too), 1 configuration or database error, 2 bad command line,
3 no job with that number, 4 the job is not in a state that allows the action (retry
of a job that has not failed).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import asdict
from datetime import datetime
from typing import Any, Callable, Sequence

from spoolscp import jobs
from spoolscp.settings import ConfigError, Settings, load_settings

EXIT_OK = 0  # done (also: a list that came out empty)
EXIT_ERROR = 1  # configuration or database error
EXIT_USAGE = 2  # bad command line
EXIT_NOT_FOUND = 3  # no job with that number
EXIT_CONFLICT = 4  # the job exists but is not in a state that allows it (retry of a job not failed)

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNIT = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}

# Columns of the job tables, and how each value is shown.
LIST_COLUMNS = ("seq", "kind", "state", "attempts", "updated", "what", "error")


class QueueError(Exception):
    """An action that cannot be done; carries the exit code."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def duration(text: str) -> float:
    """``30``, ``30s``, ``15m``, ``12h``, ``7d`` -> seconds (argparse type)."""
    match = _DURATION.match(text.strip())
    if not match:
        raise argparse.ArgumentTypeError(f"not a duration: {text!r} (examples: 90s, 15m, 12h, 7d)")
    return float(match.group(1)) * _UNIT[match.group(2)]


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", help="pipeline.toml to use")
    common.add_argument("--state-dir", help="state folder (spool, queue, job table)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    parser = argparse.ArgumentParser(prog="spoolscp queue", description="Inspect and steer the job queue.")
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    sub.add_parser("stats", parents=[common], help="counts per state")
    listing = sub.add_parser("list", parents=[common], help="jobs in sequence order")
    listing.add_argument("--state", action="append", choices=jobs.STATES, help="only this state (repeatable)")
    listing.add_argument("--study", metavar="UID", help="only jobs of this Study Instance UID")
    listing.add_argument("--limit", type=int, default=0, help="at most N jobs (0 = all)")
    show = sub.add_parser("show", parents=[common], help="one job, every column")
    show.add_argument("job", type=int, metavar="JOB")
    sub.add_parser("failed", parents=[common], help="failed jobs with their last error")
    retry = sub.add_parser("retry", parents=[common], help="queue failed jobs again")
    retry.add_argument("jobs", type=int, nargs="*", metavar="JOB")
    retry.add_argument("--all-failed", action="store_true", help="every failed job")
    purge = sub.add_parser("purge", parents=[common], help="delete finished jobs")
    purge.add_argument("--done", action="store_true", required=True, help="delete done jobs (required)")
    purge.add_argument("--older-than", type=duration, required=True, metavar="D", help="last updated before D ago")
    sub.add_parser("recover", parents=[common], help="re-queue lost work and sweep the spool now")
    return parser


def main(argv: Sequence[str]) -> int:
    try:
        args = build_parser().parse_args(list(argv))
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code or 0)
    try:
        settings = load_settings(args.config, state_dir=args.state_dir)
        db = jobs.JobDB(settings.jobs_db)
    except (ConfigError, OSError) as exc:
        print(f"spoolscp queue: {exc}", file=sys.stderr)
        return EXIT_ERROR
    try:
        result, render = ACTIONS[args.action](args, settings, db)
    except QueueError as exc:
        print(f"spoolscp queue: {exc}", file=sys.stderr)
        return exc.code
    finally:
        db.close()
    print(json.dumps(result, default=_json_value) if args.json else render(result))
    return EXIT_OK


# ---------------------------------------------------------------------------------------
# Actions: each returns (the JSON document, a function that renders it for humans)

Action = tuple[Any, Callable[[Any], str]]


def do_stats(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    return jobs.stats(db), lambda counts: "\n".join(f"{state:<10} {n:>8}" for state, n in counts.items())


def do_list(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    found = jobs.rows(db, tuple(args.state or ()), args.study, args.limit)
    return [public(r) for r in found], job_table


def do_failed(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    return [public(r) for r in jobs.rows(db, ("failed",))], lambda found: job_table(found, error_width=0)


def do_show(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    found = jobs.row(db, args.job)
    if found is None or found["kind"] == "assoc_end":
        raise QueueError(f"no job {args.job}", EXIT_NOT_FOUND)
    return public(found), show_text


def do_retry(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    if args.all_failed == bool(args.jobs):
        raise QueueError("give JOB numbers or --all-failed (not both)", EXIT_USAGE)
    if args.jobs:
        _check_retryable(db, args.jobs)
    seqs = jobs.requeue_failed(db, None if args.all_failed else args.jobs)
    if seqs:
        from workers.app import open_queue

        queue = open_queue(settings)
        for seq in seqs:
            queue.enqueue(seq)
    return {"retried": seqs}, lambda r: f"queued again: {' '.join(map(str, r['retried'])) or 'nothing'}"


def _check_retryable(db: jobs.JobDB, seqs: list[int]) -> None:
    for seq in seqs:
        found = jobs.row(db, seq)
        if found is None or found["kind"] == "assoc_end":
            raise QueueError(f"no job {seq}", EXIT_NOT_FOUND)
        if found["state"] != "failed":
            raise QueueError(f"job {seq} is {found['state']}, not failed", EXIT_CONFLICT)


def do_purge(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    seqs = jobs.purge_done(db, args.older_than)
    for seq in seqs:  # exit status files of commands that are gone
        (settings.state_dir / "exec" / f"{seq}.status").unlink(missing_ok=True)
    return {"purged": len(seqs)}, lambda r: f"purged {r['purged']} done job(s)"


def do_recover(args: argparse.Namespace, settings: Settings, db: jobs.JobDB) -> Action:
    from workers.app import open_queue
    from workers.recovery import jobs_with_messages
    from workers.tasks import run_reconcile

    queue = open_queue(settings)
    done = asdict(run_reconcile(settings, queue.enqueue, jobs_with_messages(queue.huey)))
    return done, lambda r: f"re-queued {len(r['requeued'])} job(s), removed {len(r['spool_removed'])} spool file(s)"


ACTIONS: dict[str, Callable[[argparse.Namespace, Settings, jobs.JobDB], Action]] = {
    "stats": do_stats,
    "list": do_list,
    "show": do_show,
    "failed": do_failed,
    "retry": do_retry,
    "purge": do_purge,
    "recover": do_recover,
}


# ---------------------------------------------------------------------------------------
# Rendering


def public(row: dict[str, Any]) -> dict[str, Any]:
    """A row as documented for ``--json``: internal bookkeeping columns left out."""
    return {k: v for k, v in row.items() if k not in ("tracked", "plan")}


def _json_value(value: Any) -> Any:
    """Patient names are raw bytes in the object's character set: one char per byte."""
    if isinstance(value, bytes):
        return value.decode("latin-1")
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def _what(row: dict[str, Any]) -> str:
    if row["kind"] == "exec":
        return row["command"] or ""
    if row["kind"] == "eos":
        return f"end of study {row['study_uid'] or row['study_id']}"
    return row["sop_instance"] or ""


def _when(stamp: float | None) -> str:
    return datetime.fromtimestamp(stamp).strftime("%Y-%m-%d %H:%M:%S") if stamp else "-"


def job_table(found: list[dict[str, Any]], error_width: int = 40) -> str:
    """One line per job; ``error_width`` 0 shows errors in full."""
    if not found:
        return "no jobs"
    lines = []
    for r in found:
        error = r["error"] or ""
        if error_width and len(error) > error_width:
            error = error[: error_width - 3] + "..."
        lines.append([str(r["seq"]), r["kind"], r["state"], str(r["attempts"]), _when(r["updated_at"]), _what(r), error])
    widths = [max(len(c), *(len(line[i]) for line in lines)) for i, c in enumerate(LIST_COLUMNS)]
    rows = [list(LIST_COLUMNS), *lines]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in rows)


def show_text(row: dict[str, Any]) -> str:
    width = max(map(len, row))
    lines = []
    for key, value in row.items():
        if key in ("received_at", "updated_at", "lease_until"):
            value = f"{_when(value)} ({value})" if value else "-"
        elif key == "options":
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, bytes):
            value = _json_value(value)
        lines.append(f"{key:<{width}}  {'-' if value is None else value}")
    return "\n".join(lines)
