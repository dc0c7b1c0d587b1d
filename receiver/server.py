"""The receiver process: a pynetdicom server configured like storescp, stopped cleanly.

>>> serve(opts, settings)      # doctest: +SKIP  (blocks until SIGTERM or SIGINT)
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from pynetdicom import AE, _config, evt

from receiver import (acceptor, commands, connection, datasettimeout, diskfull, dropfolder, handlers, inline_dul,
                      prefork, pynetdicom_fixes, testoptions)
from receiver.acceptor import AcceptorPolicy
from receiver.acceptpool import PoolAwareAE
from receiver.negotiation import VERIFICATION, DefaultRules, ProfileRules, Rules, preference
from receiver.profiles import ProfileError
from receiver.profiles import load as load_profile
from receiver.wakeups import AfterAnswer
from receiver.options import StorescpOptions
from spoolscp import identity, jobs
from spoolscp.settings import Settings

log = logging.getLogger("spoolscp.receiver")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
SIGNAL_POLL_S = 0.2  # how soon the main thread runs a stop signal's handler that another thread caught


class StartupError(Exception):
    """A fatal start-up problem, logged as ``F: <message>`` with exit code 1."""


def output_options(opts: StorescpOptions) -> dict[str, Any]:
    """The options that shape the output, recorded with every job for the workers."""
    out_dir = opts.output_directory.rstrip("/") or "/"
    return {
        "output_dir": str(Path(out_dir).absolute()),
        "output_dir_display": out_dir,
        "naming": "unique" if opts.unique_filenames else "time" if opts.timenames else "default",
        "extension": opts.filename_extension,
        "ignore": opts.ignore,
        "sort": opts.sort,
        "sort_prefix": opts.sort_prefix,
        "exec_on_reception": opts.exec_on_reception,
        "exec_on_eostudy": opts.exec_on_eostudy,
        "rename_on_eostudy": opts.rename_on_eostudy,
        "eostudy_timeout": opts.eostudy_timeout,
        "exec_sync": opts.exec_sync,
        "encoding": {
            "xfer": opts.write_xfer,
            "new_vr": opts.enable_new_vr,
            "group_length": opts.group_length,
            "explicit_length": opts.length_explicit,
            "padding": list(opts.padding) if opts.padding else None,
            "convert_un": opts.convert_un,
            "compression_level": opts.compression_level,
            "bit_preserving": opts.bit_preserving,
            "write_file": opts.write_file,
        },
    }


def check_output_directory(opts: StorescpOptions) -> None:
    """DCMTK's start-up checks of ``-od`` (spec §1.5 step 6)."""
    path = opts.output_directory.rstrip("/") or "/"
    if opts.output_directory != "." and not os.path.isdir(path):
        raise StartupError("specified output directory does not exist")
    if not opts.ignore and not os.access(path, os.W_OK):
        raise StartupError("specified output directory is not writeable")


def negotiation_rules(opts: StorescpOptions) -> Rules:
    """The ``-xf`` profile (read now: its errors are fatal at start-up), else the prefer list."""
    if opts.config_file is None:
        return DefaultRules(opts.prefer, opts.promiscuous)
    try:
        return ProfileRules(load_profile(*opts.config_file))
    except ProfileError as exc:
        raise StartupError(str(exc)) from None


def build_ae(opts: StorescpOptions, rules: Rules | None = None) -> AE:
    """An AE that negotiates like storescp with these options (:mod:`receiver.acceptor`)."""
    pynetdicom_fixes.install()
    acceptor.install()
    connection.install()
    inline_dul.install()  # after connection.install: it wraps the reactor that one installs
    commands.install()
    _config.UNRESTRICTED_STORAGE_SERVICE = True  # a C-STORE is served on any accepted context (§2.6)
    # pynetdicom's own PDU/DIMSE log handlers run on every PDU; its log shows only with -d
    debug = logging.getLogger("pynetdicom").isEnabledFor(logging.DEBUG)
    _config.LOG_HANDLER_LEVEL = "standard" if debug else "none"
    ae = PoolAwareAE(ae_title=opts.aetitle)
    ae.storescp_policy = AcceptorPolicy(
        rules=rules or negotiation_rules(opts),
        refuse=opts.refuse,
        reject_without_implementation_uid=opts.reject,
        verbose_pc=opts.verbose_pc,
    )
    ae.storescp_tests = testoptions.TestOptions(
        opts.sleep_during, opts.sleep_after, opts.abort_during, opts.abort_after)
    ae.implementation_class_uid = identity.IMPLEMENTATION_CLASS_UID
    ae.implementation_version_name = identity.VERSION_NAME
    # spool files carry the output's meta group: one needing no re-encoding is linked, not copied
    ae.storescp_meta_version = identity.file_version_name(opts.bit_preserving)
    ae.require_called_aet = False
    ae.maximum_pdu_size = opts.max_pdu
    ae.acse_timeout = opts.acse_timeout
    ae.dimse_timeout = opts.dimse_timeout
    ae.storescp_dataset_timeout = opts.dimse_timeout  # -td: only while a data set arrives
    testoptions.install(ae.storescp_tests)  # these two hook DIMSE only when their options are given
    datasettimeout.install(ae.storescp_dataset_timeout)
    # -ts drops an idle association, except with -tos, whose polling never lets it expire
    idle_limit = opts.socket_timeout > 0 and opts.eostudy_timeout is None
    ae.network_timeout = opts.socket_timeout if idle_limit else None
    ae.add_supported_context(VERIFICATION, preference(opts.prefer))  # start_server wants one
    return ae


