"""Pipeline stages: plain functions that run inside a warm worker child.

    prepare   decode the input once to the working WAV, plan chunks with Silero VAD
    run_chunk one chunk through the engine (frame range in, chunk WAV out)
    finish    stitch chunk results in order, encode, write the output atomically

Each takes paths and small parameters and returns a small dict: audio moves
through files in the job's work folder, never through pickles.  The process-wide
state (settings, engine, VAD) is set up once by ``init_worker``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from daemon import durable
from daemon.audio import io as aio
from daemon.audio.decode import decode_to_wav
from daemon.audio.plan import plan_chunks, silences
from daemon.audio.stitch import stitch
from daemon.errors import InputError, ModelError
from daemon.jobs import Chunk

_PROCESS_STATE: dict[str, Any] = {}
_THREAD = threading.local()
LOADS = {"count": 0}  # model loads in this process (the benchmark reports it)


def init_worker(settings, *, per_thread: bool = False) -> dict:
    """Load the VAD and the engine once and run a tiny warm-up.

    Normally once per process (the pool's child initializer).  ``per_thread``
    gives the calling thread its own models instead (the benchmark's `threads`
    mode: torch modules keep state and are not shared between threads).
    """
    from daemon.audio import vad
    from daemon.engines import load_engine

    t0 = time.perf_counter()
    state = {"settings": settings}
    try:
        state["vad"] = vad.new_model() if per_thread else vad.load_model()
        engine = load_engine(settings)
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(f"could not load the {settings.engine} engine: {type(exc).__name__}: {exc}") from exc
    state["engine"] = engine
    warm = np.zeros(settings.sample_rate // 2, dtype=np.float32)
    warm[: len(warm) // 2] = 0.1 * np.sin(np.arange(len(warm) // 2) * 2 * np.pi * 220 / settings.sample_rate)
    engine.process(warm, settings.sample_rate, voice=settings.voice, hints=None)
    LOADS["count"] += 1
    if per_thread:
        _THREAD.state = state
    else:
        _PROCESS_STATE.clear()
        _PROCESS_STATE.update(state)
    return {"engine": settings.engine, "load_seconds": time.perf_counter() - t0}


def _state() -> dict[str, Any]:
    state = getattr(_THREAD, "state", None) or _PROCESS_STATE
    if "settings" not in state:
        raise RuntimeError("pipeline stage called before init_worker(settings)")
    return state


def _settings():
    return _state()["settings"]


def prepare(input: str, work_dir: str) -> dict:
    """Decode ``input`` to ``work_dir/input.wav`` and plan its chunks."""
    from daemon.audio.vad import speech_probabilities

    s = _settings()
    info = aio.probe(input)
    size = os.stat(input).st_size
    if size > s.max_input_bytes:
        raise InputError(input, f"is {size} bytes; the limit is {s.max_input_bytes} (VOICE_DAEMON_MAX_INPUT_BYTES)")
    wav = str(Path(work_dir) / "input.wav")
    t0 = time.perf_counter()
    frames = decode_to_wav(info, wav, s.sample_rate, max_seconds=s.max_input_seconds)
    t1 = time.perf_counter()
    probs, window_s = speech_probabilities(wav, _state()["vad"])
    quiet = silences(probs, window_s, s.sample_rate, threshold=s.vad_threshold)
    chunks = plan_chunks(frames, int(s.chunk_seconds * s.sample_rate), quiet,
                         int(s.crossfade_ms / 1000 * s.sample_rate))
    t2 = time.perf_counter()
    return {
        "wav": wav,
        "sample_rate": s.sample_rate,
        "frames": frames,
        "duration": frames / s.sample_rate,
        "speech_seconds": float((np.asarray(probs) >= s.vad_threshold).sum() * window_s),
        "chunks": [asdict(c) for c in chunks],
        "source": info.to_dict(),
        "decode_seconds": t1 - t0,
        "vad_seconds": t2 - t1,
    }


def run_chunk(wav: str, index: int, start: int, end: int, out: str, voice: str | None = None,
              hints: dict | None = None) -> dict:
    """Convert frames [start, end) of ``wav`` into ``out`` (same length)."""
    t0 = time.perf_counter()
    audio, rate = read_frames(wav, start, end)
    result, info = convert_chunk(audio, rate, voice, hints)
    write_chunk(out, result, rate)
    return {"out": out, "index": index, "audio_seconds": len(audio) / rate,
            "compute_seconds": time.perf_counter() - t0, "info": info, "pid": os.getpid()}


def convert_chunk(audio: np.ndarray, rate: int, voice: str | None = None, hints: dict | None = None):
    """The engine on one chunk's samples: (samples of the same length, info).  Pure: what travels
    to a Dask worker that shares no disk with the daemon (``daemon/courier.py``)."""
    state = _state()
    engine = state["engine"]
    result, info = engine.process(audio, rate, voice=voice or state["settings"].voice, hints=hints)
    result = np.asarray(result, dtype=np.float32)
    if len(result) != len(audio):
        raise RuntimeError(f"engine {engine.name} returned {len(result)} frames for a {len(audio)}-frame chunk")
    return result, info


def read_frames(wav: str, start: int, end: int) -> tuple[np.ndarray, int]:
    """Frames [start, end) of the working WAV, and its rate."""
    with sf.SoundFile(wav) as f:
        f.seek(start)
        return f.read(end - start, dtype="float32"), f.samplerate


def write_chunk(out: str, audio: np.ndarray, rate: int) -> None:
    tmp = out + ".part"
    sf.write(tmp, audio, rate, format="WAV", subtype="FLOAT")
    os.replace(tmp, out)


def finish(wav: str, plan: dict, chunk_outs: list[str], output: str, chunk_infos: list[dict] | None = None) -> dict:
    """Stitch ``chunk_outs`` and write ``output`` atomically (temp name in the same folder, then rename)."""
    rate = plan["sample_rate"]
    chunks = [Chunk(**c) for c in plan["chunks"]]
    stitched = str(Path(wav).parent / "output.wav")
    stitch(chunks, chunk_outs, plan["frames"], rate, stitched)
    out = publish(stitched, output, rate)
    phrases, models = [], []
    for chunk, info in zip(chunks, chunk_infos or []):
        offset = chunk.start / rate
        for ph in (info or {}).get("phrases", []):
            phrases.append({**ph, "start": round(ph["start"] + offset, 3), "end": round(ph["end"] + offset, 3)})
        models += [m for m in (info or {}).get("models", []) if m not in models]
    sidecar = _write_sidecar(out, phrases, models)
    return {"output": str(out), "duration": plan["frames"] / rate, "sidecar": sidecar}


MAX_TEXT_BYTES = 1_000_000


def speak_text(input: str, work_dir: str, output: str, voice: str | None = None) -> dict:
    """A ``.txt`` file alone: read it aloud with the resynth engine's TTS (no timeline)."""
    s = _settings()
    if s.engine != "resynth":
        raise InputError(input, "is a text file; reading text aloud needs VOICE_DAEMON_ENGINE=resynth", stage="plan")
    from daemon.engines.resynth import synthesize_text
    from daemon.engines.resynth.transcript import decode

    size = os.stat(input).st_size
    if size > MAX_TEXT_BYTES:
        raise InputError(input, f"is {size} bytes of text; the limit is {MAX_TEXT_BYTES}", stage="plan")
    text = decode(Path(input).read_bytes()).strip()
    if not text:
        raise InputError(input, "contains no text to read", stage="plan")
    t0 = time.perf_counter()
    audio, info = synthesize_text(text, _state()["engine"].bundle, voice or s.voice)
    wav = str(Path(work_dir) / "output.wav")
    sf.write(wav, audio, s.sample_rate, format="WAV", subtype="FLOAT")
    out = publish(wav, output, s.sample_rate)
    sidecar = _write_sidecar(out, info.get("phrases", []), info.get("models", []))
    return {"output": str(out), "duration": len(audio) / s.sample_rate, "sidecar": sidecar,
            "compute_seconds": time.perf_counter() - t0, "sample_rate": s.sample_rate}


def publish(wav: str, output: str | Path, rate: int) -> Path:
    """Encode ``wav`` to a temporary name beside ``output``, then rename durably: readers never see half a file."""
    out = Path(output)
    # Keep the real extension last: libsndfile and ffmpeg pick the codec from it.
    with durable.replacing(out, tmp=out.with_name(f".{out.stem}.voice-daemon-{os.getpid()}.tmp{out.suffix}")) as tmp:
        aio.encode(wav, str(tmp), rate)
    return out


def _write_sidecar(out: Path, phrases: list[dict], models: list[dict]) -> str | None:
    """For engines that report phrases (resynth): ``NAME.json`` beside the output."""
    if not phrases and not models:
        return None
    path = out.with_suffix(".json")
    durable.write_text(path, json.dumps({"output": out.name, "phrases": phrases, "models": models},
                                        ensure_ascii=False, indent=2), tmp=path.with_name(f".{path.name}.tmp"))
    return str(path)
