"""The courier: what a chunk task becomes when the cluster shares no disk with the daemon."""

from __future__ import annotations

import numpy as np

from daemon.audio.decode import read_frames
from daemon.audio.stitch import start_file
from daemon.backends.dask.samples import SamplesCourier
from daemon.jobs import Chunk, Task
from daemon.tasks import ChunkWork, RunChunk, envelope


def test_a_chunk_task_travels_as_samples_and_comes_back_into_the_stitched_file(tmp_path):
    rate, overlap = 16000, 160
    audio = np.linspace(-0.5, 0.5, rate * 3, dtype=np.float32)
    working = tmp_path / "audio.f32"
    audio.tofile(working)  # the job's working audio: raw mono float32
    stitched = tmp_path / "stitched.f32"
    start_file(str(stitched), "f32", rate)
    task = envelope(RunChunk(str(working), rate, Chunk(1, rate, 2 * rate, overlap, overlap), str(stitched), "f32",
                             ChunkWork("baya", None)),
                    group="job-1", audio_seconds=1.0)
    courier = SamplesCourier()

    assert not courier.on_host(task)
    sent, context = courier.outbound(task)
    assert sent.func == "daemon.pipeline:convert_chunk" and (sent.group, sent.audio_seconds) == ("job-1", 1.0)
    travels = sent.kwargs["task"]
    assert np.array_equal(travels.audio, audio[rate:2 * rate]) and travels.rate == rate
    assert travels.work == ChunkWork("baya", None)
    assert not any(isinstance(v, str) and "/" in v for v in vars(travels).values()), "a path travelled"

    converted = -travels.audio
    value = courier.inbound(context, (converted, {"engine": "test"}), 0.25, 4242)
    assert {k: getattr(value, k) for k in ("index", "audio_seconds", "compute_seconds", "info", "pid")} == {
        "index": 1, "audio_seconds": 1.0, "compute_seconds": 0.25, "info": {"engine": "test"}, "pid": 4242}
    assert abs(value.t1 - value.t0 - 0.25) < 1e-6
    # The seams' frames come back to the parent; the chunk's own frames are in the stitched file.
    assert np.array_equal(value.head, converted[:overlap]) and np.array_equal(value.tail, converted[-overlap:])
    placed = read_frames(str(stitched), rate + overlap, 2 * rate - overlap)
    assert np.array_equal(placed, converted[overlap:-overlap])


def test_whole_file_stages_stay_on_this_host():
    courier = SamplesCourier()
    for func in ("daemon.pipeline:open_job", "daemon.pipeline:decode", "daemon.pipeline:vad_features",
                 "daemon.pipeline:vad_probabilities", "daemon.pipeline:encode_segment",
                 "daemon.pipeline:check_output", "daemon.pipeline:speak_text",
                 "daemon.pipeline:some_stage_added_later"):
        assert courier.on_host(Task(func, {}))
