"""Side-by-side fidelity harness: DCMTK ``storescp`` (reference) against spoolscp (candidate).

Why this exists: spoolscp claims to be a drop-in replacement for ``storescp`` 3.6.9, so the only
honest oracle is DCMTK itself. This module runs both servers with the same options, sends the
same files to each with the same sender, waits until spoolscp's asynchronous workers are done,
and compares what a user would observe: the C-STORE status of every file, the tree of output
paths, four meta header elements and the data set bytes of every output file.

The reference is Debian's DCMTK 3.6.7 (``/usr/bin/storescp``), the target is 3.6.9. The few
documented differences between those versions (spec §13.6, the by-version TSV) are encoded once,
in :class:`VersionDifferences`; everything else must match.

Usage (see ``tests/test_fidelity.py``)::

    cmp = run_side_by_side(["+uf"], one_per_file(files), "dcmtk", tmp_path)
    assert cmp.ok, cmp.report()

The candidate can also be DCMTK (``candidate="dcmtk"``), which is how the harness checks itself.
"""

from __future__ import annotations

import contextlib
import csv
import functools
import hashlib
import io
import json
import logging
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import warnings
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

# --------------------------------------------------------------------------------------------
# Programs and constants
# --------------------------------------------------------------------------------------------

# Full paths: the venv has pynetdicom scripts of the same names that shadow DCMTK's.
DCMTK_STORESCP = "/usr/bin/storescp"
DCMTK_STORESCU = "/usr/bin/storescu"
REPO = Path(__file__).resolve().parent.parent
SPOOLSCP = os.environ.get("SPOOLSCP", str(REPO / ".venv" / "bin" / "spoolscp"))
SOP_CLASSES_TSV = REPO / "spoolscp" / "data" / "storescp-sop-classes-by-version.tsv"

TARGET_VERSION = "3.6.9"  # what spoolscp imitates
HOST = "127.0.0.1"
DEFLATED_TS = "1.2.840.10008.1.2.1.99"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0

Sender = Literal["dcmtk", "pynetdicom"]
ServerKind = Literal["dcmtk", "spoolscp"]

# Statuses that are not a DIMSE status: what the sender saw instead of a C-STORE-RSP.
NO_CONTEXT = "no-context"  # association up, but no accepted presentation context for the file
ASSOC_REJECTED = "assoc-rejected"  # A-ASSOCIATE-RJ
ASSOC_FAILED = "assoc-failed"  # no association (abort, connection refused, timeout)
NO_RESPONSE = "no-response"  # request sent, no C-STORE-RSP (abort, timeout)
NOT_SENT = "not-sent"  # the sender could not read or did not try the file
SUCCESS = "0x0000"


def dcmtk_env() -> dict[str, str]:
    """DCMTK without TCP_NODELAY waits ~40 ms per message (Nagle + delayed ACK)."""
    return {**os.environ, "TCP_NODELAY": "1"}


def is_success(status: str) -> bool:
    """storescp never sends warnings (spec §2.9), so only 0x0000 is a success."""
    return status == SUCCESS


# --------------------------------------------------------------------------------------------
# Documented differences between the reference (Debian 3.6.7) and the target (3.6.9)
# --------------------------------------------------------------------------------------------

# +xa in 3.6.9 accepts these transfer syntaxes, 3.6.7 does not (spec §2.4): fragmentable MPEG,
# HTJ2K, JPEG XL, encapsulated uncompressed.
XA_ONLY_IN_369 = frozenset(
    "1.2.840.10008.1.2." + s
    for s in (
        "4.100.1 4.101.1 4.102.1 4.103.1 4.104.1 4.105.1 4.106.1 "
        "4.201 4.202 4.203 4.110 4.111 4.112 1.1.98"
    ).split()
)
# Implementation Class UID (0002,0012) and Version Name (0002,0013) per version (spec §10.1).
IMPLEMENTATION = {
    "3.6.7": ("1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367"),
    "3.6.9": ("1.2.276.0.7230010.3.0.3.6.9", "OFFIS_DCMTK_369"),
}
_DEB_UID_CHARS = re.compile(r"[^A-Za-z0-9 .:@-]")


@dataclass(frozen=True)
class VersionDifferences:
    """The ONE place that lists what may legitimately differ between two DCMTK versions.

    Every rule says why, and each is a translation or an expectation, never an "ignore":

    * accepted classes: classes whose ``accepted_by_default`` is yes only in the candidate's
      version are refused by the reference (no presentation context) and must be stored by the
      candidate (TSV; 186 vs 199 classes);
    * ``+xa`` transfer syntaxes: :data:`XA_ONLY_IN_369`, same consequence, for a sender that
      proposes only the file's own transfer syntax (pynetdicom);
    * file name codes: the reference names a file with its version's code, the candidate with
      its own (``PA`` → ``PAp`` for Protocol Approval, ``UNKNOWN`` → new codes) (TSV);
    * SOP Instance UID sanitising in file names: Debian maps every character outside
      ``[A-Za-z0-9 .:@-]`` to ``_``, 3.6.9 only ``/``; the spec allows the candidate either;
    * meta (0002,0012)/(0002,0013): each side must carry its own version's values (§10.1).

    With the same version on both sides (the self-check) every rule is the identity.
    """

    reference: str
    candidate: str
    codes: dict[str, dict[str, str]]  # version -> SOP class UID -> filename code
    accepted: dict[str, frozenset[str]]  # version -> classes accepted by default

    @classmethod
    def load(cls, reference: str, candidate: str) -> VersionDifferences:
        """Read the by-version TSV shipped in the repo (identical to the shared spec's)."""
        codes: dict[str, dict[str, str]] = {"3.6.7": {}, "3.6.9": {}}
        accepted: dict[str, set[str]] = {"3.6.7": set(), "3.6.9": set()}
        with SOP_CLASSES_TSV.open(newline="") as fh:
            for row in csv.DictReader(fh, delimiter="\t"):
                for version in codes:
                    codes[version][row["sop_class_uid"]] = row[f"code_{version}"]
                    if row[f"accepted_by_default_{version}"] == "yes":
                        accepted[version].add(row["sop_class_uid"])
        for version in (reference, candidate):
            if version not in codes:
                raise ValueError(f"no SOP class table for DCMTK {version}")
        return cls(reference, candidate, codes, {v: frozenset(s) for v, s in accepted.items()})

    def code(self, version: str, sop_class: str) -> str:
        """The file name code; UNKNOWN for classes outside the table (spec §4)."""
        return self.codes[version].get(sop_class, "UNKNOWN")

    def only_candidate_accepts(self, sop_class: str, ts: str, options: Sequence[str],
                               sender: Sender) -> bool:
        """True if the reference must refuse what the candidate must accept (by version)."""
        if sop_class in self.accepted[self.candidate] - self.accepted[self.reference]:
            return True
        xa_only = XA_ONLY_IN_369 if (self.reference, self.candidate) == ("3.6.7", "3.6.9") else ()
        return ("+xa" in options or "--accept-all" in options) and sender == "pynetdicom" \
            and ts in xa_only

    def candidate_codes(self, reference_code: str, sop_class: str | None) -> set[str]:
        """Codes the candidate may use where the reference used ``reference_code``."""
        if sop_class is None or reference_code != self.code(self.reference, sop_class):
            return {reference_code}
        return {self.code(self.candidate, sop_class)}

    def candidate_uid_tokens(self, reference_token: str, request_uids: dict[str, str]) -> set[str]:
        """UID parts of a default file name the candidate may write for the reference's part.

        ``request_uids`` maps Debian-sanitised UIDs back to the UIDs that were sent.
        """
        raw = request_uids.get(reference_token)
        if raw is None or self.reference == self.candidate:
            return {reference_token}
        return {reference_token, raw.replace("/", "_")}

    def implementation(self, version: str, bit_preserving: bool = False) -> tuple[str, str]:
        """(0002,0012), (0002,0013) a file written by ``version`` must carry (``+B``: DCMBP)."""
        uid, name = IMPLEMENTATION[version]
        return (uid, name.replace("OFFIS_DCMTK_", "OFFIS_DCMBP_")) if bit_preserving else (uid, name)


def deb_sanitise_uid(uid: str) -> str:
    """Debian 3.6.7's file name sanitiser for SOP Instance UIDs (spec §4.1)."""
    return _DEB_UID_CHARS.sub("_", uid)


@functools.cache
def dcmtk_version() -> str:
    """Version of the installed reference, from ``storescp --version`` (e.g. ``3.6.7``)."""
    out = subprocess.run([DCMTK_STORESCP, "--version"], capture_output=True, text=True,
                         env=dcmtk_env(), check=False).stdout
    match = re.search(r"storescp v(\d+\.\d+\.\d+)", out)
    if not match:
        raise RuntimeError(f"cannot read the DCMTK version from: {out!r}")
    return match.group(1)


# --------------------------------------------------------------------------------------------
# Input corpus
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputFile:
    """One Part-10 file to send, with the UIDs the senders may put in the request."""

    path: Path
    sop_class: str  # meta (0002,0002)
    meta_uid: str  # meta (0002,0003): pynetdicom's request UID
    dataset_uid: str | None  # (0008,0018): storescu's request UID, and the output's (0002,0003)
    ts: str  # meta (0002,0010)

    @property
    def uids(self) -> set[str]:
        """UIDs an output attributed to this input may carry in its name or meta."""
        return {u for u in (self.meta_uid, self.dataset_uid) if u}


