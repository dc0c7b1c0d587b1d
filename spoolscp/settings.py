"""Pipeline settings: where state lives, how the queue runs, how work is retried.

Settings flow one way: command line options > ``pipeline.toml`` > the defaults below.
They are resolved once, into a frozen :class:`Settings`, and passed down from there.

>>> s = load_settings(None, state_dir="/tmp/demo-state")
>>> s.spool_dir
PosixPath('/tmp/demo-state/spool')

The configuration file is found as: ``--config FILE``, else ``$SPOOLSCP_CONFIG``, else
``./pipeline.toml`` if it exists, else none (built-in defaults, which equal the
``pipeline.toml`` shipped in the repository). Relative paths inside a file resolve
against the file's own folder, so receiver and workers started from different
folders find the same state.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_STATE_DIR = "~/.local/state/spoolscp"


@dataclass(frozen=True)
class Settings:
    """Everything the receiver and the workers need besides storescp's own options."""

    state_dir: Path = Path(DEFAULT_STATE_DIR).expanduser()
    spool_in_db_max: int = 64 * 1024  # bytes; objects up to this are spooled inside jobs.db
    bind: str = ""  # "" listens on all interfaces, like DCMTK
    max_associations: int = 64
    shutdown_timeout: float = 30.0
    queue_backend: str = "sqlite"  # sqlite | redis
    redis_url: str = "redis://127.0.0.1:6379/0"
    workers: int = 2
    poll_max_delay: float = 0.25
    retries: int = 3
    retry_delay: float = 2.0
    retry_backoff: float = 2.0
    lease_seconds: float = 600.0
    worker_nice: int = 10  # workers yield the CPU to the receiver: acknowledging comes first
    dropfolder: Path | None = None  # None: no drop folder
    dropfolder_settle: float = 2.0
    dropfolder_rescan: float = 60.0
    config_file: Path | None = None

    @property
    def spool_dir(self) -> Path:
        """Received objects wait here, fsynced, until a worker has written them."""
        return self.state_dir / "spool"

    @property
    def incoming_dir(self) -> Path:
        """Objects being received; moved into ``spool_dir`` once complete."""
        return self.spool_dir / "incoming"

    @property
    def jobs_db(self) -> Path:
        """The job table: the source of truth for every received object."""
        return self.state_dir / "jobs.db"

    @property
    def queue_db(self) -> Path:
        """Huey's SQLite queue (wake-ups for the workers, never the truth)."""
        return self.state_dir / "queue.db"


# pipeline.toml key -> Settings field
_TOML_KEYS: dict[tuple[str, str], str] = {
    ("state", "dir"): "state_dir",
    ("state", "spool_in_db_max"): "spool_in_db_max",
    ("receiver", "bind"): "bind",
    ("receiver", "max_associations"): "max_associations",
    ("receiver", "shutdown_timeout"): "shutdown_timeout",
    ("queue", "backend"): "queue_backend",
    ("queue", "redis_url"): "redis_url",
    ("queue", "poll_max_delay"): "poll_max_delay",
    ("workers", "count"): "workers",
    ("workers", "lease_seconds"): "lease_seconds",
    ("workers", "nice"): "worker_nice",
    ("retry", "retries"): "retries",
    ("retry", "delay"): "retry_delay",
    ("retry", "backoff"): "retry_backoff",
    ("dropfolder", "dir"): "dropfolder",
    ("dropfolder", "settle"): "dropfolder_settle",
    ("dropfolder", "rescan"): "dropfolder_rescan",
}


class ConfigError(ValueError):
    """pipeline.toml cannot be read or holds a value of the wrong kind."""


def find_config(explicit: str | None) -> Path | None:
    """The configuration file to read, following the documented search order."""
    if explicit:
        return Path(explicit)
    if os.environ.get("SPOOLSCP_CONFIG"):
        return Path(os.environ["SPOOLSCP_CONFIG"])
    local = Path("pipeline.toml")
    return local if local.is_file() else None


def read_config(path: Path) -> dict[str, Any]:
    """Settings fields found in ``path``; unknown keys are an error, not a silent no-op."""
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
    values: dict[str, Any] = {}
    for section, table in data.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: '{section}' must be a [section]")
        for key, value in table.items():
            name = _TOML_KEYS.get((section, key))
            if name is None:
                raise ConfigError(f"{path}: unknown setting [{section}] {key}")
            values[name] = value
    if "state_dir" in values:
        values["state_dir"] = path.parent / Path(values["state_dir"]).expanduser()
    if values.get("dropfolder"):  # "" (the default) = no drop folder
        values["dropfolder"] = path.parent / Path(values["dropfolder"]).expanduser()
    return values


def load_settings(config: str | None = None, **overrides: Any) -> Settings:
    """Resolve settings: ``overrides`` (from the command line; None = not given) win."""
    path = find_config(config)
    values = read_config(path) if path else {}
    values.update({k: v for k, v in overrides.items() if v is not None})
    types = {f.name: f.type for f in fields(Settings)}
    for name, value in values.items():
        if name == "state_dir":
            values[name] = Path(value).expanduser().absolute()
        elif name == "dropfolder":
            values[name] = Path(value).expanduser().absolute() if value else None
        elif types[name] in ("int", "float") and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise ConfigError(f"setting {name} must be a number")  # not at the first object, later
    return Settings(config_file=path.absolute() if path else None, **values)
