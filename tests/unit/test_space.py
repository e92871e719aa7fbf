"""Full disks on their own (issue 11, fault 7): which folder, why, when to look again, and the
steps the loop tries again later.  A real small tmpfs for the probe; a clock the test moves."""

from __future__ import annotations

import errno
import os

from daemon.spool.space import LOW_BYTES, Space, disk_full_error, free_bytes, os_error, probe
from daemon.supervisor.later import Later
from helpers.disks import fill, tmpfs


class Clock:
    def __init__(self, now: float = 100.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_the_errno_is_found_behind_the_error_a_worker_raised():
    from daemon.errors import TaskError

    cause = OSError(errno.ENOSPC, "No space left on device", "/out/.a.part.wav")
    try:
        try:
            raise cause
        except OSError as e:
            raise TaskError("OSError: [Errno 28] …") from e
    except TaskError as wrapped:
        assert disk_full_error(wrapped) is cause and os_error(wrapped) is cause
    assert disk_full_error(OSError(errno.EIO, "I/O error")) is None
    assert disk_full_error(RuntimeError("System error.")) is None


def test_a_full_folder_is_named_and_looked_at_with_backoff_until_space_returns(tmp_path):
    clock = Clock()
    with tmpfs(tmp_path / "out", "1m") as out:
        space = Space({"outbox": out, "state": tmp_path}, clock=clock, first_look=1.0, longest_look=4.0)
        filler = fill(out)
        assert free_bytes(out) < LOW_BYTES and space.low() == "outbox" and not probe(out)
        full = space.mark(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out / "sub" / ".x.part.wav")))
        assert space.paused and full.folder == "outbox"
        assert space.reason() == f"the outbox folder {out} is full: no space left on device"
        assert space.next_look() == 101.0 and space.look() == []  # not due yet
        delays = []
        for _ in range(4):
            clock.now = space.next_look()
            assert space.look() == []
            delays.append(space.next_look() - clock.now)
        assert delays == [2.0, 4.0, 4.0, 4.0]  # doubling, capped
        filler.unlink()
        clock.now = space.next_look()
        assert [f.folder for f in space.look()] == ["outbox"] and not space.paused
        assert os.listdir(out) == []  # the probe file is gone
    quota = space.mark(OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), str(tmp_path / "work" / "x")))
    assert quota.folder == "state" and quota.cause == "disk quota exceeded"


def test_later_steps_back_off_per_key_and_all_run_when_space_returns():
    clock = Clock()
    later = Later(first=1.0, longest=4.0, clock=clock)
    ran = []
    assert later.add("a", lambda: ran.append("a")) == 1.0
    assert later.add("b", lambda: ran.append("b")) == 1.0
    assert later.add("a", lambda: ran.append("a2")) == 2.0  # failed again: twice as long
    clock.now += 1.0
    assert [k for k, _ in later.due()] == ["b"]
    assert [k for k, _ in later.due(now_too=True)] == ["a"] and len(later) == 0
    later.done("a")
    assert later.add("a", lambda: None) == 1.0  # forgotten after success


def test_a_folder_full_again_soon_after_it_came_back_is_looked_at_less_often(tmp_path):
    """A file bigger than what a look can tell fills the disk again: no tight loop of conversions."""
    clock = Clock()
    space = Space({"state": tmp_path}, clock=clock, first_look=1.0, longest_look=8.0)
    enospc = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x"))
    delays = []
    for _ in range(5):
        full = space.mark(enospc)
        delays.append(full.delay)
        clock.now = full.next_look
        assert [f.folder for f in space.look()] == ["state"]  # the probe finds room: resumed
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0]
    clock.now += 61
    assert space.mark(enospc).delay == 1.0  # long after: a new story


def test_a_full_disk_on_a_cluster_node_fails_the_attempt_and_pauses_nothing_here(tmp_path):
    """ENOSPC in a path that is neither this host's outbox nor its state folder (a Dask node's
    temporary space): pausing this daemon would not free it, so the attempt fails with its cause."""
    from types import SimpleNamespace

    from structlog.testing import capture_logs

    from daemon.errors import TaskError
    from daemon.supervisor.pause import DiskFull
    from daemon.supervisor.report import Reporter

    space = Space({"outbox": tmp_path / "outbox", "state": tmp_path / "state"})
    report = Reporter(SimpleNamespace(engine="resynth", voice="kseniya"), None, None)
    # Only the space and the reporter take part: the attempt is refused before anything is put back.
    pausing = DiskFull(space=space, spool=None, later=None, room=None, report=report, requeue=None, resume=None)

    job = SimpleNamespace(id="j1", rel="a.wav", voice=None, attempts=1)
    try:
        raise TaskError("the task failed", kind="exception") from OSError(errno.ENOSPC, "No space left on device",
                                                                           "/tmp/dask-scratch/x.npy")
    except TaskError as exc:
        err = exc
    with capture_logs() as logs:
        assert pausing.out_of_space(job, err) is False
    assert not space.paused
    (event,) = [e for e in logs if e["event"] == "job.node_out_of_space"]
    assert event["path"] == "/tmp/dask-scratch/x.npy" and event["cause"] == "no space left on device"