def read_input(path: Path) -> InputFile | None:
    """Describe ``path`` if it is a real Part-10 file (preamble, DICM, meta with TS/class/UID)."""
    from pydicom import dcmread
    from pydicom.filereader import read_file_meta_info
    from pydicom.misc import is_dicom

    if not path.is_file() or not is_dicom(path):
        return None
    try:
        meta = read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - any unreadable meta is "not a Part-10 file"
        return None
    keys = ("TransferSyntaxUID", "MediaStorageSOPClassUID", "MediaStorageSOPInstanceUID")
    if not all(k in meta for k in keys):
        return None
    try:
        with warnings.catch_warnings():  # odd corpus files warn; they are sent as they are
            warnings.simplefilter("ignore")
            ds = dcmread(path, stop_before_pixels=True, specific_tags=["SOPInstanceUID"])
        dataset_uid = str(ds.SOPInstanceUID) if "SOPInstanceUID" in ds else None
    except Exception:  # noqa: BLE001 - a broken data set is still worth sending
        dataset_uid = None
    return InputFile(path, str(meta.MediaStorageSOPClassUID),
                     str(meta.MediaStorageSOPInstanceUID), dataset_uid,
                     str(meta.TransferSyntaxUID))


def part10_inputs(paths: Sequence[str | Path]) -> list[InputFile]:
    """Keep only real Part-10 files, in the given order (sorted by the caller if wanted)."""
    found = (read_input(Path(p)) for p in paths)
    return [f for f in found if f is not None]


def pydicom_corpus() -> list[InputFile]:
    """pydicom's bundled test files that are real Part-10 files, sorted by path."""
    from pydicom.data import get_testdata_files

    return part10_inputs(sorted(get_testdata_files()))


# pydicom's SC_rgb_jpeg.dcm says JPEG Baseline (explicit VR) but its data set is implicit VR.
# pynetdicom's send_c_store(path) reads it with dcmread, which warns in the sending test; a test
# that sends it with pynetdicom to a server accepting JPEG ignores exactly this warning.
CORPUS_IMPLICIT_VR_AS_EXPLICIT = "ignore:Expected explicit VR, but found implicit VR:UserWarning"


def one_per_file(files: Sequence[InputFile]) -> list[list[InputFile]]:
    """The usual plan: one association per file, in order."""
    return [[f] for f in files]


# --------------------------------------------------------------------------------------------
# Server processes
# --------------------------------------------------------------------------------------------

def free_port() -> int:
    """An ephemeral port on 127.0.0.1 (tiny race until the server binds it; acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def wait_accepting(port: int, proc: subprocess.Popen, timeout: float = START_TIMEOUT) -> None:
    """Poll until a TCP connect to ``port`` succeeds, failing fast if the server exited.

    The probe connection shows up once in the server's log (storescp -v: ``Association
    Received``); :attr:`ServerProcess.log_offset` lets log comparisons skip it.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before accepting")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"server did not accept connections on {port} within {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = STOP_TIMEOUT) -> list[str]:
    """SIGTERM the PID, SIGKILL after ``timeout``; returns what went wrong while stopping.

    The server runs in its own session (pgid == pid), so processes it left behind (e.g.
    spoolscp workers surviving their parent) are found and killed by that group id, which
    only ever holds processes this harness started.
    """
    problems = []
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            problems.append(f"pid {proc.pid} ignored SIGTERM for {timeout}s; killed")
            _kill_group(proc.pid)
            proc.wait(timeout)
    if _group_alive(proc.pid):
        problems.append(f"pid {proc.pid} left processes running after it exited; killed")
        _kill_group(proc.pid)
    return problems


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


@dataclass
class ServerProcess:
    """A running (or finished) SCP: where it listens, writes and logs."""

    name: str
    kind: ServerKind
    version: str
    port: int
    workdir: Path  # the process's cwd; its output folder is workdir/out
    proc: subprocess.Popen
    config: Path | None = None  # spoolscp's TOML
    log_offset: int = 0  # stderr bytes written before the server was ready
    exit_code: int | None = None  # set when stopped; None while it runs
    stop_problems: list[str] = field(default_factory=list)

    @property
    def outdir(self) -> Path:
        return self.workdir / "out"

    @property
    def stdout_path(self) -> Path:
        return self.workdir / "stdout.log"

    @property
    def stderr_path(self) -> Path:
        return self.workdir / "stderr.log"

    def stderr_text(self, since_ready: bool = True) -> str:
        """The server's stderr (its log), by default without the startup part."""
        data = self.stderr_path.read_bytes()
        return data[self.log_offset if since_ready else 0:].decode("utf-8", "replace")

    def died(self) -> int | None:
        """Exit code if the server exited on its own while it should be running."""
        return self.proc.poll()


def _launch(name: str, kind: ServerKind, version: str, argv: list[str], workdir: Path,
            port: int, config: Path | None) -> ServerProcess:
    """Start ``argv`` in ``workdir`` with logs to files; outputs go to the relative ``out``.

    A relative ``-od`` keeps log lines such as ``storing DICOM file: out/CT.1.2`` identical on
    both sides, and exercises the drop-in rule that ``-od`` is relative to the cwd.
    """
    (workdir / "out").mkdir(parents=True, exist_ok=True)
    with (workdir / "stdout.log").open("wb") as out, (workdir / "stderr.log").open("wb") as err:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=err, env=dcmtk_env(),
                                stdin=subprocess.DEVNULL, start_new_session=True)
    server = ServerProcess(name, kind, version, port, workdir, proc, config)
    try:
        wait_accepting(port, proc)
    except BaseException:
        stop_process(proc)
        raise RuntimeError(f"{name} did not start: {argv}\n{server.stderr_text(False)}") from None
    server.log_offset = server.stderr_path.stat().st_size
    return server


def write_spoolscp_config(workdir: Path, workers: int = 2, extra: str = "",
                          spool_in_db_max: int | None = None) -> Path:
    """One TOML per server: its own state folder, loopback only.

    ``extra`` is appended right after ``[workers]``: keys before its first header go into
    ``[workers]`` (e.g. ``lease_seconds``), then further sections (``[retry]`` ...).
    ``spool_in_db_max=0`` spools every object as a file (the default holds small ones in
    jobs.db).
    """
    config = workdir / "spoolscp.toml"
    spool_limit = "" if spool_in_db_max is None else f"spool_in_db_max = {spool_in_db_max}\n"
    config.write_text(
        f'[state]\ndir = "{workdir / "state"}"\n{spool_limit}\n'
        f'[receiver]\nbind = "{HOST}"\n\n'
        f"[workers]\ncount = {workers}\n\n{extra}"
    )
    return config


@contextlib.contextmanager
def scp_server(kind: ServerKind, options: Sequence[str], workdir: Path,
               name: str | None = None, workers: int = 2,
               receiver_only: bool = False, extra_config: str = "",
               spool_in_db_max: int | None = None) -> Iterator[ServerProcess]:
    """Run DCMTK storescp or spoolscp with ``options`` on an ephemeral port until exit.

    ``options`` are storescp options without ``-od`` and port; the harness adds both.
    ``receiver_only`` runs ``spoolscp receiver`` (no workers; see :func:`worker_process`).
    ``extra_config`` is appended to spoolscp's TOML (e.g. a ``[retry]`` or ``[dropfolder]``);
    ``spool_in_db_max`` goes into its ``[state]``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    tail = [*options, "-od", "out", str(port)]
    if kind == "dcmtk":
        server = _launch(name or kind, kind, dcmtk_version(), [DCMTK_STORESCP, *tail],
                         workdir, port, None)
    else:
        config = write_spoolscp_config(workdir, workers, extra_config, spool_in_db_max)
        command = [SPOOLSCP, "receiver"] if receiver_only else [SPOOLSCP]
        server = _launch(name or kind, kind, TARGET_VERSION,
                         [*command, "--config", str(config), *tail], workdir, port, config)
    try:
        yield server
    finally:
        server.stop_problems = stop_process(server.proc)
        server.exit_code = server.proc.returncode


@contextlib.contextmanager
def worker_process(config: Path, workdir: Path, workers: int = 2) -> Iterator[subprocess.Popen]:
    """Run ``spoolscp worker`` on the state of ``config`` until the block ends.

    Its log goes to ``workdir/worker.log``; like the servers it runs in its own session, so
    :func:`stop_process` also finds the worker processes it forked.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with (workdir / "worker.log").open("ab") as log:
        proc = subprocess.Popen([SPOOLSCP, "worker", "--config", str(config), "--workers",
                                 str(workers)], cwd=workdir, stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield proc
    finally:
        stop_process(proc)


def wait_until(condition: Callable[[], object], timeout: float, what: str):
    """Poll ``condition`` until it returns something truthy, and return that; after
    ``timeout`` seconds raise ``TimeoutError(what)``."""
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)
    return found


