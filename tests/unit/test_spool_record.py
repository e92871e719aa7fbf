"""The job record's states and the transitions a save may make."""

from __future__ import annotations

import itertools
import json

import pytest

from daemon.settings import Settings
from daemon.spool import TRANSITIONS, Job, JobState, Spool, TransitionError, check_transition

S = JobState
EXPECTED = {  # the table, written out: changing it is a decision, not an accident
    None: {S.CLAIMING},
    S.CLAIMING: {S.QUEUED},
    S.QUEUED: {S.RUNNING, S.FAILING},
    S.RUNNING: {S.QUEUED, S.COMMITTING, S.FAILING},
    S.COMMITTING: {S.COMMITTED, S.QUEUED, S.FAILING},  # failing: the output cannot be published
    S.COMMITTED: set(),
    S.FAILING: set(),
}


def test_the_states_are_the_strings_job_json_holds():
    assert [s.value for s in JobState] == ["claiming", "queued", "running", "committing", "committed", "failing"]
    assert S.QUEUED == "queued" and json.dumps({"state": S.QUEUED}) == '{"state": "queued"}'


def test_the_transition_table():
    assert {k: set(v) for k, v in TRANSITIONS.items()} == EXPECTED


@pytest.mark.parametrize("old,new", list(itertools.product([None, *JobState], JobState)))
def test_every_pair_is_allowed_or_refused_by_the_table(old, new):
    if new == old or new in EXPECTED[old]:
        check_transition("j", old, new)
    else:
        with pytest.raises(TransitionError) as exc:
            check_transition("j", old, new)
        assert str(new) in str(exc.value) and "cannot go from" in str(exc.value)


def test_an_unknown_state_is_refused_when_read():
    with pytest.raises(ValueError):
        Job.from_dict({"id": "x", "rel": "a.wav", "state": "exploded"})


@pytest.fixture
def spool(tmp_path):
    sp = Spool(Settings(inbox=tmp_path / "in", outbox=tmp_path / "out", failed_dir=tmp_path / "failed",
                        state_dir=tmp_path / "state"))
    sp.ensure_dirs()
    return sp


def test_a_step_out_of_order_raises_and_writes_nothing(spool):
    (spool.inbox / "a.wav").write_bytes(b"RIFF")
    job = spool.claim(spool.inbox / "a.wav")
    manifest = spool.job_dir(job) / "job.json"
    before = manifest.read_bytes()
    job.state = S.COMMITTED  # queued → committed skips the attempt
    with pytest.raises(TransitionError, match="cannot go from queued to committed"):
        spool.save(job)
    assert manifest.read_bytes() == before
    job.state = S.QUEUED  # back where it is on disk: saving is allowed again
    spool.start(job)
    assert json.loads(manifest.read_text())["state"] == "running"


def test_a_job_read_back_continues_from_its_saved_state(spool):
    (spool.inbox / "a.wav").write_bytes(b"RIFF")
    spool.start(spool.claim(spool.inbox / "a.wav"))
    (job,) = Spool(spool.s).recover()  # the daemon died during the attempt
    assert job.state == S.QUEUED and job.attempts == 1
    job.state = S.COMMITTING
    with pytest.raises(TransitionError):
        spool.save(job)
