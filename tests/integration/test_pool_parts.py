"""The pool's pure parts, without processes: the fair queue and what crosses the pipe."""

from __future__ import annotations

import pickle
import sys

import pytest

from daemon.backends import remote
from daemon.backends.queue import FairQueue
from daemon.errors import InputError, ModelError, TaskError


def test_queue_takes_turns_between_groups_fifo_inside_each():
    q = FairQueue()
    for i in range(4):
        q.push(f"long-{i}", "long")
    q.push("short-0", "short")
    q.push("short-1", "short")
    q.push("other-0", "other")
    assert len(q) == 7
    assert q.drain() == ["long-0", "short-0", "other-0", "long-1", "short-1", "long-2", "long-3"]
    assert len(q) == 0 and q.pop() is None


def test_queue_retry_goes_first_in_its_group_and_gets_the_next_turn():
    q = FairQueue()
    q.push("a1", "a")
    q.push("b1", "b")
    q.push("b2", "b")
    assert q.pop() == "a1"
    q.push_front("a1-retry", "a")
    q.push_front("b0-retry", "b")
    assert q.drain() == ["b0-retry", "a1-retry", "b1", "b2"]


def _through_the_pipe(exc: BaseException, attempts: int = 1) -> BaseException:
    desc = pickle.loads(remote.dumps(remote.describe_exception(exc)))
    return remote.caller_exception(desc, attempts)


def _raised(exc):
    try:
        raise exc
    except BaseException as caught:  # noqa: BLE001 - to give it a traceback
        return caught


def test_program_errors_keep_type_and_fields():
    err = _through_the_pipe(_raised(InputError("/a.wav", "empty file", stage="decode")))
    assert type(err) is InputError
    assert (err.path, err.cause, err.stage, str(err)) == ("/a.wav", "empty file", "decode", "/a.wav: empty file")
    assert isinstance(err.__cause__, remote.RemoteTraceback) and "_raised" in str(err.__cause__)

    err = _through_the_pipe(ModelError("no such model"))
    assert type(err) is ModelError and str(err) == "no such model"

    err = _through_the_pipe(TaskError("inner", kind="exception", attempts=2, stage="engine", retryable=False))
    assert (type(err), err.kind, err.attempts, err.stage, err.retryable) == (TaskError, "exception", 2, "engine", False)


def test_other_exceptions_become_task_errors_with_the_message():
    err = _through_the_pipe(_raised(KeyError("speaker")), attempts=2)
    assert type(err) is TaskError
    assert (str(err), err.kind, err.attempts, err.retryable) == ("KeyError: 'speaker'", "exception", 2, True)
    assert type(err.__cause__) is KeyError


def test_non_retryable_foreign_exception_keeps_retryable_false():
    class Refused(Exception):
        retryable = False

    err = _through_the_pipe(Refused("no"))  # a local class cannot be rebuilt: a TaskError says so
    assert type(err) is TaskError and err.retryable is False and str(err) == "Refused: no"


def test_parent_refuses_to_import_modules_while_unpickling():
    missing = "voice_daemon_never_imported_module"
    assert missing not in sys.modules
    data = b"c" + missing.encode() + b"\nThing\n."  # protocol 0: a global reference
    with pytest.raises(remote.ForbiddenModule, match=missing):
        remote.loads(data)
    assert missing not in sys.modules
    desc = {"module": missing, "qualname": "Boom", "type": "Boom", "message": "x", "retryable": None,
            "traceback": "tb", "args": None, "state": None}
    err = remote.caller_exception(desc, 1)
    assert type(err) is TaskError and str(err) == "Boom: x"


def test_an_os_error_keeps_its_errno_and_file_behind_the_task_error():
    """A worker's full disk: the parent must know the errno and which file (so which folder) refused."""
    import errno

    err = _through_the_pipe(_raised(OSError(errno.ENOSPC, "No space left on device", "/srv/out/.a.part.wav")))
    assert isinstance(err, TaskError) and err.retryable
    assert isinstance(err.__cause__, OSError)
    assert (err.__cause__.errno, err.__cause__.filename) == (errno.ENOSPC, "/srv/out/.a.part.wav")