def spoolscp_queue_stats(config: Path) -> dict[str, int]:
    """``spoolscp queue stats --json``: received/pending/scheduled/running/done/failed."""
    result = subprocess.run([SPOOLSCP, "queue", "stats", "--json", "--config", str(config)],
                            capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"spoolscp queue stats failed ({result.returncode}): {result.stderr}")
    return json.loads(result.stdout)


def wait_output_complete(server: ServerProcess, timeout: float = 300.0) -> dict[str, int]:
    """Block until every received object is written (or failed); DCMTK writes synchronously."""
    if server.kind == "dcmtk":
        return {}
    deadline = time.monotonic() + timeout
    while True:
        stats = spoolscp_queue_stats(server.config)
        busy = stats["pending"] + stats["scheduled"] + stats["running"]
        # done/failed also count ends of study and commands, hence >= received
        if busy == 0 and stats["done"] + stats["failed"] >= stats["received"]:
            return stats
        if server.died() is not None or time.monotonic() > deadline:
            raise TimeoutError(f"{server.name} output incomplete (exit {server.died()}): {stats}")
        time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Senders: one status per sent file
# --------------------------------------------------------------------------------------------

def send_dcmtk(port: int, files: Sequence[InputFile], log: Path,
               extra_args: Sequence[str] = ("-nh", "-td", "60")) -> list[str]:
    """One ``storescu`` association with ``files`` in order; statuses parsed from its -d log.

    -d is the only level at which storescu prints the numeric DIMSE status. ``-nh`` keeps
    storescu going after a failed store so that every file gets a status; ``-td`` turns a
    server that never answers into ``no-response`` instead of a hung test.
    """
    argv = [DCMTK_STORESCU, "-d", *extra_args, HOST, str(port), *(str(f.path) for f in files)]
    try:
        result = subprocess.run(argv, capture_output=True, env=dcmtk_env(), timeout=300,
                                check=False)
        out, err = result.stdout, result.stderr
    except subprocess.TimeoutExpired as exc:  # the child is killed; keep what it logged
        out, err = exc.stdout or b"", (exc.stderr or b"") + b"\nE: storescu killed (timeout)"
    text = err.decode("utf-8", "replace")
    with log.open("a") as fh:
        fh.write(f"$ {' '.join(argv)}\n{out.decode('utf-8', 'replace')}{text}\n")
    return parse_storescu_log(text, [str(f.path) for f in files])


_STATUS_LINE = re.compile(r"^D: DIMSE Status\s*:\s*0x([0-9a-fA-F]{4})")
# storescu errors meaning the request never (fully) left the sender: unreadable file, file
# without SOP UIDs, or a compressed file it cannot convert to the accepted transfer syntax.
_UNSENT_ERRORS = ("bad dicom file", "no sop class or instance uid", "failed to send message",
                  "unable to convert")


def _storescu_failure(errors: str) -> str:
    """Status label for a ``Sending file`` block that has no DIMSE status."""
    if "no presentation context" in errors:
        return NO_CONTEXT
    if any(e in errors for e in _UNSENT_ERRORS):
        return NOT_SENT
    return NO_RESPONSE


def parse_storescu_log(log: str, paths: Sequence[str]) -> list[str]:
    """Map storescu's ``Sending file:`` blocks to per-file statuses, in order.

    A block without ``DIMSE Status`` is a failure named after its error line; files that got
    no block at all share the reason the association ended (rejected, no contexts, ...).
    """
    statuses: list[str | None] = [None] * len(paths)
    current: int | None = None
    next_index = 0
    block_errors: list[str] = []
    fatal = ""

    def close_block() -> None:
        if current is not None and statuses[current] is None:
            statuses[current] = _storescu_failure(" ".join(block_errors).lower())

    for line in log.splitlines():
        if line.startswith("I: Sending file: "):
            close_block()
            path = line[len("I: Sending file: "):]
            while next_index < len(paths) and paths[next_index] != path:
                next_index += 1
            current, block_errors = (next_index, []) if next_index < len(paths) else (None, [])
            next_index += 1
        elif (match := _STATUS_LINE.match(line)) and current is not None:
            statuses[current] = f"0x{match.group(1).upper()}"
        elif line.startswith(("E: ", "F: ")):
            block_errors.append(line)
            fatal += line + "\n"
    close_block()
    unsent = (ASSOC_REJECTED if "Association Rejected" in fatal else
              NO_CONTEXT if "No Acceptable Presentation Contexts" in fatal else
              ASSOC_FAILED if "Association Request Failed" in fatal else NOT_SENT)
    return [s if s is not None else unsent for s in statuses]


def send_pynetdicom(port: int, files: Sequence[InputFile], log: Path,
                    ae_title: str = "PYNETDICOM",
                    after_each: Callable[[int], None] | None = None) -> list[str]:
    """One pynetdicom association proposing each file's own (class, TS); files sent by path.

    pynetdicom 3.0.4 (``STORE_SEND_CHUNKED_DATASET`` off) reads each file with ``dcmread``
    and encodes the data set again, deterministically: both servers get the same bytes,
    though not always the file's own (a file whose VR encoding contradicts its transfer
    syntax is sent re-encoded, with pydicom's warning). ``after_each(i)``
    runs after the i-th file, inside the association (e.g. to stay idle past ``-tos``).
    """
    from pynetdicom import AE

    logging.getLogger("pynetdicom").setLevel(logging.CRITICAL)
    ae = AE(ae_title=ae_title)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    for sop_class, ts in dict.fromkeys((f.sop_class, f.ts) for f in files):
        ae.add_requested_context(sop_class, ts)
    assoc = ae.associate(HOST, port)
    if not assoc.is_established:
        # pynetdicom aborts an accepted association in which every context was refused
        refused = assoc.rejected_contexts and not assoc.accepted_contexts
        status = ASSOC_REJECTED if assoc.is_rejected else NO_CONTEXT if refused else ASSOC_FAILED
        _log(log, f"association {status} for {[f.path.name for f in files]}")
        return [status] * len(files)
    try:
        statuses = []
        for i, f in enumerate(files):
            statuses.append(_pynetdicom_store(assoc, f, log))
            if after_each is not None:
                after_each(i)
        return statuses
    finally:
        if assoc.is_established:
            assoc.release()


def _pynetdicom_store(assoc, file: InputFile, log: Path) -> str:
    """C-STORE one file; exceptions and missing responses become status labels."""
    if not assoc.is_established:
        return NO_RESPONSE
    try:
        rsp = assoc.send_c_store(file.path)
    except ValueError as exc:  # raised when no accepted context fits the file
        _log(log, f"{file.path}: {exc}")
        return NO_CONTEXT if "presentation context" in str(exc).lower() else NOT_SENT
    except Exception as exc:  # noqa: BLE001 - e.g. pynetdicom cannot read the file
        _log(log, f"{file.path}: {type(exc).__name__}: {exc}")
        return NOT_SENT
    status = f"0x{rsp.Status:04X}" if "Status" in rsp else NO_RESPONSE
    _log(log, f"{file.path}: {status}")
    return status


def _log(log: Path, line: str) -> None:
    with log.open("a") as fh:
        fh.write(line + "\n")


SENDERS: dict[str, Callable[[int, Sequence[InputFile], Path], list[str]]] = {
    "dcmtk": send_dcmtk,
    "pynetdicom": send_pynetdicom,
}


def send_all(sender: Sender, port: int, plan: Sequence[Sequence[InputFile]],
             log: Path) -> list[list[str]]:
    """Send every association of ``plan`` in order; one status list per association."""
    return [SENDERS[sender](port, assoc_files, log) for assoc_files in plan]


# --------------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------------

_LONG_VRS = {b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR",
             b"UT", b"UV"}
META_COMPARED = {  # tag -> name; the meta elements that must be equal on both sides
    0x00020002: "(0002,0002) MediaStorageSOPClassUID",
    0x00020003: "(0002,0003) MediaStorageSOPInstanceUID",
    0x00020010: "(0002,0010) TransferSyntaxUID",
    0x00020016: "(0002,0016) SourceApplicationEntityTitle",
}


@dataclass
class OutputFile:
    """An output file reduced to what the comparison needs."""

    relpath: str
    has_meta: bool
    meta: dict[int, str]  # group 0002 element values as text (UIDs and AE titles)
    dataset: bytes  # everything after the meta group; inflated for deflated TS
    inflated: bool
    sop_class: str | None
    identity: str | None  # the data set's SOP Instance UID, to attribute the file to an input
    header: bytes = b""  # preamble, DICM and the meta group exactly as written

    @functools.cached_property
    def digest(self) -> str:
        """Hash of what the comparison looks at, to pair identical files cheaply."""
        compared = "|".join(self.meta.get(t, "") for t in META_COMPARED)
        return hashlib.sha256(compared.encode() + b"\0" + self.dataset).hexdigest()


