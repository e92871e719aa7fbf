"""The stages' task and result types (daemon/tasks.py): defined once, frozen, picklable, and each
task names the stage function that takes it."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from daemon import tasks
from daemon.backends import remote
from daemon.jobs import Chunk, resolve

TASKS = [tasks.OpenJob, tasks.Decode, tasks.VadFeatures, tasks.VadProbabilities, tasks.RunChunk, tasks.ConvertChunk,
         tasks.ChunkSpeakers, tasks.EncodeSegment, tasks.CheckOutput, tasks.SpeakText]


@pytest.mark.parametrize("kind", TASKS, ids=lambda k: k.__name__)
def test_each_task_names_the_stage_function_that_takes_it(kind):
    func = resolve(kind.func)
    params = list(inspect.signature(func).parameters)
    assert params[:1] == ["task"], f"{kind.func} does not take the task"
    assert f"{kind.__name__}" in str(inspect.signature(func).parameters["task"].annotation)


def test_tasks_and_results_are_frozen():
    task = tasks.RunChunk("in.f32", 16000, Chunk(0, 0, 160), "out.f32", "f32")
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.rate = 8000  # type: ignore[misc]
    done = tasks.ChunkDone(index=0, audio_seconds=0.01, compute_seconds=0.0, info={}, head=np.zeros(0), tail=np.zeros(0))
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.index = 1  # type: ignore[misc]


def test_the_envelope_carries_the_task_to_its_function():
    task = tasks.VadFeatures("in.f32", 16000, 3, None, "3.npy")
    env = tasks.envelope(task, group="job-1", audio_seconds=60.0)
    assert (env.func, env.kwargs, env.group, env.audio_seconds) == (task.func, {"task": task}, "job-1", 60.0)


def test_a_chunk_stage_extends_the_part_that_travels():
    """What the engine needs besides the samples is ChunkWork: the chunk task and the samples that
    travel share it, so a field added there reaches the engine on every path."""
    work = tasks.ChunkWork("baya", {"speakers": [{"speaker": 1}]})
    sent = tasks.ConvertChunk(np.zeros(4, np.float32), 16000, work)
    assert tasks.RunChunk("a", 1, Chunk(0, 0, 4), "o", "f32", work).work is sent.work


def test_results_come_back_through_the_parents_restricted_unpickler():
    """The parent unpickles a worker's result without importing new modules (daemon/backends/remote.py):
    the result types live in a leaf the parent has loaded."""
    result = tasks.Probabilities(probs=[np.ones(3, np.float32)], state=np.zeros((2, 1, 128), np.float32),
                                 t0=1.0, t1=2.0, pid=7)
    back = remote.loads(remote.dumps(result))
    assert isinstance(back, tasks.Probabilities) and (back.t0, back.t1, back.pid) == (1.0, 2.0, 7)
    assert np.array_equal(back.probs[0], result.probs[0]) and back.state.shape == (2, 1, 128)
