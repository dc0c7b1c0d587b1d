"""Removing the bench's output without making the next run's file creates slower.

On ext4 without a journal (this VM's root file system) the inode allocator skips every
free inode that was freed in the last 60 seconds (``recently_deleted()`` in the kernel's
``fs/ext4/ialloc.c``; 360 s while its inode-table block is dirty), at the cost of one
inode-table lookup each. Creating a file right after thousands of deletes therefore
costs ten to thirty times more. Measured here (2026-12-03: 6,000 files deleted, ``sync``,
then 500 creates in a new folder, CPU per create): +0 s 0.024 ms, +20 to +55 s
0.66-0.72 ms, +65 to +100 s 0.021-0.023 ms.

That 60 s holds only while nothing else is created there: creates dirty the inode-table
blocks, which looks like the 360 s rule at work. After the test suite (thousands of
deletes), ``sync`` and 70 s of quiet, DCMTK still received 2,000 x 2 KB at 820-1,038
objects/s, ``recently_deleted`` and ``find_get_block_common`` its top kernel symbols
(``perf``), against 2,440-2,600 after a longer quiet.

Both receivers create one file per object (DCMTK its output; spoolscp the worker's output,
or the spool file that becomes it), and neither frees inodes while it receives new objects.
The bench used to delete the last run's output just before each run: every receiver then
paid for the harness's deletes, except the first run after a pause. DCMTK's CPU for 2,000 x
2 KB went from 0.39 s to 1.27 s, its rate from 2,602 to 1,273 objects/s.

So a finished run's output goes to a :class:`Trash` (renamed, its files truncated: the
blocks and pages are freed, the inodes are not), deleted when the bench ends; a bench that
starts within six minutes of another's clean-up first waits (:func:`wait_quiet`).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

QUIET_S = 365.0  # after deletes and a sync: the 360 s window of a dirty inode-table block
DISK_RESERVE = 2 << 30  # bytes the bench leaves free for everything else on the machine
STAMP = ".last-delete"  # in the corpus cache: when a bench last deleted its output


def wait_quiet(cache: Path) -> None:
    """Sleep until the last bench's deletes (stamped in ``cache``) no longer slow creates."""
    try:
        left = (cache / STAMP).stat().st_mtime + QUIET_S - time.time()
    except FileNotFoundError:
        return
    if left > 0:
        print(f"# waiting {left:.0f} s: the last bench's deletes still slow file creation", file=sys.stderr)
        time.sleep(left)


def deleted_now(cache: Path) -> None:
    """Write the deletes back and stamp their time in ``cache`` for :func:`wait_quiet`."""
    os.sync()
    cache.mkdir(parents=True, exist_ok=True)
    (cache / STAMP).touch()


@dataclass
class Trash:
    """Output folders of finished runs, kept (emptied) until the bench ends.

    >>> trash = Trash(tmp / "trash", cache)   # doctest: +SKIP
    >>> trash.discard(server.outdir)          # doctest: +SKIP   before the next run
    """

    folder: Path
    cache: Path
    count: int = 0

    def discard(self, path: Path) -> None:
        """Move ``path`` here, its files truncated: their blocks and pages are free again."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self.count += 1
        kept = self.folder / str(self.count)
        path.rename(kept)
        for folder, _, files in os.walk(kept):
            for name in files:
                os.truncate(os.path.join(folder, name), 0)

    def make_room(self, needed: int) -> None:
        """Leave ``needed`` bytes plus :data:`DISK_RESERVE` free; when the disk is short,
        delete the trash and wait out the window, untimed."""
        if not self.count or shutil.disk_usage(self.folder).free >= needed + DISK_RESERVE:
            return
        print(f"# disk short: deleting the bench's trash ({self.count} runs)", file=sys.stderr)
        shutil.rmtree(self.folder)
        self.count = 0
        deleted_now(self.cache)
        wait_quiet(self.cache)
