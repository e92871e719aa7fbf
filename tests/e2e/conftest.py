"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest
from test_daemon import Daemon


@pytest.fixture
def daemon(tmp_path):
    """``daemon(**env)``: one `voice-daemon run` on temporary folders (tests/e2e/test_daemon.py), not
    started yet; killed with its process group at the end of the test if still running."""
    made: list[Daemon] = []

    def make(**env) -> Daemon:
        made.append(Daemon(tmp_path / "d", **env))
        return made[-1]

    yield make
    for d in made:
        d.close()
