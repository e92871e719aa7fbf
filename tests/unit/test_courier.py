"""The courier: what a chunk task becomes when the cluster shares no disk with the daemon."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from daemon.courier import SamplesCourier
from daemon.jobs import Task


def test_a_chunk_task_travels_as_samples_and_comes_back_as_the_chunk_file(tmp_path):
    rate = 16000
    audio = np.linspace(-0.5, 0.5, rate * 3, dtype=np.float32)
    wav = tmp_path / "input.wav"
    sf.write(wav, audio, rate, format="WAV", subtype="FLOAT")
    out = tmp_path / "chunks" / "00001.wav"
    out.parent.mkdir()
    task = Task("daemon.pipeline:run_chunk", {"wav": str(wav), "index": 1, "start": rate, "end": 2 * rate,
                                              "out": str(out), "voice": "baya", "hints": None},
                group="job-1", audio_seconds=1.0)
    courier = SamplesCourier()

    assert not courier.on_host(task)
    sent, context = courier.outbound(task)
    assert sent.func == "daemon.pipeline:convert_chunk" and (sent.group, sent.audio_seconds) == ("job-1", 1.0)
    assert np.array_equal(sent.kwargs["audio"], audio[rate:2 * rate]) and sent.kwargs["rate"] == rate
    assert not any(isinstance(v, str) and "/" in v for v in sent.kwargs.values()), "a path travelled"

    converted = -sent.kwargs["audio"]
    value = courier.inbound(context, (converted, {"engine": "test"}), 0.25, 4242)
    assert value == {"out": str(out), "index": 1, "audio_seconds": 1.0, "compute_seconds": 0.25,
                     "info": {"engine": "test"}, "pid": 4242}
    written, written_rate = sf.read(out, dtype="float32")
    assert written_rate == rate and np.array_equal(written, converted)
    assert not (tmp_path / "chunks" / "00001.wav.part").exists()


def test_whole_file_stages_stay_on_this_host():
    courier = SamplesCourier()
    for func in ("daemon.pipeline:prepare", "daemon.pipeline:finish", "daemon.pipeline:speak_text",
                 "daemon.pipeline:some_stage_added_later"):
        assert courier.on_host(Task(func, {}))
