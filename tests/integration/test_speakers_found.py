"""Speakers found on real recordings, through the real stage functions, CAM++ and a real spawn pool.

    - a conversation of four people (alternating turns of 2–15 s, tools/conversation.py): four
      speakers, diarization error rate within the bound (tools/der.py), each chunk's engine given
      its turns with each speaker's own shift; the pool's output, sidecar and RTTM byte for byte
      those of one task after another in this process (the speakers do not depend on the order
      tasks finish in);
    - one person's 60 s: one speaker.
No timing is asserted: the machine is shared (tools/speakers_check.py prints the cost).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from daemon import app
from daemon.backends.inline import InlineRunner
from daemon.bench.timeline import Timeline
from daemon.convert import convert_file
from daemon.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import conversation  # noqa: E402
import der  # noqa: E402

#: Measured with tools/speakers_check.py on four ~205 s conversations (seeds 1–4): DER 3.8–5.6 %.
MAX_DER = 0.10


@pytest.fixture(scope="module")
def settings():
    return load_settings(engine="shift", sample_rate=16000, chunk_seconds=20, workers=2, speakers="on", rttm=True,
                         log_level="warning")


@pytest.fixture(scope="module")
def talk(tmp_path_factory):
    wav = tmp_path_factory.mktemp("talk") / "talk.wav"
    turns = conversation.make(wav, 120.0, seed=1)
    assert len({p for *_, p in turns}) == 4
    return wav


@pytest.fixture(scope="module")
def pool(settings):
    p = app.build_pool(settings).start()
    yield p
    p.close()


def test_four_people_are_four_speakers_the_same_whatever_the_order(settings, pool, talk, tmp_path):
    (tmp_path / "seq").mkdir()
    (tmp_path / "pool").mkdir()
    seq, par = tmp_path / "seq" / "talk.wav", tmp_path / "pool" / "talk.wav"
    fig_seq = convert_file(InlineRunner(settings).submit, talk, seq, tmp_path / "w-seq", parallelism=1)
    timeline = Timeline()
    fig = convert_file(pool.submit, talk, par, tmp_path / "w-pool", parallelism=2, steps=timeline)
    assert fig["chunks"] == fig_seq["chunks"] >= 5
    assert fig["speakers"] == 4
    assert par.read_bytes() == seq.read_bytes()
    assert Path(fig["rttm"]).read_text() == Path(fig_seq["rttm"]).read_text()
    side = json.loads(Path(fig["sidecar"]).read_text())
    assert [s["speaker"] for s in side["speakers"]] == [1, 2, 3, 4]
    assert len({s["voice"] for s in side["speakers"]}) == 4           # a shift of their own each
    (camp,) = [m for m in side["models"] if m["kind"] == "campplus"]  # beside the bed's model where one was kept
    assert len(camp["sha256"]) == 64
    r = der.der(der.read_rttm(f"{talk}.ref.rttm"), der.read_rttm(fig["rttm"]), speech=_speech(talk))
    assert r["der"] <= MAX_DER, r
    steps = timeline.steps
    # A chunk waits for its own speakers (and those before it), not for the whole file's.
    first_chunk = min(s["t0"] for s in steps if s["stage"] == "chunk")
    assert first_chunk < max(s["t1"] for s in steps if s["stage"] == "speakers")
    assert sum(s["stage"] == "speakers" for s in steps) == fig["chunks"]


def test_one_person_is_one_speaker(settings, pool, speech_dir, tmp_path):
    fig = convert_file(pool.submit, speech_dir / "silero_vad_en.wav", tmp_path / "one.wav", tmp_path / "w")
    side = json.loads(Path(fig["sidecar"]).read_text())
    assert fig["speakers"] == 1 and len(side["speakers"]) == 1 and side["speakers"][0]["seconds"] > 30
    assert {line.split()[7] for line in Path(fig["rttm"]).read_text().splitlines()} == {"speaker1"}


def _speech(wav: Path) -> np.ndarray:
    from speakers_check import speech_mask

    return speech_mask(wav)


def test_shift_gives_each_speaker_their_own_setting(speech_dir):
    """Two turns of one recording, two speakers: each moved by its own semitones (Praat's pitch)."""
    import soundfile as sf

    from daemon.engines.shift import median_f0, shift_speakers

    audio, rate = sf.read(speech_dir / "silero_vad_en.wav", dtype="float32", frames=16000 * 20)
    turns = [{"start": 0.0, "end": 9.8, "speaker": 1, "voice": "+4/1"},
             {"start": 10.2, "end": 20.0, "speaker": 2, "voice": "-4/1"}]
    out = shift_speakers(audio, rate, turns)
    assert len(out) == len(audio)
    for (a, b), semitones in (((0, 10), 4), ((10, 20), -4)):
        ratio = median_f0(out[a * rate:b * rate], rate) / median_f0(audio[a * rate:b * rate], rate)
        assert abs(12 * np.log2(ratio) - semitones) < 1.0, (a, ratio)  # measured within 0.3 semitones


def test_resynth_speaks_each_turn_in_its_speakers_voice():
    """A timed transcript (no recognition), two speakers' turns with two espeak-ng variants: each
    phrase is spoken in its turn's voice, nearest (CAM++) to that voice's own reading."""
    import io
    import subprocess

    import soundfile as sf

    from daemon.audio.resample import resample
    from daemon.models.speaker import SpeakerEmbedder
    from helpers import resynth_models

    eng = resynth_models.engine(tts="espeak", asr_model="none", language="en", voices="+m1,+f3")
    rate = 48000
    texts = ["the weather will be fine tomorrow morning", "we should leave before the evening train"]
    hints = {"timed": True,
             "phrases": [{"start": 0.5, "end": 3.0, "text": texts[0]}, {"start": 4.0, "end": 6.5, "text": texts[1]}],
             "speakers": [{"start": 0.4, "end": 3.1, "speaker": 1, "voice": "+m1"},
                          {"start": 3.9, "end": 6.6, "speaker": 2, "voice": "+f3"}]}
    out, info = eng.process(np.zeros(7 * rate, np.float32), rate, voice="kseniya", hints=hints)
    assert [(p["speaker"], p["voice"]) for p in info["phrases"]] == [(1, "+m1"), (2, "+f3")]
    model = SpeakerEmbedder(eng.settings)

    def embed(a, r):
        return model.embed([resample(a, r, 16000)])[0]

    refs = []
    for variant in ("m1", "f3"):
        wav = subprocess.run(["espeak-ng", "-v", f"en+{variant}", "--stdout", " ".join(texts)], capture_output=True,
                             check=True).stdout
        a, r = sf.read(io.BytesIO(wav), dtype="float32")
        refs.append(embed(a, r))
    for k, (a, b) in enumerate(((0.5, 3.0), (4.0, 6.5))):
        e = embed(out[int(a * rate):int(b * rate)], rate)
        assert int(np.argmax([e @ r for r in refs])) == k