def prepare_spool(settings: Settings) -> None:
    """Point pynetdicom's chunked receive at our spool so a finished file is one rename away.

    Files left in ``incoming/`` by a receiver that died were never acknowledged: the
    sender still owns them, so they are deleted.
    """
    settings.incoming_dir.mkdir(parents=True, exist_ok=True)
    for leftover in settings.incoming_dir.iterdir():
        log.debug("removing unacknowledged partial reception %s", leftover.name)
        leftover.unlink(missing_ok=True)
    _config.STORE_RECV_CHUNKED_DATASET = True
    tempfile.tempdir = str(settings.incoming_dir)
    diskfull.install()


def serve(opts: StorescpOptions, settings: Settings, enqueue: Any) -> int:
    """Receive until SIGTERM/SIGINT, then stop accepting and let open associations finish."""
    rules = negotiation_rules(opts)
    check_output_directory(opts)
    prepare_spool(settings)
    if not opts.fork:
        return receive(opts, settings, enqueue, rules, None)
    try:
        listener = prefork.listening_socket((settings.bind, opts.port))
    except OSError as exc:
        raise StartupError(f"cannot create network: {exc.strerror or exc}") from exc
    once = replace(settings, dropfolder=None)  # the drop folder runs in one child only
    return prefork.run(listener, prefork.processes(), lambda sock, first: receive(
        opts, settings if first else once, enqueue, rules, sock))


def receive(opts: StorescpOptions, settings: Settings, enqueue: Any, rules: Rules,
            listener: socket.socket | None) -> int:
    """One receiver process: serve ``opts.port`` (or the ``--fork`` supervisor's socket)."""
    db = jobs.JobDB(settings.jobs_db, direct_writes=False)  # writes only in transactions: no PRAGMA toggles
    store = handlers.StoreHandler(
        spool_dir=settings.spool_dir,
        spool_in_db_max=settings.spool_in_db_max,
        jobs_db=db,
        enqueue=AfterAnswer(enqueue),
        output=output_options(opts),
        host_lookup=not opts.disable_host_lookup,
    )
    ae = build_ae(opts, rules)
    ae.maximum_associations = settings.max_associations
    try:
        server = prefork.start_server(ae, (settings.bind, opts.port), bound_handlers(ae, store), listener)
    except OSError as exc:
        raise StartupError(f"cannot create network: {exc.strerror or exc}") from exc
    folder = dropfolder.start_for(settings, store, opts.aetitle)
    gc.freeze()  # start-up objects (pydicom's dictionaries...) out of every later collection
    wait_for_stop_signal()
    if folder is not None:
        folder.stop()
    drain(server, settings.shutdown_timeout)
    db.close()
    return 0


def wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT.

    The wait has a timeout, as Huey's consumer does: the kernel may let any thread
    take a signal sent to the process, and CPython then runs the Python handler only
    when the main thread next runs bytecode. A main thread blocked in ``Event.wait()``
    without one never does, and the receiver would go on serving after a SIGTERM.
    """
    stop = threading.Event()
    for sig in STOP_SIGNALS:
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(SIGNAL_POLL_S):
        pass


def bound_handlers(ae: AE, store: handlers.StoreHandler) -> list[tuple]:
    """The receiver's handlers, the C-STORE one behind ``--abort-after`` if given."""
    return [(event, testoptions.store_handler(handler, ae.storescp_tests) if event is evt.EVT_C_STORE else handler)
            for event, handler in handlers.event_handlers(store)]


def drain(server: Any, timeout: float) -> None:
    """Stop accepting, wait up to ``timeout`` for open associations, then abort the rest.

    Aborted transfers were never acknowledged, so the sender still owns them.
    """
    server.shutdown()
    deadline = time.monotonic() + timeout
    while _transferring(server) and time.monotonic() < deadline:
        time.sleep(0.05)
    for assoc in _transferring(server):
        log.warning("aborting association still open at shutdown")
        assoc.abort()


def _transferring(server: Any) -> list[Any]:
    """Established associations: a connection that never sent A-ASSOCIATE-RQ (a port
    probe) has nothing to finish and would otherwise hold shutdown for the ACSE timeout."""
    return [a for a in server.active_associations if a.is_established]
