"""Fixtures shared by the test modules.

They live here, not in ``sidebyside``, so that pytest finds them without each test module
importing a name it never uses itself (an import that linters must then be told to ignore).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from sidebyside import ServerKind, ServerProcess, scp_server


@pytest.fixture
def scp_servers(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """Fixture: ``start(kind, options, name=...)`` returns a ready server, stopped at teardown."""
    with contextlib.ExitStack() as stack:
        started: list[ServerProcess] = []

        def start(kind: ServerKind, options: Sequence[str] = (), name: str | None = None,
                  workers: int = 2, receiver_only: bool = False) -> ServerProcess:
            label = name or f"{kind}-{len(started)}"
            server = stack.enter_context(scp_server(kind, options, tmp_path / label, label,
                                                    workers, receiver_only))
            started.append(server)
            return server
        yield start