def split_meta(data: bytes) -> tuple[dict[int, str], bytes] | None:
    """Walk the explicit-VR-LE group 0002 after ``DICM``; None if there is no Part-10 header.

    Parsed by hand, not with pydicom, so that the data set bytes are cut exactly where the
    file's own meta group ends, whatever its group length claims.
    """
    if len(data) < 132 or data[128:132] != b"DICM":
        return None
    meta: dict[int, str] = {}
    pos = 132
    while pos + 8 <= len(data) and int.from_bytes(data[pos:pos + 2], "little") == 0x0002:
        tag = (0x0002 << 16) | int.from_bytes(data[pos + 2:pos + 4], "little")
        vr = data[pos + 4:pos + 6]
        if vr in _LONG_VRS:
            length, start = int.from_bytes(data[pos + 8:pos + 12], "little"), pos + 12
        else:
            length, start = int.from_bytes(data[pos + 6:pos + 8], "little"), pos + 8
        value = data[start:start + length]
        meta[tag] = value.rstrip(b"\0 ").decode("latin-1") if vr not in {b"OB", b"UL"} \
            else value.hex()
        pos = start + length
    return meta, data[pos:]


def inflate(data: bytes) -> bytes | None:
    """Raw-deflate decode, or None if ``data`` is not one complete deflate stream."""
    decomp = zlib.decompressobj(-zlib.MAX_WBITS)
    try:
        out = decomp.decompress(data) + decomp.flush()
    except zlib.error:
        return None
    return out if decomp.eof and not decomp.unused_data.strip(b"\0") else None


def _dataset_uids(dataset: bytes) -> tuple[str | None, str | None]:
    """(SOPClassUID, SOPInstanceUID) of a bare data set (``-F`` output), best effort."""
    from pydicom import dcmread

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(io.BytesIO(dataset), force=True,
                         specific_tags=["SOPClassUID", "SOPInstanceUID"])
        return ds.get("SOPClassUID"), ds.get("SOPInstanceUID")
    except Exception:  # noqa: BLE001 - identity is only used to pair and attribute files
        return None, None


def read_output(root: Path, path: Path) -> OutputFile:
    """Load one output file; deflated data sets are compared inflated (spec: any deflate
    encoder may produce different bytes for the same content)."""
    data = path.read_bytes()
    relpath = path.relative_to(root).as_posix()
    split = split_meta(data)
    if split is not None:
        meta, dataset = split
        header = data[: len(data) - len(dataset)]
        inflated = meta.get(0x00020010) == DEFLATED_TS
        if inflated:
            dataset = inflate(dataset) or dataset
        return OutputFile(relpath, True, meta, dataset, inflated, meta.get(0x00020002),
                          meta.get(0x00020003), header)
    plain = inflate(data)  # -F output has no meta that would tell us it is deflated
    dataset = data if plain is None else plain
    sop_class, identity = _dataset_uids(dataset)
    return OutputFile(relpath, False, {}, dataset, plain is not None,
                      str(sop_class) if sop_class else None, str(identity) if identity else None)


def read_tree(root: Path) -> list[OutputFile]:
    """Every regular file under ``root``, by relative path (leftover temp files included)."""
    return [read_output(root, p) for p in sorted(root.rglob("*")) if p.is_file()]


# --------------------------------------------------------------------------------------------
# File names: which parts are fixed and which may differ (spec §4, §6)
# --------------------------------------------------------------------------------------------

_CODE = r"(?P<code>[A-Za-z0-9]{2,4}|UNKNOWN)"
_STAMP = r"(?P<date>\d{8})_(?P<time>\d{9})"  # -ss/-sp directory timestamp


@dataclass(frozen=True)
class NamingScheme:
    """What the storescp options say about output names.

    A *shape* is a relative path with the parts that legitimately differ between two runs
    replaced by placeholders: the generated UID of ``+uf``, the time of ``-tn``, the time in
    ``-ss``/``-sp`` folders (numbered by order, so the grouping into studies is still compared).
    """

    mode: Literal["default", "unique", "time"] = "default"
    ext: str = ""
    sort: Literal["ss", "su", "sp"] | None = None
    sort_prefix: str = ""
    renamed: bool = False  # -rns: ended studies hold <XY><NNNNNN> names (spec §9)

    @classmethod
    def from_options(cls, options: Sequence[str]) -> NamingScheme:
        """Naming-relevant options, rightmost wins like DCMTK's OFCommandLine."""
        mode, ext, sort, prefix = "default", "", None, ""
        flags = {"+uf": "unique", "--unique-filenames": "unique", "-uf": "default",
                 "--default-filenames": "default"}
        sorts = {"-ss": "ss", "--sort-conc-studies": "ss", "-su": "su",
                 "--sort-on-study-uid": "su", "-sp": "sp", "--sort-on-patientname": "sp"}
        for i, opt in enumerate(options):
            if opt in flags:
                mode = flags[opt]
            elif opt in ("-fe", "--filename-extension"):
                ext = options[i + 1]
            elif opt in sorts:
                sort = sorts[opt]
                prefix = options[i + 1] if sort != "sp" else ""
        if "-tn" in options or "--timenames" in options:
            mode = "time"  # not in the +uf/-uf group; storescp refuses -tn with +uf (§1.4)
        renamed = "-rns" in options or "--rename-on-eostudy" in options
        return cls(mode, ext, sort, prefix, renamed)

    def parse_file(self, name: str) -> dict[str, str] | None:
        """Split a file name into code / uid / stamp parts; None if it does not fit."""
        if self.renamed and (done := re.fullmatch(r"(?P<code>[A-Za-z0-9]{2})(?P<renamed>\d{6})", name)):
            return done.groupdict()  # no extension: -rns does not re-apply -fe
        if not name.endswith(self.ext):
            return None
        stem = name[:len(name) - len(self.ext)] if self.ext else name
        pattern = {
            "default": rf"{_CODE}\.(?P<uid>.+)",
            "unique": rf"{_CODE}\.X\.(?P<uid>[0-9]+(?:\.[0-9]+)+)",
            "time": rf"(?P<stamp>\d{{17}})(?:_(?P<serial>\d{{4,}}))?\.{_CODE}",
        }[self.mode]
        match = re.fullmatch(pattern, stem)
        if not match or (self.mode == "unique" and len(match["uid"]) > 64):
            return None
        if self.mode == "time" and not _valid_stamp(match["stamp"]):
            return None
        return match.groupdict()

    def file_shape(self, parts: dict[str, str], code: str, uid: str | None = None) -> str:
        """The file name with run-dependent parts replaced (code and uid may be translated)."""
        if "renamed" in parts:
            return f"{code[:2]}{parts['renamed']}"
        if self.mode == "default":
            return f"{code}.{parts['uid'] if uid is None else uid}{self.ext}"
        if self.mode == "unique":
            return f"{code}.X.<uid>{self.ext}"
        return f"<time>.{code}{self.ext}"

    def dir_shapes(self, dirs: set[str], reception: dict[str, int] | None = None) -> dict[str, str]:
        """Study folder -> shape; time-stamped folders are numbered in time order, or in
        ``reception`` order (folder -> when its first object arrived) if given.

        DCMTK's stamps are not always in time order: it takes the second from ``time()``
        (the kernel's coarse clock, a tick behind) and the fraction from ``gettimeofday()``,
        so a folder made in the first milliseconds of a second is stamped a second early
        (``…03001`` after ``…03809``). Its folders are therefore numbered by reception;
        spoolscp's, by their stamps, which must follow reception.
        """
        if self.sort not in ("ss", "sp"):
            return {d: d for d in dirs}
        stamped = {d: re.search(rf"{_STAMP}$", d) for d in dirs}
        found = {d: m.group(0) for d, m in stamped.items() if m}
        first = reception or {}
        in_order = sorted(found, key=lambda d: (first.get(d, math.inf), found[d]))
        order = list(dict.fromkeys(found[d] for d in in_order))
        return {d: (d[:m.start()] + f"<study#{order.index(m.group(0)) + 1}>") if m else d
                for d, m in stamped.items()}


def reception_order(files: list[OutputFile], plan: list[list[InputFile]]) -> dict[str, int]:
    """Folder -> send position of the first input whose output it holds (by instance UID)."""
    sent: dict[str, int] = {}
    for i, inp in enumerate(f for step in plan for f in step):
        for uid in inp.uids:
            sent.setdefault(uid, i)
    first: dict[str, int] = {}
    for f in files:
        folder = f.relpath.rpartition("/")[0]
        at = sent.get(f.identity or "", len(sent))
        first[folder] = min(first.get(folder, at), at)
    return first


