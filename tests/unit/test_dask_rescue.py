"""The Dask backend takes back attempts stranded on a worker that is gone (``Link._rescue_stranded``),
and does not count samples it could not send for want of the scheduler or the worker (``send_samples``).

A stand-in for Dask's client: what the scheduler says of each key, and how a scatter fails, are the
things under test, and a real scheduler cannot be made to lose a submitted task on cue
(tests/e2e/test_dask_cluster.py restarts a real one mid-batch)."""

from __future__ import annotations

import asyncio
from collections import Counter
from types import SimpleNamespace

import pytest

from daemon.backends.dask import link as link_module
from daemon.backends.dask.attempts import send_samples
from daemon.backends.dask.link import Link


@pytest.fixture(autouse=True)
def at_once(monkeypatch):
    """Unknown at two looks is enough here (the service waits FORGOTTEN_AFTER seconds between them)."""
    monkeypatch.setattr(link_module, "FORGOTTEN_AFTER", 0.0)


class View:
    def usable(self, address: str) -> bool:
        return address == "tcp://alive:1"


class Client:
    def __init__(self, states: dict):
        self.states, self.cancelled = states, []

    def run_on_scheduler(self, _fn, keys):
        return {k: self.states.get(k) for k in keys}

    def cancel(self, futures):
        self.cancelled += futures


class Attempt:
    def __init__(self, key: str, worker: str, submitted: bool = True):
        self.key, self.worker = key, worker
        self.dask_future = f"future-{key}" if submitted else None


def link(posted: list) -> Link:
    out = Link("tcp://scheduler:1", None, None, counts=Counter(), post=posted.append, pump=lambda _t: None,
               closing=lambda: False)
    out.view = View()
    return out


def test_an_attempt_the_scheduler_forgot_is_sent_again_after_two_looks():
    posted: list = []
    lk = link(posted)
    forgotten, scattering = Attempt("vd-1-1", "tcp://gone:1"), Attempt("vd-2-2", "tcp://gone:1", submitted=False)
    running = Attempt("vd-3-3", "tcp://alive:1")
    client = Client({"vd-3-3": "processing"})
    lk._rescue_stranded(client, [forgotten, scattering, running])
    assert posted == []  # unknown once may be a result on its way back
    lk._rescue_stranded(client, [forgotten, scattering, running])
    assert posted == [("outcome", forgotten, ("cancelled",))]
    assert client.cancelled == ["future-vd-1-1"]


def test_an_attempt_waiting_on_the_scheduler_for_good_is_sent_again():
    """Known, but waiting (on samples lost with the old scheduler, say): no state that ends by itself."""
    posted: list = []
    lk = link(posted)
    a = Attempt("vd-1-1", "tcp://gone:1")
    for state in ("waiting", "waiting"):
        lk._rescue_stranded(Client({"vd-1-1": state}), [a])
    assert posted == [("outcome", a, ("cancelled",))]


def test_a_key_known_again_or_an_outcome_in_between_resets_the_count():
    posted: list = []
    lk = link(posted)
    a = Attempt("vd-1-1", "tcp://gone:1")
    lk._rescue_stranded(Client({}), [a])
    lk._rescue_stranded(Client({"vd-1-1": "processing"}), [a])  # the scheduler knows it: left alone
    lk._rescue_stranded(Client({}), [a])
    assert posted == []
    lk._rescue_stranded(Client({}), [])  # its outcome came back: nothing stranded
    lk._rescue_stranded(Client({}), [a])
    assert posted == []


def test_a_task_waiting_for_a_gone_worker_is_cancelled_to_go_elsewhere():
    posted: list = []
    lk = link(posted)
    a = Attempt("vd-1-1", "tcp://gone:1")
    client = Client({"vd-1-1": "no-worker"})
    lk._rescue_stranded(client, [a])
    assert client.cancelled == ["future-vd-1-1"] and posted == []


def test_unknown_for_less_than_the_wait_is_left_alone(monkeypatch):
    monkeypatch.setattr(link_module, "FORGOTTEN_AFTER", 3600.0)
    posted: list = []
    lk = link(posted)
    a = Attempt("vd-1-1", "tcp://gone:1")
    for _ in range(3):
        lk._rescue_stranded(Client({}), [a])
    assert posted == []


# ---- samples that could not be sent (``attempts.send_samples``) ----------------------------------
SCHEDULER = "tcp://127.0.0.1:8786"


class ScatterFails:
    """A stand-in for Dask's client whose scatter fails as the real one does when a peer is gone."""

    def __init__(self, error: Exception, status: str = "running"):
        self.error, self.status = error, status
        self.scheduler = SimpleNamespace(address=SCHEDULER)

    async def _scatter(self, *_args, **_kwargs):
        raise self.error


def outcome_of(client) -> tuple:
    posted: list = []
    attempt = SimpleNamespace(key="vd-1-1", worker="tcp://127.0.0.1:4001")
    asyncio.run(send_samples(attempt, client, "m:f", {}, None, 0, posted.append))
    [(_, _, outcome)] = posted
    return outcome


@pytest.mark.parametrize("client", [
    ScatterFails(OSError(f"in <TCP (closed) ConnectionPool.ncores_running remote={SCHEDULER}>: reset")),
    ScatterFails(TimeoutError("No valid workers found")),
    ScatterFails(OSError("anything"), status="connecting"),
], ids=["scheduler-gone", "worker-gone", "reconnecting"])
def test_samples_not_sent_for_want_of_the_scheduler_or_the_worker_do_not_count(client):
    assert outcome_of(client) == ("cancelled",)


def test_samples_not_sent_to_a_reachable_scheduler_count_as_a_lost_attempt():
    outcome = outcome_of(ScatterFails(OSError("in <TCP (closed) remote=tcp://127.0.0.1:4001>: reset")))
    assert outcome[0] == "lost" and "its samples could not be sent" in outcome[1]
