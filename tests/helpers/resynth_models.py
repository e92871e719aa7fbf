"""Resynth engines and audio shared by the resynth tests: each model loads once per test session.

Model loads are slow (silero-stress 3.6 s), and pytest would build a fixture
once per module that imports it, so the engines are cached here instead.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr
import structlog
from structlog.testing import capture_logs

from daemon.settings import Settings

_ENGINES: dict[tuple, object] = {}
_WHISPER = []
_BASE = []

#: Where the tests keep the joined Whisper base model: the checkout's var/models (what `make run`
#: uses too, ignored by git), so it is joined once per machine and only checked afterwards.
MODEL_DIR = Path(__file__).resolve().parents[2] / "var" / "models"


def settings(**kw) -> Settings:
    base = dict(engine="resynth", workers=1, threads_per_worker=1, sample_rate=48000, model_dir=MODEL_DIR)
    base.update(kw)
    return Settings(**base)


def engine(**kw):
    """A ResynthEngine for these settings, built once per session."""
    key = tuple(sorted((k, str(v)) for k, v in kw.items()))
    if key not in _ENGINES:
        from daemon.engines.resynth import ResynthEngine

        _ENGINES[key] = ResynthEngine(settings(**kw))
    return _ENGINES[key]


@contextlib.contextmanager
def chunk_events():
    """The ``resynth.chunk`` debug events (stage seconds per chunk) logged inside the block."""
    wrapper = structlog.get_config()["wrapper_class"]
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        with capture_logs() as events:
            chunks: list[dict] = []
            yield chunks
    finally:
        structlog.configure(wrapper_class=wrapper)
    chunks += [e for e in events if e["event"] == "resynth.chunk"]


def whisper():
    """The bundled tiny.en, for judging outputs (same recogniser as the engine's)."""
    if not _WHISPER:
        from daemon.models.loaders import load_whisper

        _WHISPER.append(load_whisper(settings(language="en"))[0])
    return _WHISPER[0]


def base_whisper():
    """The multilingual Whisper base (joined from its packages), for judging Russian outputs."""
    if not _BASE:
        from daemon.models.loaders import load_whisper

        _BASE.append(load_whisper(settings(language="ru"))[0])
    return _BASE[0]


def load(path, rate: int) -> np.ndarray:
    """Mono float32 at ``rate`` (what the pipeline hands the engine)."""
    a, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = a.mean(axis=1)
    return soxr.resample(mono, sr, rate).astype(np.float32) if sr != rate else mono.astype(np.float32)


def to16k(audio: np.ndarray, rate: int) -> np.ndarray:
    return soxr.resample(audio, rate, 16000).astype(np.float32) if rate != 16000 else audio