def _valid_stamp(stamp: str) -> bool:
    """``YYYYMMDDHHMMSSmmm`` that is a real local date and time."""
    try:
        datetime.strptime(stamp[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------------------------
# Comparison
# --------------------------------------------------------------------------------------------

Side = Literal["reference", "candidate"]


@dataclass
class ShapedFile:
    """An output file with the shape used for pairing, and why its name is wrong (if it is)."""

    file: OutputFile
    shapes: set[str]  # acceptable shapes (a reference file may translate to several)
    name_problem: str | None = None


@dataclass
class FilePair:
    """A reference output and the candidate output it was paired with (either may be None)."""

    reference: OutputFile | None
    candidate: OutputFile | None
    differences: list[str] = field(default_factory=list)
    expected: str | None = None  # a documented version difference or deliberate deviation

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class InputReport:
    """One sent file: statuses and attributed outputs on both sides."""

    input: InputFile
    association: int
    reference_status: str
    candidate_status: str
    reference_paths: list[str]
    candidate_paths: list[str]
    problem: str | None = None
    expected: str | None = None  # documented version difference or deliberate deviation


@dataclass
class SideRun:
    """What one server produced: statuses per association, its output folder, its logs."""

    server: ServerProcess
    statuses: list[list[str]]
    sender_log: Path
    queue_stats: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass
class Comparison:
    """The result of a side-by-side run. ``recompare()`` re-reads the output folders."""

    options: list[str]
    sender: Sender
    plan: list[list[InputFile]]
    reference: SideRun
    candidate: SideRun
    versions: VersionDifferences
    scheme: NamingScheme
    inputs: list[InputReport] = field(default_factory=list)
    pairs: list[FilePair] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.recompare()

    @property
    def problems(self) -> list[str]:
        """Server-level problems: a crash, an incomplete queue, the candidate's messy shutdown.

        The reference's shutdown is not under test (e.g. its ``-xcr`` children may still run).
        """
        return [f"{run.server.name}: {p}" for run in (self.reference, self.candidate)
                for p in run.problems] + self.candidate.server.stop_problems

    @property
    def mismatches(self) -> list[InputReport | FilePair]:
        bad_inputs: list[InputReport | FilePair] = [r for r in self.inputs if r.problem]
        return bad_inputs + [p for p in self.pairs if not p.ok]

    @property
    def ok(self) -> bool:
        return not self.problems and not self.mismatches

    def recompare(self) -> None:
        """(Re)build input reports and file pairs from the statuses and the folders on disk."""
        ref = read_tree(self.reference.server.outdir)
        cand = read_tree(self.candidate.server.outdir)
        self.pairs = pair_outputs(ref, cand, self)
        self.inputs = report_inputs(self, ref, cand)

    def report(self) -> str:
        """A readable table of every mismatch, for assertion messages."""
        return format_report(self)


def _attributed(inp: InputFile, files: list[OutputFile], scheme: NamingScheme) -> list[str]:
    """Outputs that belong to ``inp``: same instance UID in content, or in a default name.

    Only for the report: inputs that share an instance UID share their outputs here. Pass or
    fail comes from the statuses and from pairing the whole trees.
    """
    name_uids = inp.uids | {deb_sanitise_uid(u) for u in inp.uids}
    found = []
    for f in files:
        parts = scheme.parse_file(f.relpath.rpartition("/")[2]) if scheme.mode == "default" \
            else None
        if f.identity in inp.uids or (parts is not None and parts.get("uid") in name_uids):
            found.append(f.relpath)
    return found


def report_inputs(cmp: Comparison, ref: list[OutputFile],
                  cand: list[OutputFile]) -> list[InputReport]:
    """Per sent file: compare statuses, applying the version rules for one-sided acceptance."""
    reports = []
    ref_statuses = [s for assoc in cmp.reference.statuses for s in assoc]
    cand_statuses = [s for assoc in cmp.candidate.statuses for s in assoc]
    numbered = [(i, f) for i, files in enumerate(cmp.plan) for f in files]
    for (assoc, inp), r_status, c_status in zip(numbered, ref_statuses, cand_statuses, strict=True):
        report = InputReport(inp, assoc, r_status, c_status, _attributed(inp, ref, cmp.scheme),
                             _attributed(inp, cand, cmp.scheme))
        if cmp.versions.only_candidate_accepts(inp.sop_class, inp.ts, cmp.options, cmp.sender):
            report.expected = (f"accepted by default only by DCMTK {cmp.versions.candidate}"
                               f" (class or +xa transfer syntax)")
            if r_status != NO_CONTEXT or c_status in (NO_CONTEXT, ASSOC_REJECTED):
                report.problem = (f"expected the reference to refuse and the candidate to accept;"
                                  f" got {r_status} / {c_status}")
        elif r_status == NO_RESPONSE and c_status == CANNOT_UNDERSTAND:
            report.expected = BROKEN_DATA_SET_REFUSED
        elif r_status != c_status:
            report.problem = f"status {r_status} vs {c_status}"
        reports.append(report)
    return reports


# Deliberate deviations listed in README "Differences from DCMTK storescp": the harness
# expects them instead of matching DCMTK, and says so in its report.
CANNOT_UNDERSTAND = "0xC000"
BROKEN_DATA_SET_REFUSED = ("deliberate: a data set DCMTK fails to receive (no response) is refused"
                           " with 0xC000 and nothing is written")
EARLIER_FILE_KEPT = ("deliberate: DCMTK deletes the earlier good file when a later transfer of the"
                     " same instance fails (spec §4.6); spoolscp keeps it")


def _kept_after_failed_resend(present: OutputFile, cmp: Comparison) -> bool:
    """Did an input with this file's instance UID succeed on both sides before a later
    input with the same UID got no response from DCMTK (which then deleted the file)?"""
    ref_statuses = [s for assoc in cmp.reference.statuses for s in assoc]
    cand_statuses = [s for assoc in cmp.candidate.statuses for s in assoc]
    stored = False
    for inp, r_status, c_status in zip((f for step in cmp.plan for f in step), ref_statuses,
                                       cand_statuses):
        if present.identity not in inp.uids:
            continue
        if r_status == c_status == SUCCESS:
            stored = True
        elif stored and r_status == NO_RESPONSE and c_status == CANNOT_UNDERSTAND:
            return True
    return False


def shape_files(files: list[OutputFile], side: Side, cmp: Comparison) -> list[ShapedFile]:
    """Give every file its shape(s); reference shapes are translated to the candidate version."""
    scheme, versions = cmp.scheme, cmp.versions
    reception = reception_order(files, cmp.plan) if side == "reference" else None
    dirs = scheme.dir_shapes({f.relpath.rpartition("/")[0] for f in files}, reception)
    request_uids = {deb_sanitise_uid(u): u for step in cmp.plan for f in step for u in f.uids}
    shaped = []
    for f in files:
        folder, _, name = f.relpath.rpartition("/")
        prefix = f"{dirs[folder]}/" if folder else ""
        parts = scheme.parse_file(name)
        if parts is None:
            shaped.append(ShapedFile(f, {f.relpath}, f"name does not fit {scheme.mode!r} naming"))
            continue
        if side == "candidate":
            shaped.append(ShapedFile(f, {prefix + scheme.file_shape(parts, parts["code"])}))
            continue
        codes = versions.candidate_codes(parts["code"], f.sop_class)
        uids = (versions.candidate_uid_tokens(parts["uid"], request_uids)
                if "uid" in parts and scheme.mode == "default" else {None})
        shaped.append(ShapedFile(f, {prefix + scheme.file_shape(parts, c, u)
                                     for c in codes for u in uids}))
    return shaped


def pair_outputs(ref: list[OutputFile], cand: list[OutputFile],
                 cmp: Comparison) -> list[FilePair]:
    """Pair reference and candidate files by shape; inside a shape by content, then identity.

    Exact names make every shape unique. For ``+uf``/``-tn`` a shape holds many files, so
    identical content pairs first (over all files), then equal instance UIDs, then name order;
    whatever is left over is a one-sided file, which is a mismatch (wrong count).
    """
    by_shape: dict[str, list[ShapedFile]] = defaultdict(list)
    for c in shape_files(cand, "candidate", cmp):
        by_shape[next(iter(c.shapes))].append(c)
    unmatched = shape_files(ref, "reference", cmp)
    pairs: list[FilePair] = []
    for same in (_same_content, _same_identity, lambda r, c: True):
        still = []
        for r in unmatched:
            pool = [c for s in sorted(r.shapes) for c in by_shape.get(s, []) if same(r, c)]
            if not pool:
                still.append(r)
                continue
            match = min(pool, key=lambda c: c.file.relpath)
            by_shape[next(iter(match.shapes))].remove(match)
            pairs.append(compare_pair(r, match, cmp))
        unmatched = still
    pairs += [_one_sided(r, None, cmp) for r in unmatched]
    pairs += [_one_sided(None, c, cmp) for group in by_shape.values() for c in group]
    return pairs


def _same_content(r: ShapedFile, c: ShapedFile) -> bool:
    return r.file.digest == c.file.digest


def _same_identity(r: ShapedFile, c: ShapedFile) -> bool:
    return r.file.identity == c.file.identity


def _one_sided(ref: ShapedFile | None, cand: ShapedFile | None, cmp: Comparison) -> FilePair:
    """A file only one side wrote; expected only for inputs only the candidate version accepts."""
    present = (ref or cand).file
    pair = FilePair(ref.file if ref else None, cand.file if cand else None)
    accepted_by_candidate_only = any(
        cmp.versions.only_candidate_accepts(i.sop_class, i.ts, cmp.options, cmp.sender)
        and present.identity in i.uids for step in cmp.plan for i in step)
    if cand is not None and accepted_by_candidate_only and cand.name_problem is None:
        pair.expected = f"accepted by default only by DCMTK {cmp.versions.candidate}"
        return pair
    if cand is not None and cand.name_problem is None and _kept_after_failed_resend(present, cmp):
        pair.expected = EARLIER_FILE_KEPT
        return pair
    side = "reference" if ref else "candidate"
    pair.differences.append(f"only the {side} wrote {present.relpath}")
    for shaped in (ref, cand):
        if shaped and shaped.name_problem:
            pair.differences.append(shaped.name_problem)
    return pair


def compare_pair(ref: ShapedFile, cand: ShapedFile, cmp: Comparison) -> FilePair:
    """Meta elements, implementation identifiers per version, data set bytes, name checks."""
    pair = FilePair(ref.file, cand.file)
    diff = pair.differences
    diff += [p for p in (ref.name_problem, cand.name_problem) if p]
    r, c = ref.file, cand.file
    if r.has_meta != c.has_meta:
        diff.append(f"meta header present: {r.has_meta} vs {c.has_meta}")
    for tag, name in META_COMPARED.items():
        if r.meta.get(tag) != c.meta.get(tag):
            diff.append(f"{name}: {r.meta.get(tag)!r} vs {c.meta.get(tag)!r}")
    for side, f in (("reference", r), ("candidate", c)):
        diff += _implementation_problems(side, f, cmp)
    if not diff and r.has_meta and c.has_meta:
        diff += _header_byte_problems(r, c, cmp)
    if r.dataset != c.dataset:
        diff.append(_describe_byte_difference(r.dataset, c.dataset, r.inflated or c.inflated))
    return pair


def _bit_preserving(options: Sequence[str]) -> bool:
    """storescp's ``+B``/``-B``: the rightmost one wins."""
    modes = [o in ("+B", "--bit-preserving") for o in options if o in ("+B", "--bit-preserving", "-B", "--normal")]
    return bool(modes) and modes[-1]


def _implementation_problems(side: Side, f: OutputFile, cmp: Comparison) -> list[str]:
    """(0002,0012)/(0002,0013) must name the writer's own DCMTK version (spec §10.1)."""
    if not f.has_meta:
        return []
    version = (cmp.reference if side == "reference" else cmp.candidate).server.version
    expected = cmp.versions.implementation(version, _bit_preserving(cmp.options))
    got = (f.meta.get(0x00020012), f.meta.get(0x00020013))
    return [] if got == expected else [f"{side} implementation {got} != {version}'s {expected}"]


def _header_byte_problems(r: OutputFile, c: OutputFile, cmp: Comparison) -> list[str]:
    """Equal meta values are not enough: the header bytes (padding, order, group length)
    must be the reference's, with the implementation identifiers of the candidate version."""
    bit_preserving = _bit_preserving(cmp.options)
    expected = r.header
    for old, new in zip(cmp.versions.implementation(cmp.reference.server.version, bit_preserving),
                        cmp.versions.implementation(cmp.candidate.server.version, bit_preserving)):
        expected = expected.replace(old.encode(), new.encode())
    if c.header == expected:
        return []
    first = next((i for i, (x, y) in enumerate(zip(expected, c.header)) if x != y),
                 min(len(expected), len(c.header)))
    return [f"meta header bytes differ at offset {first} (lengths {len(expected)} vs {len(c.header)})"]


def _describe_byte_difference(a: bytes, b: bytes, inflated: bool) -> str:
    """Where two data sets first differ, with a few bytes of context."""
    first = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    what = "inflated data set" if inflated else "data set"
    return (f"{what} bytes differ at offset {first} (lengths {len(a)} vs {len(b)}):"
            f" {a[first:first + 8].hex()} vs {b[first:first + 8].hex()}")


def format_report(cmp: Comparison) -> str:
    """Mismatch table: one row per problem input or file pair."""
    lines = [f"options={cmp.options} sender={cmp.sender} inputs="
             f"{sum(len(a) for a in cmp.plan)} reference={cmp.reference.server.version}"
             f" candidate={cmp.candidate.server.kind} {cmp.candidate.server.version}"
             f" queue={cmp.candidate.queue_stats or '-'}"
             f" logs={cmp.reference.server.workdir.parent}"]
    lines += [f"PROBLEM: {p}" for p in cmp.problems]
    bad_inputs = [r for r in cmp.inputs if r.problem]
    if bad_inputs:
        lines.append(f"{len(bad_inputs)} input(s) with different outcomes:")
        lines.append(_table(["#", "input", "reference", "candidate", "problem"],
                            [[str(r.association), r.input.path.name,
                              f"{r.reference_status} {','.join(r.reference_paths) or '-'}",
                              f"{r.candidate_status} {','.join(r.candidate_paths) or '-'}",
                              r.problem or ""] for r in bad_inputs]))
    bad_pairs = [p for p in cmp.pairs if not p.ok]
    if bad_pairs:
        lines.append(f"{len(bad_pairs)} output file(s) that differ:")
        lines.append(_table(["reference file", "candidate file", "differences"],
                            [[p.reference.relpath if p.reference else "-",
                              p.candidate.relpath if p.candidate else "-",
                              "; ".join(p.differences)] for p in bad_pairs]))
    expected = [r for r in cmp.inputs if r.expected] + [p for p in cmp.pairs if p.expected]
    if expected:
        lines.append(f"{len(expected)} documented version difference(s) or deliberate"
                     " deviation(s), not mismatches")
    if len(lines) == 1:
        lines.append("no mismatches")
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]], width: int = 90) -> str:
    """Plain aligned text table; long cells are cut so that one row stays one line."""
    rows = [[cell if len(cell) <= width else cell[:width - 3] + "..." for cell in row]
            for row in rows]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join([fmt.format(*header), "-+-".join("-" * w for w in widths),
                      *(fmt.format(*r) for r in rows)])


