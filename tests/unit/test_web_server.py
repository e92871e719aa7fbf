"""The HTTP server's address handling (serving itself: tests/integration/test_metrics_http.py)."""

from __future__ import annotations

import pytest

from daemon.metrics import Metrics
from daemon.settings import Settings
from daemon.web.server import serve, split_addr


def test_start_without_an_address_serves_nothing():
    settings = Settings()
    assert serve(Metrics(settings), settings.metrics_addr) is None


@pytest.mark.parametrize("addr, expected", [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("[::1]:9464", ("::1", 9464)),
    ("localhost:0", ("localhost", 0)),
])
def test_split_addr(addr, expected):
    assert split_addr(addr) == expected
