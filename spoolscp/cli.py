"""The ``spoolscp`` command: storescp's command line plus the pipeline's own commands.

::

    spoolscp [storescp options] PORT          receiver + workers under one supervisor
    spoolscp receiver [storescp options] PORT the receiver alone
    spoolscp worker [--config F] [--state-dir D] [--workers N] [-q|-v|-d|-ll L]
    spoolscp queue ACTION [--json] [--config F] [--state-dir D]   (see spoolscp.queuecli)
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import subprocess
import sys
from typing import Sequence

from receiver.options import ExitRequest, StorescpOptions, UsageError, arguments_log_lines, parse_args
from spoolscp import logs, parentdeath
from spoolscp.settings import ConfigError, Settings, load_settings

log = logging.getLogger("spoolscp")

SUBCOMMANDS = ("receiver", "worker", "queue")

# Options whose issue has not landed yet: refused, never silently ignored.
NOT_SUPPORTED_YET = {
    "--log-config", "--inetd", "--access-full", "--access-control",
}
TLS_PREFIX = ("--enable-tls", "--disable-tls")


def fatal(message: str) -> int:
    log.critical(message)
    return 1


def parse_storescp(argv: Sequence[str], argv0: str) -> StorescpOptions:
    """storescp's options, with DCMTK's usage errors; refuses what is not built yet."""
    opts = parse_args(list(argv), argv0=argv0)
    pending = sorted(name for name in opts.given if name in NOT_SUPPORTED_YET or name.startswith(TLS_PREFIX))
    if pending:
        raise UsageError(f"{pending[0]} not supported yet by spoolscp")
    return opts


def settings_for(opts: StorescpOptions) -> Settings:
    return load_settings(opts.config, state_dir=opts.state_dir, workers=opts.workers)


def run_receiver(opts: StorescpOptions, settings: Settings) -> int:
    from receiver.server import StartupError, serve
    from workers.app import open_queue

    queue = open_queue(settings)
    try:  # a killed predecessor's last wake-ups: found now, not at the reconciler's next minute
        queue.tasks.reconcile()
    except Exception as exc:  # noqa: BLE001 - the minute's run finds them anyway
        log.warning("could not ask the workers for a reconciliation: %s", exc)
    try:
        return serve(opts, settings, queue.enqueue)
    except StartupError as exc:
        return fatal(str(exc))


def worker_argv(opts: StorescpOptions, settings: Settings) -> list[str]:
    """The command line of the worker child, sharing the supervisor's settings."""
    argv = [sys.executable, "-m", "spoolscp", "worker", "--state-dir", str(settings.state_dir)]
    if settings.config_file:
        argv += ["--config", str(settings.config_file)]
    return argv + ["--workers", str(settings.workers), "-ll", opts.log_level]


def run_all(opts: StorescpOptions, settings: Settings) -> int:
    """Receiver in this process, the worker pool as a child that dies with it."""
    # in the child before its exec: if the supervisor is killed, the workers stop too
    child = subprocess.Popen(worker_argv(opts, settings),
                             preexec_fn=functools.partial(parentdeath.die_with, os.getpid(), signal.SIGTERM))
    try:
        return run_receiver(opts, settings)
    finally:
        child.send_signal(signal.SIGTERM)  # graceful for the consumer: running tasks finish
        try:
            child.wait(timeout=settings.shutdown_timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def storescp_main(argv: Sequence[str], mode: str) -> int:
    try:
        opts = parse_storescp(argv, sys.argv[0])
    except ExitRequest as req:
        (sys.stdout if req.code == 0 else sys.stderr).write(req.text)
        return req.code
    except UsageError as err:
        sys.stderr.write(err.render())
        return err.exit_code
    logs.setup(opts.log_level)
    if opts.arguments:
        for line in arguments_log_lines(sys.argv[0], argv):
            sys.stderr.write(line + "\n")
    try:
        settings = settings_for(opts)
    except ConfigError as exc:
        return fatal(str(exc))
    return run_all(opts, settings) if mode == "all" else run_receiver(opts, settings)


def common_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--config", help="pipeline.toml to use")
    parser.add_argument("--state-dir", help="state folder (spool, queue, job table)")
    return parser


def worker_main(argv: Sequence[str]) -> int:
    """``spoolscp worker``: the Huey consumer; stop with SIGTERM (graceful) or SIGINT."""
    parser = common_parser("spoolscp worker")
    parser.add_argument("--workers", type=int, help="worker processes")
    parser.add_argument("-ll", "--log-level", default="warn", choices=list(logs.LEVELS))
    parser.add_argument("-q", "--quiet", dest="log_level", action="store_const", const="fatal")
    parser.add_argument("-v", "--verbose", dest="log_level", action="store_const", const="info")
    parser.add_argument("-d", "--debug", dest="log_level", action="store_const", const="debug")
    args = parser.parse_args(argv)
    logs.setup(args.log_level)
    try:
        settings = load_settings(args.config, state_dir=args.state_dir, workers=args.workers)
    except ConfigError as exc:
        return fatal(str(exc))
    from workers.app import children_die_with, open_queue
    from workers.recovery import jobs_with_messages
    from workers.tasks import run_reconcile

    os.nice(settings.worker_nice)  # inherited by the worker processes
    queue = open_queue(settings)
    run_reconcile(settings, queue.enqueue, jobs_with_messages(queue.huey))
    consumer = queue.huey.create_consumer(
        workers=settings.workers,
        worker_type="process",
        initial_delay=0.02,
        backoff=1.15,
        max_delay=settings.poll_max_delay,
        health_check_interval=1,
        graceful_signal="TERM",
        shutdown_timeout=settings.shutdown_timeout,
    )
    children_die_with(consumer)
    consumer.run()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "receiver":
        return storescp_main(args[1:], "receiver")
    if args and args[0] == "worker":
        return worker_main(args[1:])
    if args and args[0] == "queue":
        from spoolscp import queuecli

        return queuecli.main(args[1:])
    return storescp_main(args, "all")