# --------------------------------------------------------------------------------------------
# The one-call helper
# --------------------------------------------------------------------------------------------

def _run_side(server: ServerProcess, sender: Sender, plan: Sequence[Sequence[InputFile]],
              results: dict[str, SideRun]) -> None:
    """Send the plan to one server (in its own thread) and record statuses."""
    log = server.workdir / f"sender-{sender}.log"
    try:
        statuses = send_all(sender, server.port, plan, log)
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        statuses = [[NOT_SENT] * len(a) for a in plan]
        results[server.name] = SideRun(server, statuses, log, problems=[f"sender crashed: {exc!r}"])
        return
    results[server.name] = SideRun(server, statuses, log)


def run_side_by_side(options: Sequence[str], plan: Sequence[Sequence[InputFile]],
                     sender: Sender, workdir: Path, candidate: ServerKind | None = None,
                     completion_timeout: float = 300.0) -> Comparison:
    """Run reference storescp and the candidate with ``options``, send ``plan`` to both.

    ``plan`` is a list of associations, each a list of files sent in that order. Both sides are
    fed in parallel (each side strictly in plan order). The candidate defaults to spoolscp, or
    to ``$SIDEBYSIDE_CANDIDATE`` (``dcmtk`` to run any test DCMTK against DCMTK).
    """
    if candidate is None:
        candidate = "dcmtk" if os.environ.get("SIDEBYSIDE_CANDIDATE") == "dcmtk" else "spoolscp"
    plan = [list(a) for a in plan]
    results: dict[str, SideRun] = {}
    with scp_server("dcmtk", options, workdir / "reference", "reference") as ref, \
            scp_server(candidate, options, workdir / "candidate", "candidate") as cand:
        _feed_in_parallel(lambda s: _run_side(s, sender, plan, results), (ref, cand), results,
                          completion_timeout)
    return Comparison(list(options), sender, plan, results["reference"], results["candidate"],
                      VersionDifferences.load(ref.version, cand.version),
                      NamingScheme.from_options(options))


