"""The supervisor's scheduling state on its own: no threads, a clock the test moves."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from daemon.supervisor import Schedule


@dataclass
class J:
    id: str
    not_before: float = 0.0


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


def schedule(clock, max_attempts=3, backoff=5.0) -> Schedule:
    return Schedule(max_attempts=max_attempts, backoff_seconds=backoff, clock=clock)


def drain(s: Schedule) -> list[str]:
    out = []
    while (job := s.pop()) is not None:
        out.append(job.id)
    return out


def test_ready_jobs_come_out_first_come_first_served(clock):
    s = schedule(clock)
    for name in ("a", "b", "c"):
        s.add(J(name))
    assert len(s) == 3 and s.next_due() is None
    assert drain(s) == ["a", "b", "c"]
    assert len(s) == 0 and s.pop() is None


def test_a_delayed_job_waits_for_its_time_then_queues_behind_the_ready_ones(clock):
    s = schedule(clock)
    s.add(J("later", not_before=clock.now + 10))
    s.add(J("now"))
    assert s.next_due() == clock.now + 10
    assert drain(s) == ["now"]
    assert s.pop() is None and len(s) == 1
    clock.now += 9.9
    assert s.pop() is None
    s.add(J("fresh"))
    clock.now += 0.1  # exactly due
    assert drain(s) == ["fresh", "later"]


def test_due_jobs_join_in_time_order_after_those_ready_before(clock):
    s = schedule(clock)
    s.add(J("b", not_before=clock.now + 2))
    s.add(J("a", not_before=clock.now + 1))
    s.add(J("c", not_before=clock.now + 3))
    s.add(J("ready"))
    clock.now += 2.5
    assert s.pop().id == "ready"
    assert drain(s) == ["a", "b"]
    assert s.next_due() == clock.now + 0.5
    clock.now += 1
    assert drain(s) == ["c"] and s.next_due() is None


def test_a_not_before_in_the_past_is_ready_at_once(clock):
    s = schedule(clock)
    s.add(J("resumed", not_before=clock.now - 60))  # saved before a restart
    assert s.next_due() is None and drain(s) == ["resumed"]


def test_retry_delay_doubles_and_stops_at_the_last_attempt(clock):
    s = schedule(clock, max_attempts=4, backoff=0.5)
    assert [s.retry_delay(n, retryable=True) for n in (0, 1, 2, 3)] == [0.5, 0.5, 1.0, 2.0]
    assert s.retry_delay(4, retryable=True) is None
    assert s.retry_delay(1, retryable=False) is None


def test_a_retried_job_is_not_started_before_its_backoff(clock):
    s = schedule(clock, backoff=5.0)
    job = J("flaky")
    s.add(job)
    assert s.pop() is job
    delay = s.retry_delay(1, retryable=True)
    job.not_before = clock.now + delay  # what the spool's retry records
    s.add(job)
    assert s.pop() is None and s.next_due() == clock.now + 5.0
    clock.now += 5.0
    assert s.pop() is job


@dataclass
class Suspect:
    id: str
    charges: int = 0
    claimed_at: float = 0.0
    not_before: float = 0.0
    suspect: bool = True


def test_suspects_go_first_fewest_charges_first_and_the_schedule_isolates_while_one_waits(clock):
    s = schedule(clock)
    s.add(J("new"))
    s.add(Suspect("twice", charges=2, claimed_at=1))
    s.add(Suspect("once-late", charges=1, claimed_at=9))
    s.add(Suspect("once-early", charges=1, claimed_at=5))
    s.add(Suspect("backing-off", not_before=clock.now + 10))
    assert s.isolating and len(s) == 5
    assert [s.pop().id for _ in range(3)] == ["once-early", "once-late", "twice"]
    assert s.isolating  # one still waits out its backoff
    assert s.pop().id == "new"
    clock.now += 10
    assert s.pop().id == "backing-off" and not s.isolating and s.pop() is None
