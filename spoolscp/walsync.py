"""Durable SQLite commits whose fsync happens after the write lock is released.

With ``synchronous=FULL`` SQLite fsyncs the WAL inside COMMIT, while it holds the
database's write lock: concurrent writers (receiver threads, ``--fork`` receiver
processes, workers) then queue behind each other's fsync, one disk flush each. Here a
transaction commits with ``synchronous=NORMAL`` (the frames are written to the WAL,
not synced) and :meth:`WalSync.sync` then fdatasyncs the WAL file itself, outside the
lock, so the fsyncs of concurrent writers overlap and one disk flush serves several.

Why the commit is durable once :meth:`WalSync.sync` returns (power loss included):

* https://www.sqlite.org/wal.html: "Writers sync the WAL on every transaction commit
  if PRAGMA synchronous is set to FULL but omit this sync if PRAGMA synchronous is set
  to NORMAL." FULL adds nothing but that sync; doing it ourselves, after COMMIT wrote
  the frames, gives the same state on disk: every frame up to our commit frame (the
  WAL is append-only between checkpoints, so earlier commits' frames precede ours and
  are synced with them). The SQLite developers give the same recipe for making NORMAL
  commits durable (sqlite.org forum post d1a6bc7c4cd2baca: "just get the journal file
  to be flushed ... will cause previously-committed transactions to become durable").
* A checkpoint may run, in any process, between our COMMIT and our sync, and the WAL
  may then restart and overwrite our frames. https://www.sqlite.org/pragma.html#pragma_synchronous:
  "In WAL mode when synchronous is NORMAL (1), the WAL file is synchronized before
  each checkpoint and the database file is synchronized after each completed
  checkpoint and the WAL file header is synchronized when a WAL file begins to be
  reused after a checkpoint." The WAL is only reused after a completed checkpoint, so
  frames that get overwritten are already durable in the database file.
* The WAL file is deleted only when the last connection closes, after a checkpoint
  (the same argument); ours stays open, so the file we sync is the one COMMIT wrote.
  Should it be missing anyway (journal mode changed), the data is in the database.
* A newly created WAL file also needs its folder entry on disk: the first sync of
  every WAL inode also fsyncs the folder.

A crashed process (SIGKILL) loses nothing either way: NORMAL commits survive it.
"""

from __future__ import annotations

import os
from pathlib import Path

from spoolscp.spool import fsync_dir


class UnsyncedCommit(OSError):
    """The transaction committed, but the WAL could not be synced: it is visible to
    other connections and may or may not survive a power loss."""


class WalSync:
    """The fdatasync that makes one database's ``synchronous=NORMAL`` commits durable."""

    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + "-wal")
        self._synced_inode: int | None = None

    def sync(self) -> None:
        """Make every transaction committed so far durable; raises :class:`UnsyncedCommit`."""
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return  # checkpointed into the (synced) database file and removed
        except OSError as exc:
            raise UnsyncedCommit(exc.errno, f"cannot open {self.path}: {exc.strerror}") from exc
        try:
            inode = os.fstat(fd).st_ino
            os.fdatasync(fd)
            if inode != self._synced_inode:
                fsync_dir(self.path.parent)
                self._synced_inode = inode
        except OSError as exc:
            raise UnsyncedCommit(exc.errno, f"cannot sync {self.path}: {exc.strerror}") from exc
        finally:
            os.close(fd)