def _feed_in_parallel(feed: Callable[[ServerProcess], None], servers: Sequence[ServerProcess],
                      results: dict[str, SideRun], completion_timeout: float) -> None:
    """Run ``feed`` for every server in its own thread, then wait for their output."""
    threads = [threading.Thread(target=feed, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for server in servers:
        _finish_side(results[server.name], completion_timeout)


def _finish_side(run: SideRun, timeout: float) -> None:
    """Wait for asynchronous output, and note a server that died during the run."""
    server = run.server
    if server.died() is not None:
        run.problems.append(f"{server.name} exited with {server.died()} during the run")
        return
    try:
        run.queue_stats = wait_output_complete(server, timeout)
    except (TimeoutError, RuntimeError) as exc:
        run.problems.append(str(exc))


# --------------------------------------------------------------------------------------------
# Study scenarios: sort folders, ends of study, renames and commands (spec §6-§9)
# --------------------------------------------------------------------------------------------

EXEC_LOG = "exec.log"  # relative: commands run in the server's (and its workers') cwd
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE = "1.2.840.10008.5.1.4.1.1.4"


@dataclass(frozen=True)
class StudySpec:
    """A small synthetic study: ``count`` images alternating ``classes``, one patient name."""

    uid: str
    patient: str
    charset: str | None = "ISO_IR 100"
    count: int = 2
    classes: tuple[str, ...] = (CT_IMAGE, MR_IMAGE)
    instances: tuple[str, ...] = ()  # SOP Instance UIDs (hostile ones too); default <uid>.<n>

    def instance(self, i: int) -> str:
        return self.instances[i] if self.instances else f"{self.uid}.{i + 1}"


def synthetic_study(folder: Path, spec: StudySpec) -> list[InputFile]:
    """Write ``spec`` as Part-10 files (explicit VR little endian, 4x4 pixels) with pydicom.

    The patient name is encoded with the study's character set, so ``-sp`` sees the raw
    Latin-1 or UTF-8 bytes DCMTK transliterates (spec §6). Invalid UIDs are written as
    given (hostile-input tests).
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(len(spec.instances) or spec.count):
        sop_class = spec.classes[i % len(spec.classes)]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = spec.instance(i)
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        if spec.charset:
            ds.SpecificCharacterSet = spec.charset
        ds.SOPClassUID, ds.SOPInstanceUID = sop_class, spec.instance(i)
        ds.PatientName, ds.PatientID = spec.patient, "P-" + spec.uid[-4:]
        ds.StudyInstanceUID, ds.SeriesInstanceUID = spec.uid, f"{spec.uid}.0"
        ds.Modality = "CT" if sop_class == CT_IMAGE else "MR"
        ds.Rows = ds.Columns = 4
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.PixelData = bytes(range(32))
        path = folder / f"{i + 1}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return part10_inputs(paths)


def synthetic_studies(folder: Path, specs: Sequence[StudySpec]) -> list[list[InputFile]]:
    """:func:`synthetic_study` for each spec, in its own subfolder, pydicom's warnings off."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return [synthetic_study(folder / str(n), spec) for n, spec in enumerate(specs)]


def exec_log_lines(server: ServerProcess, name: str = EXEC_LOG) -> list[str]:
    """The lines the ``-xcr``/``-xcs`` commands appended to ``name`` in the server's cwd."""
    path = server.workdir / name
    return path.read_text("utf-8", "replace").splitlines() if path.exists() else []


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """:func:`wait_until` with a 30 s default; the TimeoutError names ``what`` did not happen."""
    wait_until(condition, timeout, f"timed out after {timeout}s waiting for {what}")


def wait_exec_lines(server: ServerProcess, count: int, timeout: float = 30.0) -> None:
    wait_for(lambda: len(exec_log_lines(server)) >= count,
             f"{count} command line(s) in {server.name}'s {EXEC_LOG}", timeout)


@dataclass(frozen=True)
class ScenarioAssociation:
    """One association of a study scenario, sent with pynetdicom as ``ae_title``.

    ``idle_after`` maps a file index to a number of command lines: after that file the
    association stays open, idle, until the exec log holds that many lines (an end of
    study by ``-tos`` inside the association). ``then_wait`` does the same after release.
    """

    files: list[InputFile]
    ae_title: str = "STORESCU"
    idle_after: dict[int, int] = field(default_factory=dict)
    then_wait: int | None = None


@dataclass
class StudyComparison:
    """Output trees compared file by file, plus both command logs with folder names shaped."""

    files: Comparison
    reference_execs: list[str]
    candidate_execs: list[str]
    ordered: bool  # compare command order (``-xs``) or only the lines (asynchronous commands)

    @property
    def exec_problems(self) -> list[str]:
        ref, cand = self.reference_execs, self.candidate_execs
        if self.ordered and ref != cand:
            return ["command lines differ (order compared: -xs)"]
        if not self.ordered and sorted(ref) != sorted(cand):
            return ["command lines differ (asynchronous commands: compared in any order)"]
        return []

    @property
    def ok(self) -> bool:
        return self.files.ok and not self.exec_problems

    def report(self) -> str:
        lines = [self.files.report(), *self.exec_problems]
        if self.exec_problems:
            lines += ["reference commands:", *self.reference_execs,
                      "candidate commands:", *self.candidate_execs]
        return "\n".join(lines)


def shape_exec_lines(lines: list[str], outdir: Path, scheme: NamingScheme,
                     reception: dict[str, int] | None = None) -> list[str]:
    """Command lines with study folder and file names replaced by their shapes (the
    timestamps of ``-ss``/``-sp``/``-tn``, the generated UIDs of ``+uf``); ``reception``
    as for :meth:`NamingScheme.dir_shapes`."""
    dirs = {p.name for p in outdir.iterdir() if p.is_dir()}
    shapes = scheme.dir_shapes(dirs, reception)
    shaped = []
    for line in lines:
        for name in sorted(dirs, key=len, reverse=True):
            line = line.replace(f"/{name}", f"/{shapes[name]}")
        shaped.append(" ".join(_shape_word(word, scheme) for word in line.split(" ")))
    return shaped


def _shape_word(word: str, scheme: NamingScheme) -> str:
    parts = scheme.parse_file(word)
    return scheme.file_shape(parts, parts["code"]) if parts else word


def _run_scenario_side(server: ServerProcess, plan: Sequence[ScenarioAssociation],
                       results: dict[str, SideRun]) -> None:
    log = server.workdir / "sender-pynetdicom.log"
    statuses, problems = [], []
    try:
        for assoc in plan:
            def idle(i: int, assoc: ScenarioAssociation = assoc) -> None:
                if i in assoc.idle_after:
                    wait_exec_lines(server, assoc.idle_after[i])
            statuses.append(send_pynetdicom(server.port, assoc.files, log, assoc.ae_title, idle))
            if assoc.then_wait is not None:
                wait_exec_lines(server, assoc.then_wait)
    except Exception as exc:  # noqa: BLE001 - reported, never hidden
        problems.append(f"scenario stopped: {exc!r}")
        statuses += [[NOT_SENT] * len(a.files) for a in plan[len(statuses):]]
    results[server.name] = SideRun(server, statuses, log, problems=problems)


def run_study_scenario(options: Sequence[str], plan: Sequence[ScenarioAssociation],
                       workdir: Path, completion_timeout: float = 120.0) -> StudyComparison:
    """Run DCMTK storescp and spoolscp with ``options`` on the same scenario, in parallel.

    Afterwards spoolscp's queue must be idle (every object, rename and command done), and
    DCMTK's asynchronous commands get up to 5 s to log as many lines as spoolscp's did.
    """
    results: dict[str, SideRun] = {}
    with scp_server("dcmtk", options, workdir / "reference", "reference") as ref, \
            scp_server("spoolscp", options, workdir / "candidate", "candidate") as cand:
        _feed_in_parallel(lambda s: _run_scenario_side(s, plan, results), (ref, cand), results,
                          completion_timeout)
        with contextlib.suppress(TimeoutError):
            wait_exec_lines(ref, len(exec_log_lines(cand)), timeout=5)
    scheme = NamingScheme.from_options(options)
    files = Comparison(list(options), "pynetdicom", [a.files for a in plan], results["reference"],
                       results["candidate"], VersionDifferences.load(ref.version, cand.version),
                       scheme)
    return StudyComparison(
        files,
        shape_exec_lines(exec_log_lines(ref), ref.outdir, scheme,
                         reception_order(read_tree(ref.outdir), files.plan)),
        shape_exec_lines(exec_log_lines(cand), cand.outdir, scheme),
        ordered="-xs" in options or "--exec-sync" in options,
    )


# --------------------------------------------------------------------------------------------
# Association negotiation: the A-ASSOCIATE answer itself (issue 4)
# --------------------------------------------------------------------------------------------

# storescp 3.6.9's +xa preference order (spec §2.4); 3.6.7's is this order without
# XA_ONLY_IN_369, which is what lets a reference answer be translated exactly.
XA_ORDER_369 = tuple(
    "1.2.840.10008.1.2." + s
    for s in (
        "4.91 4.90 4.51 4.50 4.70 4.81 4.80 5 4.100 4.100.1 4.101 4.101.1 4.102 4.102.1 4.103 "
        "4.103.1 4.104 4.104.1 4.105 4.105.1 4.106 4.106.1 4.107 4.108 4.201 4.202 4.203 4.110 "
        "4.111 4.112 1.99 1.98 1 2 "
    ).split()
) + ("1.2.840.10008.1.2",)
DICOM_APP_CONTEXT = "1.2.840.10008.3.1.1.1"
PYNETDICOM_IMPLEMENTATION = "1.2.826.0.1.3680043.9.3811.3.0.4"


@dataclass(frozen=True)
class ProposedContext:
    """One presentation context an SCU proposes (its ID is its position: 1, 3, 5, ...)."""

    abstract_syntax: str
    transfer_syntaxes: tuple[str, ...]


@dataclass(frozen=True)
class AssociationAnswer:
    """What came back for an A-ASSOCIATE-RQ, decoded from the raw PDU.

    ``kind``: ``AC``, ``RJ``, ``ABORT``, ``CLOSED`` (connection closed without a PDU) or
    ``NO ANSWER`` (nothing within the timeout, connection still open).
    ``contexts``: (context ID, result, transfer syntax) in the order of the AC.
    ``user_items``: the AC's user information sub-items in order, as (type, value).
    """

    kind: str
    reject: tuple[int, int, int] | None = None
    called_ae: str = ""
    calling_ae: str = ""
    app_context: str = ""
    contexts: tuple[tuple[int, int, str], ...] = ()
    user_items: tuple[tuple[int, object], ...] = ()

    def item(self, item_type: int) -> object | None:
        return next((v for t, v in self.user_items if t == item_type), None)

    def context(self, context_id: int) -> tuple[int, str] | None:
        return next(((r, ts) for cid, r, ts in self.contexts if cid == context_id), None)


def _rq_pdu(contexts: Sequence[ProposedContext], calling: str, called: str, app_context: str,
            implementation_uid: str | None, roles: dict[str, tuple[bool, bool]],
            extended: dict[str, bytes]) -> bytes:
    """A-ASSOCIATE-RQ bytes, encoded by pynetdicom's PDU classes."""
    from pynetdicom.pdu import A_ASSOCIATE_RQ
    from pynetdicom.pdu_primitives import (
        A_ASSOCIATE,
        ImplementationClassUIDNotification,
        ImplementationVersionNameNotification,
        MaximumLengthNotification,
        SCP_SCU_RoleSelectionNegotiation,
        SOPClassExtendedNegotiation,
    )
    from pynetdicom.presentation import PresentationContext

    rq = A_ASSOCIATE()
    rq.application_context_name = app_context
    rq.calling_ae_title, rq.called_ae_title = calling, called
    for n, proposed in enumerate(contexts):
        cx = PresentationContext()
        cx.context_id = 2 * n + 1
        cx.abstract_syntax = proposed.abstract_syntax
        cx.transfer_syntax = list(proposed.transfer_syntaxes)
        rq.presentation_context_definition_list.append(cx)
    max_length = MaximumLengthNotification()
    max_length.maximum_length_received = 16384
    items: list = [max_length]
    if implementation_uid:
        uid = ImplementationClassUIDNotification()
        uid.implementation_class_uid = implementation_uid
        version = ImplementationVersionNameNotification()
        version.implementation_version_name = "PYNETDICOM_304"
        items += [uid, version]
    for sop_class, (scu, scp) in roles.items():
        role = SCP_SCU_RoleSelectionNegotiation()
        role.sop_class_uid, role.scu_role, role.scp_role = sop_class, scu, scp
        items.append(role)
    for sop_class, data in extended.items():
        ext = SOPClassExtendedNegotiation()
        ext.sop_class_uid, ext.service_class_application_information = sop_class, data
        items.append(ext)
    rq.user_information = items
    pdu = A_ASSOCIATE_RQ()
    pdu.from_primitive(rq)
    return pdu.encode()


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _read_pdu(sock: socket.socket) -> tuple[int, bytes] | None:
    header = _recv_exact(sock, 6)
    if len(header) < 6:
        return None
    return header[0], _recv_exact(sock, int.from_bytes(header[2:6], "big"))


def _items(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 4 <= len(data):
        length = int.from_bytes(data[pos + 2:pos + 4], "big")
        yield data[pos], data[pos + 4:pos + 4 + length]
        pos += 4 + length


def _text(raw: bytes) -> str:
    return raw.decode("ascii", "replace").rstrip("\0 ")


def _user_item(item_type: int, data: bytes) -> object:
    """A user information sub-item as a comparable value."""
    if item_type == 0x51:
        return int.from_bytes(data[:4], "big")
    if item_type in (0x52, 0x55):
        return _text(data)
    if item_type == 0x54:
        n = int.from_bytes(data[:2], "big")
        return _text(data[2:2 + n]), data[2 + n], data[3 + n]
    if item_type == 0x56:
        n = int.from_bytes(data[:2], "big")
        return _text(data[2:2 + n]), data[2 + n:]
    return data


def decode_associate_ac(body: bytes) -> AssociationAnswer:
    """The fields of an A-ASSOCIATE-AC body (after the 6-byte PDU header)."""
    contexts, user, app = [], [], ""
    for item_type, data in _items(body[68:]):
        if item_type == 0x10:
            app = _text(data)
        elif item_type == 0x21:
            ts = next((_text(d) for t, d in _items(data[4:]) if t == 0x40), "")
            contexts.append((data[0], data[2], ts))
        elif item_type == 0x50:
            user = [(t, _user_item(t, d)) for t, d in _items(data)]
    return AssociationAnswer("AC", None, body[4:20].decode("latin-1"),  # AE fields as sent, padding too
                             body[20:36].decode("latin-1"), app, tuple(contexts), tuple(user))


def request_association(port: int, contexts: Sequence[ProposedContext], *, calling: str = "NEGOSCU",
                        called: str = "ANY-SCP", app_context: str = DICOM_APP_CONTEXT,
                        implementation_uid: str | None = PYNETDICOM_IMPLEMENTATION,
                        roles: dict[str, tuple[bool, bool]] | None = None,
                        extended: dict[str, bytes] | None = None,
                        timeout: float = 20.0) -> AssociationAnswer:
    """Send one A-ASSOCIATE-RQ and return the answer; an AC is released politely."""
    pdu = _rq_pdu(contexts, calling, called, app_context, implementation_uid, roles or {},
                  extended or {})
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(pdu)
        try:
            answer = _read_pdu(sock)
        except TimeoutError:
            return AssociationAnswer("NO ANSWER")  # connection left open without any PDU
        if answer is None:
            return AssociationAnswer("CLOSED")
        pdu_type, body = answer
        if pdu_type == 0x03:
            return AssociationAnswer("RJ", (body[1], body[2], body[3]))
        if pdu_type != 0x02:
            return AssociationAnswer("ABORT" if pdu_type == 0x07 else f"PDU 0x{pdu_type:02x}")
        sock.sendall(b"\x05\x00\x00\x00\x00\x04\x00\x00\x00\x00")  # A-RELEASE-RQ
        _read_pdu(sock)
        return decode_associate_ac(body)


def _xa_translation(proposed: ProposedContext, result: int, ts: str) -> tuple[int, str]:
    """3.6.7's +xa outcome -> 3.6.9's: a proposed 3.6.9-only syntax ranked before wins."""
    if result not in (0, 4):
        return result, ts
    better = [t for t in XA_ORDER_369 if t in proposed.transfer_syntaxes
              and (t in XA_ONLY_IN_369 or (result == 0 and t == ts))]
    return (0, better[0]) if better else (result, ts)


def expected_candidate_contexts(reference: AssociationAnswer, proposal: Sequence[ProposedContext],
                                options: Sequence[str],
                                diffs: VersionDifferences) -> dict[int, tuple[int, str]]:
    """Context ID -> (result, TS) the candidate must answer, from the reference's answer.

    Translations (version differences, spec §2.4, §13.6), none outside :class:`VersionDifferences`'
    data: without ``-xf`` a class only the candidate's version accepts by default gets the
    answer the reference gave a context proposing the same syntaxes for a class both accept;
    with ``+xa`` the candidate's longer list is applied on top (:data:`XA_ORDER_369`).
    """
    profile = "-xf" in options or "--config-file" in options
    accept_all = "+xa" in options or "--accept-all" in options
    only_candidate = diffs.accepted[diffs.candidate] - diffs.accepted[diffs.reference]
    both = diffs.accepted[diffs.candidate] & diffs.accepted[diffs.reference]
    by_syntaxes = {p.transfer_syntaxes: reference.context(2 * n + 1) for n, p in enumerate(proposal)
                   if p.abstract_syntax in both}
    expected = {}
    for n, p in enumerate(proposal):
        answer = reference.context(2 * n + 1)
        if answer is None:
            continue
        if not profile and p.abstract_syntax in only_candidate and answer[0] == 3:
            answer = by_syntaxes[p.transfer_syntaxes]
        if accept_all and diffs.reference != diffs.candidate:
            answer = _xa_translation(p, *answer)
        expected[2 * n + 1] = answer
    return expected


def compare_associate_answers(reference: AssociationAnswer, candidate: AssociationAnswer,
                              proposal: Sequence[ProposedContext], options: Sequence[str],
                              diffs: VersionDifferences) -> list[str]:
    """Every difference between the two answers that the version rules do not explain."""
    problems = []
    for name in ("kind", "reject", "called_ae", "calling_ae", "app_context"):
        if getattr(reference, name) != getattr(candidate, name):
            problems.append(f"{name}: DCMTK {getattr(reference, name)!r}, spoolscp {getattr(candidate, name)!r}")
    if [c[0] for c in reference.contexts] != [c[0] for c in candidate.contexts]:
        problems.append(f"context order: DCMTK {[c[0] for c in reference.contexts]},"
                        f" spoolscp {[c[0] for c in candidate.contexts]}")
    expected = expected_candidate_contexts(reference, proposal, options, diffs)
    for cid, want in expected.items():
        got = candidate.context(cid)
        if got != want:
            p = proposal[(cid - 1) // 2]
            problems.append(f"context {cid} {p.abstract_syntax} {p.transfer_syntaxes}: DCMTK"
                            f" {reference.context(cid)} -> expected {want}, spoolscp {got}")
    ref_items = [(t, v) for t, v in reference.user_items]
    impl = {0x52: 0, 0x55: 1}
    want_items = [(t, diffs.implementation(diffs.candidate)[impl[t]]) if t in impl else (t, v)
                  for t, v in ref_items]
    if want_items != list(candidate.user_items):
        problems.append(f"user items: DCMTK {ref_items} -> expected {want_items},"
                        f" spoolscp {list(candidate.user_items)}")
    return problems
