"""Load each model once per worker.  Heavy imports live inside the functions.

Every loader turns "missing" and "cannot load" into one ModelError naming the
variable to set, so a worker fails at start with a clear message instead of on
its first file.
"""

from __future__ import annotations

import json
import time
import urllib.error
from pathlib import Path

from daemon import log
from daemon.errors import ModelError
from daemon.models import registry


def set_threads(threads: int) -> None:
    # silero-vad and silero-stress call torch.set_num_threads(1) on import: set ours after them.
    import torch

    torch.set_num_threads(max(1, threads))


def load_whisper(settings):
    """faster-whisper on CPU, int8, ``settings.torch_threads`` threads; (model, ref) or (None, None)."""
    ref = registry.asr_ref(settings)
    if ref is None:
        return None, None
    if ref.joined:
        t0 = time.perf_counter()
        registry.prepare(ref)  # joins the two packages' parts once, checks the SHA-256 every start
        log.get().info("model.checked", model="asr", path=ref.path, seconds=round(time.perf_counter() - t0, 3))
    elif not ref.present and ref.fetch:
        try:
            registry.fetch(ref, settings)
        except Exception as exc:  # offline: huggingface_hub raises several kinds
            raise ModelError(f"{registry.missing_message(ref)} ({type(exc).__name__})") from None
    registry.require(ref)
    from faster_whisper import WhisperModel

    t0 = time.perf_counter()
    try:
        model = WhisperModel(ref.path, device="cpu", compute_type="int8",
                             cpu_threads=settings.torch_threads, num_workers=1)
    except Exception as exc:
        raise ModelError(f"{ref.variable}: cannot load the faster-whisper model in {ref.path}: {exc}") from exc
    log.get().info("model.loaded", model="asr", path=ref.path, seconds=round(time.perf_counter() - t0, 3))
    return model, ref


def load_accentor(settings):
    """silero-stress (Russian), shipped in its package."""
    ref = registry.require(registry.stress_ref(settings))
    t0 = time.perf_counter()
    from silero_stress import load_accentor as _load

    model = _load("ru")
    if model is None:
        raise ModelError("silero-stress could not load its Russian model: reinstall the silero-stress package")
    set_threads(settings.torch_threads)
    log.get().info("model.loaded", model="stress", path=ref.path, seconds=round(time.perf_counter() - t0, 3))
    return model, ref


def load_silero_tts(settings):
    """A Silero TTS torch.package (``v4_ru.pt`` …): fetched once where a network exists, hash-checked, loaded."""
    ref = registry.silero_ref(settings)
    if not ref.present and ref.fetch:
        try:
            registry.download(ref.fetch, Path(ref.path), expect_sha256=settings.tts_model_sha256)
            log.get().info("model.fetched", model="tts", url=ref.fetch, path=ref.path)
        except (OSError, urllib.error.URLError, ValueError) as exc:
            raise ModelError(f"{registry.missing_message(ref)} (download failed: {exc})") from None
    registry.require(ref)
    # Loading a torch.package runs code from the file: check it before touching it.
    if (problem := registry.sha_problem(ref, settings)) is not None:
        raise ModelError(problem)
    import torch

    t0 = time.perf_counter()
    try:
        model = torch.package.PackageImporter(ref.path).load_pickle("tts_models", "model")
    except Exception as exc:
        raise ModelError(f"{ref.path} is not a Silero TTS torch.package ({type(exc).__name__}: {exc}); "
                         f"set {ref.variable} to a model such as v4_ru.pt") from exc
    if not callable(getattr(model, "apply_tts", None)):
        raise ModelError(f"{ref.path}: the model has no apply_tts(); set {ref.variable} to a Silero TTS model")
    if hasattr(model, "to"):
        model.to(torch.device("cpu"))
    set_threads(settings.torch_threads)
    log.get().info("model.loaded", model="tts", kind="silero", path=ref.path,
                   seconds=round(time.perf_counter() - t0, 3))
    return model, ref


def load_piper(settings):
    """A Piper voice with an onnxruntime session we build (PiperVoice.load takes no thread setting)."""
    ref = registry.piper_ref(settings)
    registry.require(ref)
    if not Path(ref.config).is_file():
        raise ModelError(registry.missing_message(ref))
    import onnxruntime as ort
    from piper.config import PiperConfig
    from piper.voice import PiperVoice

    t0 = time.perf_counter()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, settings.torch_threads)
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    try:
        with open(ref.config, encoding="utf-8") as f:
            config = PiperConfig.from_dict(json.load(f))
        session = ort.InferenceSession(ref.path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ModelError(f"{ref.variable}: cannot load the Piper voice {ref.path}: {exc}") from exc
    log.get().info("model.loaded", model="tts", kind="piper", path=ref.path,
                   seconds=round(time.perf_counter() - t0, 3))
    return PiperVoice(config=config, session=session), ref
